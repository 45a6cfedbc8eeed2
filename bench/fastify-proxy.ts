// The Node.js comparison point: @fastify/http-proxy forwarding every path to
// one upstream over undici keep-alive connections (its default client), no
// logging. Run: node bench/fastify-proxy.ts --port P --upstream http://127.0.0.1:B

import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string' }, upstream: { type: 'string' }, connections: { type: 'string', default: '64' } } });
if (!values.port || !values.upstream) {
  process.stderr.write('fastify-proxy: --port and --upstream are required\n');
  process.exit(2);
}

const app = Fastify({ logger: false, disableRequestLogging: true });
await app.register(proxy, {
  upstream: values.upstream,
  prefix: '/',
  undici: { connections: Number(values.connections), pipelining: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000 },
});
await app.listen({ host: '127.0.0.1', port: Number(values.port) });
process.stderr.write(`fastify-proxy listening on 127.0.0.1:${values.port} -> ${values.upstream}\n`);

const stop = () => {
  app.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
