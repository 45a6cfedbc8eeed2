// security/bot-detector: allow / deny / patterns in KrakenD's order, empty
// user agents, the verdict LRU (bounded, kept across reloads), the
// User-Agent length cap, RE2 pattern translation, and the config checks.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LRUCache } from 'lru-cache';
import type { CompileContext } from '../../src/namespaces/namespace.ts';
import { translateRe2 } from '../../src/config/re2.ts';
import { MAX_USER_AGENT_INSPECTED, securityBotDetector, type BotDetectorOptions } from '../../src/namespaces/security-bot-detector.ts';
import { PolicyState } from '../../src/namespaces/state.ts';
import { PolicyError } from '../../src/proxy/errors.ts';
import type { ProxyRequest } from '../../src/proxy/types.ts';
import { startJsonBackend, type TestBackend } from '../helpers/backend.ts';
import { loadTestConfig, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { raw, request } from '../helpers/http.ts';
import { errorAt, issueAt, load, service, withBackend, withEndpoint } from '../config/support.ts';

const NS = 'security/bot-detector';
const AT = `$.extra_config["${NS}"]`;
const withDetector = (options: unknown) => service({ extra_config: { [NS]: options } });

describe('security/bot-detector: configuration', () => {
  it('checks every field with a precise error', () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ allow: 'MyApp/1.0' }, 'allow', /an array of strings/],
      [{ deny: ['a', 2] }, 'deny[1]', /a string/],
      [{ patterns: 'bot' }, 'patterns', /an array of strings/],
      [{ patterns: ['ok', '[unclosed'] }, 'patterns[1]', /Go RE2 syntax .*missing closing \]/],
      [{ patterns: ['(?=Bot)'] }, 'patterns[0]', /lookahead .* not supported \(RE2 has none\)/],
      [{ patterns: ['(a)\\1'] }, 'patterns[0]', /backreferences .* not supported/],
      [{ patterns: ['(?U)a+'] }, 'patterns[0]', /U \(ungreedy\) flag is not supported/],
      [{ patterns: ['a{1001}'] }, 'patterns[0]', /repeat count above 1000/],
      [{ patterns: ['a**'] }, 'patterns[0]', /nothing to repeat/],
      [{ cache_size: -1 }, 'cache_size', /an integer >= 0/],
      [{ cache_size: 10.5 }, 'cache_size', /an integer >= 0/],
      [{ cache_size: '100' }, 'cache_size', /an integer >= 0/],
      [{ cache_size: 2_000_000 }, 'cache_size', /at most 1000000 entries.*not supported by this version/],
      [{ empty_user_agent_is_bot: 'yes' }, 'empty_user_agent_is_bot', /true or false/],
    ];
    for (const [options, key, expected] of cases) {
      const issue = errorAt(withDetector(options), `${AT}.${key}`);
      assert.match(`${issue.expected} / ${issue.found}`, expected, JSON.stringify(options));
    }
    assert.match(errorAt(withDetector(['bot']), AT).expected, /an object with bot detector options/);
  });

  it('is accepted at service and endpoint level, refused at backend level', () => {
    assert.deepEqual(load(withEndpoint({ extra_config: { [NS]: { deny: ['x'] } } })).errors, []);
    const issue = errorAt(withBackend({ extra_config: { [NS]: { deny: ['x'] } } }), `$.endpoints[0].backend[0].extra_config["${NS}"]`);
    assert.match(issue.found, /not supported by this version \(it belongs at service or endpoint level\)/);
  });

  it('warns about renamed and unknown keys, a detector with no rules, and patterns that match everything', () => {
    const result = load(withDetector({ blacklist: ['a'], whitelist: ['b'], cacheSize: 10, patterns: ['.*', 'ok'] }));
    assert.deepEqual(result.errors, []);
    assert.match(issueAt(result.warnings, `${AT}.blacklist`).expected, /did you mean "deny"/);
    assert.match(issueAt(result.warnings, `${AT}.whitelist`).expected, /did you mean "allow"/);
    assert.match(issueAt(result.warnings, `${AT}.cacheSize`).expected, /did you mean "cache_size"/);
    assert.match(issueAt(result.warnings, `${AT}.patterns[0]`).found, /matches the empty string and so every User-Agent/);
    assert.match(issueAt(load(withDetector({})).warnings, AT).found, /no rules: it refuses nothing/);
  });

  it('parses into plain data that survives structuredClone', () => {
    const cfg = loadTestConfig({
      endpoints: [{ endpoint: '/x', backend: [{ host: ['http://127.0.0.1:9'], url_pattern: '/' }], extra_config: { [NS]: { patterns: ['(?i)bot'] } } }],
      extra_config: { [NS]: { allow: ['a'], deny: ['b'], patterns: ['(?i)crawler', '[[:digit:]]{3}'], cache_size: 10, empty_user_agent_is_bot: true } },
    });
    assert.deepEqual(structuredClone(cfg.namespaces), cfg.namespaces);
    assert.deepEqual(structuredClone(cfg.endpoints[0]!.namespaces), cfg.endpoints[0]!.namespaces);
    const o = cfg.namespaces.find((u) => u.name === NS)!.options as BotDetectorOptions;
    assert.deepEqual(o.patterns[0], { source: 'crawler', flags: 'iu' });
  });
});

