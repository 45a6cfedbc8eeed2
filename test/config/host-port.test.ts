import assert from 'node:assert/strict';
import { it } from 'node:test';
import { parseHostPort, splitHostHeader } from '../../src/config/host-port.ts';

it('parses host:port as Go writes it, and refuses what is not one', () => {
  assert.deepEqual(parseHostPort('redis.example.com:6379'), { host: 'redis.example.com', port: 6379 });
  assert.deepEqual(parseHostPort('[::1]:6379'), { host: '::1', port: 6379 });
  for (const bad of ['redis', 'redis:', 'redis:0', 'redis:65536', ':6379', 'a b:1', 'http://redis:6379', '[::1', '::1:6379']) {
    assert.equal(parseHostPort(bad), undefined, bad);
  }
});

it('a default port makes the port optional; a listen address may omit the host and ask for port 0', () => {
  assert.deepEqual(parseHostPort('logs.example.com', { defaultPort: 514 }), { host: 'logs.example.com', port: 514 });
  assert.deepEqual(parseHostPort('[::1]', { defaultPort: 514 }), { host: '::1', port: 514 });
  assert.deepEqual(parseHostPort(':8090', { listen: true }), { host: '', port: 8090 });
  assert.deepEqual(parseHostPort('127.0.0.1:0', { listen: true }), { host: '127.0.0.1', port: 0 });
  assert.equal(parseHostPort(':8090'), undefined);
  assert.equal(parseHostPort('127.0.0.1', { listen: true }), undefined);
});

it('splits a Host header leniently, keeping IPv6 brackets', () => {
  assert.deepEqual(splitHostHeader('api.example.com:8080'), { hostname: 'api.example.com', port: 8080 });
  assert.deepEqual(splitHostHeader('api.example.com'), { hostname: 'api.example.com', port: undefined });
  assert.deepEqual(splitHostHeader('[::1]:80'), { hostname: '[::1]', port: 80 });
  assert.deepEqual(splitHostHeader('[::1]'), { hostname: '[::1]', port: undefined });
  assert.deepEqual(splitHostHeader('host:x'), { hostname: 'host', port: undefined });
});
