// Support for the fleet tests (test/fleet/): gateways in fleet mode as real
// `portico run` processes, control planes (test/controlplane/support.ts),
// constant keep-alive load that counts every response, /__health polling, and
// envelopes written straight into etcd. Every process started here is tracked
// and stopped by its pid (stopEverything), whatever happens in a test.

import type { Etcd3 } from 'etcd3';
import { Pool } from 'undici';
import { configHash } from '../../src/lifecycle/canonical.ts';
import type { ConfigEnvelope } from '../../src/controlplane/protocol.ts';
import { stopAll as stopControlPlanes, startControlPlane, call, type CallOptions, type ControlPlaneProcess } from '../controlplane/support.ts';
import { makeFleetPki, type FleetPki } from '../controlplane/tls-support.ts';
import { get } from '../helpers/http.ts';
import { LogLines } from '../helpers/log-lines.ts';
import { tempDir } from '../helpers/lifecycle-support.ts';
import { startCli, type Running } from '../helpers/process.ts';

export { tempDir };

/** Short enough to see `degraded` within a test, long enough not to flap. */
export const STALE_AFTER = '1s';
export const STALE_AFTER_MS = 1000;

/** A valid config with one endpoint /x calling the echo backend at /<tag>: GET /x answers {path: "/<tag>"}. */
export function fleetConfig(backendUrl: string, tag: string): Record<string, unknown> {
  return {
    version: 3,
    timeout: '3s',
    extra_config: { router: { disable_access_log: true } },
    endpoints: [{ endpoint: '/x', backend: [{ host: [backendUrl], url_pattern: `/${tag}` }] }],
  };
}

/** Valid JSON with a correct hash, but not a valid Portico config: an endpoint with no backend. */
export function invalidConfig(): Record<string, unknown> {
  return { version: 3, timeout: '3s', endpoints: [{ endpoint: '/x', backend: [] }] };
}

export function envelope(version: number, config: unknown, message?: string): ConfigEnvelope {
  return { version, hash: configHash(config), created_at: new Date().toISOString(), ...(message ? { message } : {}), config };
}

/** Write an envelope as <prefix>/current directly (bypassing the control plane and its validation). */
export async function putCurrent(client: Etcd3, env: ConfigEnvelope, prefix = '/portico'): Promise<void> {
  await client.put(`${prefix}/current`).value(JSON.stringify(env));
}

// --- gateways --------------------------------------------------------------

export interface Gateway {
  id: string;
  base: string;
  cacheDir: string;
  running: Running;
  logs: LogLines;
  /** SIGTERM, SIGKILL after 5 s; resolves to the exit code. */
  stop(): Promise<number | null>;
}

const gateways = new Set<Gateway>();

export interface GatewayOptions {
  id: string;
  controlPlane?: string;
  etcd?: string;
  cacheDir?: string;
  staleAfter?: string;
  args?: string[];
  /** More environment (e.g. PORTICO_ETCD_PASSWORD). */
  env?: Record<string, string>;
}

/** `portico run` in fleet mode on a free port with its own cache directory; resolves once it listens. */
export async function startGateway(o: GatewayOptions): Promise<Gateway> {
  const cacheDir = o.cacheDir ?? tempDir(`cache-${o.id}`);
  const source = o.controlPlane ? ['--control-plane', o.controlPlane] : ['--etcd', o.etcd!];
  const running = await startCli(
    ['run', ...source, '--node-id', o.id, '-p', '0', '--cache-dir', cacheDir, '--stale-after', o.staleAfter ?? STALE_AFTER, ...(o.args ?? [])],
    { PORTICO_NODE_TOKEN: '', ...o.env },
  );
  const gw: Gateway = {
    id: o.id,
    base: `http://127.0.0.1:${running.port}`,
    cacheDir,
    running,
    logs: new LogLines(running),
    async stop() {
      const c = running.child;
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGTERM');
        const t = setTimeout(() => c.kill('SIGKILL'), 5000);
        await running.exited;
        clearTimeout(t);
      }
      gateways.delete(gw);
      return c.exitCode;
    },
  };
  gateways.add(gw);
  return gw;
}

/** SIGKILL every gateway and control plane this test process started and has not stopped. */
export async function stopEverything(): Promise<void> {
  await Promise.all(
    [...gateways].map(async (g) => {
      const c = g.running.child;
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGKILL');
        await g.running.exited;
      }
      gateways.delete(g);
    }),
  );
  await stopControlPlanes();
}

// --- control planes --------------------------------------------------------

/** A control plane on `port` (0: a free one); startControlPlane's own --listen comes first, so this one wins. */
export function startCp(args: string[], port = 0): Promise<ControlPlaneProcess> {
  return startControlPlane([...args, '--listen', `127.0.0.1:${port}`]);
}

/** PUT /v1/config; asserts nothing, returns status, body and when the answer arrived. `opts`: token and TLS (secureLink().admin). */
export async function publish(cpUrl: string, config: object, opts: CallOptions = {}): Promise<{ status: number; version: number; hash: string; at: number; body: string }> {
  const r = await call(cpUrl, '/v1/config', { ...opts, body: config });
  const at = performance.now();
  const j = r.status < 300 ? r.json() : {};
  return { status: r.status, version: j.version, hash: j.hash, at, body: r.body };
}