describe('RE2 patterns on JavaScript RegExp', () => {
  const matches = (pattern: string, input: string): boolean => {
    const t = translateRe2(pattern);
    assert.ok(t.ok, `${pattern}: ${t.ok ? '' : t.reason}`);
    return new RegExp(t.source, t.flags).test(input);
  };

  it('translates the RE2 syntax JavaScript spells differently', () => {
    const cases: [string, string, boolean][] = [
      ['(?i)googlebot', 'Mozilla/5.0 (compatible; Googlebot/2.1)', true],
      ['a(?i)b', 'aB', true],
      ['a(?i)b', 'AB', false],
      ['x(?i)y|z', 'Z', true], // RE2: the flag holds to the end of the group, across '|'
      ['(x(?i)y|z)w', 'Zw', true],
      ['(x(?i)y|z)w', 'ZW', false],
      ['(?i)x(?-i)y', 'XY', false],
      ['(?s:a.b)', 'a\nb', true],
      ['a.b', 'a\nb', false],
      ['(?P<name>bot)', 'bot', true],
      ['[[:alpha:]]+[[:digit:]]', 'abc1', true],
      ['^[[:^alpha:]]+$', 'abc', false],
      ['\\Qa.b*\\E', 'a.b*', true],
      ['\\Qa.b*\\E', 'axbb', false],
      ['\\Abot\\z', 'bot', true],
      ['\\Abot\\z', 'bot\n', false],
      ['\\pL\\p{Greek}\\PN', 'éαx', true],
      ['\\p{^Greek}', 'α', false],
      ['[]a]', ']', true],
      ['\\#\\:\\-\\_', '#:-_', true],
      ['\\x41\\x{42}\\103\\0', 'ABC\0', true],
      ['a{,3}', 'a{,3}', true], // not a repeat in RE2: literal
      ['\\s', '\u000b', false], // RE2's \s has no vertical tab
      ['\\S', '\u00a0', true], // and no Unicode spaces
      ['\\a', '\u0007', true],
    ];
    for (const [pattern, input, expected] of cases) assert.equal(matches(pattern, input), expected, `${JSON.stringify(pattern)} on ${JSON.stringify(input)}`);
  });

  it('refuses what RE2 does not have or JavaScript cannot express, with the reason', () => {
    const cases: [string, RegExp][] = [
      ['(a)\\1', /backreferences/],
      ['(?P=name)', /backreferences/],
      ['(?=a)', /lookahead/],
      ['(?<=a)b', /lookbehind/],
      ['(?U)a*', /ungreedy/],
      ['\\C', /any byte/],
      ['a{2000}', /above 1000/],
      ['a{3,2}', /maximum below minimum/],
      ['\\e', /invalid escape sequence \\e/],
      ['\\', /trailing backslash/],
      ['[a-', /missing closing \]/],
      ['[[:alfa:]]', /unknown POSIX class/],
      ['(?x)a', /invalid flags/],
      ['(', /unterminated group/],
    ];
    for (const [pattern, reason] of cases) {
      const t = translateRe2(pattern);
      assert.ok(!t.ok, pattern);
      assert.match(t.reason, reason, pattern);
    }
  });
});

