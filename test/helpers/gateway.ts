// Start the gateway in-process on a free loopback port from a config object.

import { Writable } from 'node:stream';
import { formatIssue, loadConfigText } from '../../src/config/load.ts';
import type { ServiceConfig } from '../../src/config/types.ts';
import { PolicyState } from '../../src/namespaces/state.ts';
import { compilePlan } from '../../src/plan/compile.ts';
import { UpstreamPools } from '../../src/proxy/upstream.ts';
import { Gateway } from '../../src/server/server.ts';

export interface TestGateway {
  url: string;
  port: number;
  gateway: Gateway;
  /** Policy state shared by every plan of this gateway (as LocalServing shares it across reloads). */
  state: PolicyState;
  /** Compile `config` and swap it in, as a reload does: pools and policy state are kept. */
  reload(config: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}

/** Access-log lines go here instead of the test runner's stdout. */
export const accessLines: string[] = [];
const accessSink = new Writable({
  write(chunk, _enc, done) {
    accessLines.push(...String(chunk).split('\n').filter(Boolean));
    done();
  },
});

/** Load a test configuration object (version 3 added); throws with every issue when it is invalid. */
export function loadTestConfig(config: Record<string, unknown>): ServiceConfig {
  const result = loadConfigText(JSON.stringify({ version: 3, ...config }), 'test.json', { env: {} });
  if (result.errors.length) throw new Error('invalid test config:\n' + result.errors.map(formatIssue).join('\n'));
  return { ...result.config!, listenIp: '127.0.0.1' };
}

export async function startGateway(config: Record<string, unknown>, opts: { debug?: boolean } = {}): Promise<TestGateway> {
  const pools = new UpstreamPools();
  const state = new PolicyState();
  const compile = (c: Record<string, unknown>) => compilePlan(loadTestConfig(c), { accessLogOut: accessSink, pools, state });
  const gateway = new Gateway(compile(config), { port: 0, forceDebug: opts.debug });
  const address = await gateway.listen();
  const retired: Promise<void>[] = [];
  return {
    url: `http://127.0.0.1:${address.port}`,
    port: address.port,
    gateway,
    state,
    async reload(next) {
      retired.push(gateway.swap(compile(next)).close(1000));
    },
    async close() {
      await gateway.shutdown(1000);
      await Promise.all(retired);
      await Promise.all([pools.close(), state.close()]);
    },
  };
}