/**
 * What a control plane and its gateways need to talk HTTPS with client
 * certificates bound to node ids (a throwaway PKI; gw-1 and gw-2 have
 * certificates), and what a test needs to call the admin API then.
 */
export interface SecureLink {
  pki: FleetPki;
  cpArgs: string[];
  gatewayArgs(id: 'gw-1' | 'gw-2'): string[];
  /** Token and CA for call()/publish() on the admin API. */
  admin: CallOptions;
  cleanup(): void;
}

export async function secureLink(): Promise<SecureLink> {
  const pki = await makeFleetPki();
  const token = 'fleet-admin-token';
  return {
    pki,
    cpArgs: ['--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--client-ca', pki.ca, '--admin-token', token],
    gatewayArgs: (id) => {
      const [cert, key] = id === 'gw-1' ? [pki.gw1Cert, pki.gw1Key] : [pki.gw2Cert, pki.gw2Key];
      return ['--control-plane-ca', pki.ca, '--control-plane-cert', cert, '--control-plane-key', key];
    },
    admin: { token, tls: { ca: pki.read(pki.ca) } },
    cleanup: () => pki.cleanup(),
  };
}

// --- observing -------------------------------------------------------------

export interface Health {
  status: string;
  ready: boolean;
  config: { version: number; hash: string; source: string } | null;
  sync: { state: string; last_success_seconds_ago: number | null; last_error: string | null };
  rejected: { version: number | null; hash: string | null; source: string; errors: string[] } | null;
}

export async function health(base: string): Promise<Health> {
  const r = await get(base, '/__health');
  if (r.status !== 200) throw new Error(`/__health answered ${r.status}`);
  return r.json() as Health;
}

/** Which config served GET /x: the tag, or `status <n>`. */
export async function servedTag(base: string): Promise<string> {
  const r = await get(base, '/x');
  if (r.status !== 200) return `status ${r.status}`;
  return String(r.json().path).slice(1);
}

/** Poll until `fn` is truthy (returned), every `everyMs`; throws with `what` (and the last value seen) after timeoutMs. */
export async function until<T>(what: string, fn: () => Promise<T | false | undefined | null>, timeoutMs: number, everyMs = 20): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Wait until GET /x on `g` answers `tag`; resolves to performance.now() at that moment. */
export async function waitServing(g: Gateway, tag: string, timeoutMs: number): Promise<number> {
  await until(`${g.id} serving ${tag}`, async () => (await servedTag(g.base)) === tag, timeoutMs, 10);
  return performance.now();
}

// --- load ------------------------------------------------------------------

export interface LoadStats {
  responses: number;
  ok: number;
  failures: number;
  perGateway: Record<string, { responses: number; failures: number }>;
  statuses: Record<string, number>;
  samples: string[];
}

/**
 * `loops` keep-alive request loops per gateway on GET /x, each pausing
 * `pauseMs` between requests (so the load is constant without eating every
 * core). Every response is counted; a failure is a non-200, a body that is not
 * {path}, or a client error (reset, refused, timeout).
 */
export class Load {
  readonly #pools: Pool[] = [];
  readonly #loops: Promise<void>[] = [];
  #stop = false;
  readonly stats: LoadStats = { responses: 0, ok: 0, failures: 0, perGateway: {}, statuses: {}, samples: [] };

  constructor(gws: Gateway[], loops = 4, pauseMs = 2) {
    for (const g of gws) {
      const pool = new Pool(g.base, { connections: loops, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 5_000, bodyTimeout: 5_000 });
      this.#pools.push(pool);
      const per = (this.stats.perGateway[g.id] = { responses: 0, failures: 0 });
      for (let i = 0; i < loops; i++) this.#loops.push(this.#loop(pool, per, pauseMs));
    }
  }

  get responses(): number {
    return this.stats.responses;
  }

  async #loop(pool: Pool, per: { responses: number; failures: number }, pauseMs: number): Promise<void> {
    while (!this.#stop) {
      const fail = (why: string) => {
        this.stats.failures++;
        per.failures++;
        if (this.stats.samples.length < 20) this.stats.samples.push(why);
      };
      try {
        const r = await pool.request({ path: '/x', method: 'GET' });
        const body = await r.body.text();
        this.stats.responses++;
        per.responses++;
        this.stats.statuses[r.statusCode] = (this.stats.statuses[r.statusCode] ?? 0) + 1;
        if (r.statusCode !== 200) fail(`status ${r.statusCode}: ${body.slice(0, 200)}`);
        else if (!/^\{"path":"\/[^"]+"\}$/.test(body)) fail(`body ${body.slice(0, 200)}`);
        else this.stats.ok++;
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        fail(`${e.code ?? e.name}: ${e.message}`);
      }
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
    }
  }

  /** Resolve once at least `n` more responses arrived (or throw after timeoutMs). */
  async more(n: number, timeoutMs = 5000): Promise<void> {
    const target = this.stats.responses + n;
    await until(`${n} more responses`, async () => this.stats.responses >= target, timeoutMs, 10);
  }

  async stop(): Promise<LoadStats> {
    this.#stop = true;
    await Promise.allSettled(this.#loops);
    await Promise.allSettled(this.#pools.map((p) => p.close()));
    return this.stats;
  }
}

export function ms(n: number): string {
  return `${Math.round(n)} ms`;
}
