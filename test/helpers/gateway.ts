// Start the gateway in-process on a free loopback port from a config object.

import { loadConfigText } from '../../src/config/load.ts';
import { formatIssue } from '../../src/config/load.ts';
import { compilePlan } from '../../src/plan/compile.ts';
import { Gateway } from '../../src/server/server.ts';

export interface TestGateway {
  url: string;
  port: number;
  gateway: Gateway;
  close(): Promise<void>;
}

import { Writable } from 'node:stream';

/** Access-log lines go here instead of the test runner's stdout. */
export const accessLines: string[] = [];
const accessSink = new Writable({
  write(chunk, _enc, done) {
    accessLines.push(...String(chunk).split('\n').filter(Boolean));
    done();
  },
});

export async function startGateway(config: Record<string, unknown>, opts: { debug?: boolean } = {}): Promise<TestGateway> {
  const result = loadConfigText(JSON.stringify({ version: 3, ...config }), 'test.json', { env: {} });
  if (result.errors.length) throw new Error('invalid test config:\n' + result.errors.map(formatIssue).join('\n'));
  const cfg = { ...result.config!, listenIp: '127.0.0.1' };
  const gateway = new Gateway(compilePlan(cfg, { accessLogOut: accessSink }), { port: 0, forceDebug: opts.debug });
  const address = await gateway.listen();
  return {
    url: `http://127.0.0.1:${address.port}`,
    port: address.port,
    gateway,
    close: () => gateway.shutdown(1000),
  };
}