describe('security/bot-detector over HTTP', () => {
  let backend: TestBackend;
  const open: TestGateway[] = [];
  before(async () => {
    backend = await startJsonBackend({ '/ok': { ok: true } });
  });
  after(async () => {
    await Promise.all(open.map((g) => g.close()));
    await backend.close();
  });

  const endpoints = () => [
    { endpoint: '/ok', backend: [{ host: [backend.url], url_pattern: '/ok' }] },
    { endpoint: '/guarded', backend: [{ host: [backend.url], url_pattern: '/ok' }], extra_config: { [NS]: { deny: ['EndpointBot/1.0'] } } },
  ];
  async function gateway(options: Record<string, unknown> | undefined): Promise<TestGateway> {
    const gw = await startGateway({ endpoints: endpoints(), ...(options ? { extra_config: { [NS]: options } } : {}) });
    open.push(gw);
    return gw;
  }
  const ua = (gw: TestGateway, agent: string | undefined, path = '/ok') => request(gw.url, path, { headers: agent === undefined ? {} : { 'user-agent': agent } });

  /** The verdict cache of the (only) detector with a cache in `gw`, read through PolicyState as a plan would. */
  async function verdictCache(gw: TestGateway): Promise<LRUCache<string, boolean>> {
    const keys = gw.state.keys().filter((k) => k.startsWith(`${NS}\u0000`));
    assert.equal(keys.length, 1, `one verdict cache, found ${keys.length}`);
    const scope = gw.state.scope();
    const cache = scope.get<LRUCache<string, boolean>>(keys[0]!, () => assert.fail('the cache must exist'));
    await scope.release();
    return cache;
  }

  it('deny: an exact User-Agent gets 403 with an empty body and no backend call', async () => {
    const gw = await gateway({ deny: ['BadBot/1.0', 'facebookexternalhit/1.1'] });
    const calls = backend.requests.length;
    for (const agent of ['BadBot/1.0', 'facebookexternalhit/1.1']) {
      const res = await ua(gw, agent);
      assert.equal(res.status, 403, agent);
      assert.equal(res.body, '', agent);
    }
    assert.equal(backend.requests.length, calls, 'no backend call for a bot');
    assert.equal((await ua(gw, 'BadBot/1.0 (compatible)')).status, 200, 'deny is an exact match, not a substring');
    assert.equal((await ua(gw, 'badbot/1.0')).status, 200, 'and case-sensitive');
    assert.equal((await ua(gw, 'BadBot/1.0', '/__health')).status, 403, 'service level: before routing, for every path');
  });

  it('patterns: a regex match anywhere in the User-Agent is a bot', async () => {
    const gw = await gateway({ patterns: ['(Pingdom.com_bot_version_).*', '(?i)crawler', '^curl/\\d+'] });
    assert.equal((await ua(gw, 'Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)')).status, 403);
    assert.equal((await ua(gw, 'Mozilla/5.0 (compatible; SuperCRAWLER/2.0)')).status, 403);
    assert.equal((await ua(gw, 'curl/8.5.0')).status, 403);
    assert.equal((await ua(gw, 'Mozilla/5.0 curl/8.5.0')).status, 200, '^ anchors at the start');
    assert.equal((await ua(gw, 'Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0')).status, 200);
  });

  it('allow wins over deny and patterns (KrakenD checks allow, then deny, then patterns)', async () => {
    const gw = await gateway({ allow: ['MonitorBot/1.0'], deny: ['MonitorBot/1.0', 'OtherBot/1.0'], patterns: ['Bot'] });
    assert.equal((await ua(gw, 'MonitorBot/1.0')).status, 200, 'in allow, deny and a pattern: allowed');
    assert.equal((await ua(gw, 'OtherBot/1.0')).status, 403);
    assert.equal((await ua(gw, 'MonitorBot/1.1')).status, 403, 'allow is exact: a near miss falls to the patterns');
  });

  it('empty or missing User-Agent: allowed by default, a bot with empty_user_agent_is_bot', async () => {
    const lenient = await gateway({ patterns: ['.+'] });
    assert.equal((await ua(lenient, undefined)).status, 200, 'missing');
    assert.equal((await ua(lenient, '')).status, 200, 'empty');
    const strict = await gateway({ empty_user_agent_is_bot: true });
    assert.equal((await ua(strict, undefined)).status, 403, 'missing');
    assert.equal((await ua(strict, '')).status, 403, 'empty');
    const text = await raw(strict.port, 'GET /ok HTTP/1.1\r\nHost: x\r\nUser-Agent:\r\nConnection: close\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 403 /, 'an empty header on the wire');
    assert.equal((await ua(strict, 'Mozilla/5.0')).status, 200);
  });

  it('endpoint level: applies to its endpoint only, after the service-level detector', async () => {
    const none = await gateway(undefined);
    assert.equal((await ua(none, 'EndpointBot/1.0', '/guarded')).status, 403);
    assert.equal((await ua(none, 'EndpointBot/1.0', '/ok')).status, 200);
    const both = await gateway({ deny: ['ServiceBot/1.0'] });
    assert.equal((await ua(both, 'ServiceBot/1.0', '/guarded')).status, 403);
    assert.equal((await ua(both, 'EndpointBot/1.0', '/guarded')).status, 403);
    assert.equal((await ua(both, 'EndpointBot/1.0', '/ok')).status, 200);
  });

  it('non-ASCII user agents are compared as UTF-8 text, as Go does', async () => {
    const gw = await gateway({ deny: ['Bötbot/1.0'], patterns: ['Ünïcode'] });
    const send = (agent: string) =>
      raw(gw.port, Buffer.concat([Buffer.from('GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\nUser-Agent: '), Buffer.from(agent, 'utf8'), Buffer.from('\r\n\r\n')]));
    assert.match(await send('Bötbot/1.0'), /^HTTP\/1\.1 403 /);
    assert.match(await send('x Ünïcode y'), /^HTTP\/1\.1 403 /);
    assert.match(await send('Bötbot/2.0'), /^HTTP\/1\.1 200 /);
  });

  it('cache_size: verdicts are cached per User-Agent, the cache stays bounded and evicted agents are judged again', async () => {
    const gw = await gateway({ patterns: ['Bot'], cache_size: 50 });
    for (let i = 0; i < 200; i++) {
      const agent = i % 2 === 0 ? `SomeBot/${i}` : `Browser/${i}`;
      assert.equal((await ua(gw, agent)).status, i % 2 === 0 ? 403 : 200, agent);
    }
    const cache = await verdictCache(gw);
    assert.equal(cache.size, 50);
    assert.equal(cache.get('Browser/199'), false);
    assert.equal(cache.get('SomeBot/198'), true);
    assert.equal(cache.has('SomeBot/0'), false, 'the least recently used were evicted');
    assert.equal((await ua(gw, 'SomeBot/0')).status, 403, 'an evicted agent is judged again');
  });

  it('cache_size: an unchanged detector keeps its verdicts across a reload; a changed one starts fresh', async () => {
    const options = { deny: ['A'], cache_size: 10 };
    const gw = await gateway(options);
    await ua(gw, 'A');
    const before = await verdictCache(gw);
    await gw.reload({ endpoints: endpoints(), extra_config: { [NS]: options } });
    assert.equal(await verdictCache(gw), before, 'same options: same cache');
    assert.equal(before.get('A'), true);
    await gw.reload({ endpoints: endpoints(), extra_config: { [NS]: { ...options, deny: ['B'] } } });
    // The retiring plan releases its entry once idle; the new plan has its own.
    const keys = () => gw.state.keys().filter((k) => k.startsWith(`${NS}\u0000`));
    while (keys().length > 1) await new Promise((r) => setImmediate(r));
    const fresh = await verdictCache(gw);
    assert.notEqual(fresh, before);
    assert.equal((await ua(gw, 'A')).status, 200, 'the old verdict is gone with the old rule');
  });

  it('a User-Agent longer than the cap is a bot, without running the patterns (a 15 KB one is answered at once)', async () => {
    // Twenty patterns that each cost O(n^2) on a long run of "a": ~0.1 s each on 15 KB if they ran.
    const patterns = Array.from({ length: 20 }, (_, i) => `a*${String.fromCharCode(98 + i)}`);
    const gw = await gateway({ patterns, allow: ['a'.repeat(3000)], cache_size: 100 });
    const long = 'a'.repeat(15_000);
    let started = performance.now();
    const res = await ua(gw, long);
    const elapsed = performance.now() - started;
    assert.equal(res.status, 403);
    assert.ok(elapsed < 500, `answered in ${elapsed.toFixed(0)} ms`);
    assert.equal((await verdictCache(gw)).has(long), false, 'over-long agents are not cached');

    started = performance.now();
    assert.equal((await ua(gw, 'a'.repeat(MAX_USER_AGENT_INSPECTED))).status, 200, 'at the cap the patterns still run (and do not match)');
    assert.ok(performance.now() - started < 2000);
    assert.equal((await ua(gw, 'a'.repeat(MAX_USER_AGENT_INSPECTED + 1))).status, 403);
    assert.equal((await ua(gw, 'a'.repeat(3000))).status, 200, 'allow is still honoured beyond the cap');

    // 16 KB: node:http's header limit refuses it before any policy runs.
    started = performance.now();
    const huge = await raw(gw.port, `GET /ok HTTP/1.1\r\nHost: x\r\nUser-Agent: ${'a'.repeat(16 * 1024)}\r\n\r\n`);
    assert.match(huge, /^HTTP\/1\.1 431 /);
    assert.ok(performance.now() - started < 1000);
  });

  it('the LRU stays bounded with 10,000 distinct user agents (guard called directly)', () => {
    const state = new PolicyState();
    const scope = state.scope();
    const options: BotDetectorOptions = { allow: [], deny: [], patterns: [{ source: 'Bot', flags: 'u' }], cacheSize: 100, emptyUserAgentIsBot: false };
    const ctx = { scope: 'service', state: scope } as unknown as CompileContext;
    const guard = securityBotDetector.compile!(options, ctx)!.guard!;
    const cache = scope.get<LRUCache<string, boolean>>(state.keys()[0]!, () => assert.fail('cache missing'));
    let bots = 0;
    for (let i = 0; i < 10_000; i++) {
      const req = { headers: { 'user-agent': i % 3 === 0 ? `Bot-${i}-${'x'.repeat(i % 500)}` : `Agent-${i}` } } as unknown as ProxyRequest;
      try {
        guard(req);
      } catch (e) {
        assert.ok(e instanceof PolicyError && e.code === 'BOT_DETECTED' && e.status === 403);
        bots++;
      }
      assert.ok(cache.size <= 100);
    }
    assert.equal(bots, 3334);
    assert.equal(cache.size, 100);
    assert.equal(cache.has('Agent-9998'), true);
    assert.equal(cache.has('Agent-1'), false);
  });
});
