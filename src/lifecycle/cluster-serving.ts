// Serving on every core (--workers N): the primary process keeps the lifecycle
// (sources, versions, validation, last known good) and hands each accepted
// snapshot to N worker processes, which compile it, then swap it at one
// moment (two phases, see #reload). Workers share the listening port through node:cluster.
// A worker that dies is replaced, and the replacement is given the current
// snapshot before it starts accepting connections.

import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import { applyLogging } from '../namespaces/telemetry-logging.ts';
import { log } from '../telemetry/log.ts';
import type { WorkerReport } from '../telemetry/stats.ts';
import type { Serving, ServingHooks } from './serving.ts';
import type { Snapshot } from './snapshot.ts';
import type { FromWorker, ToWorker } from './worker-protocol.ts';

const WORKER_MAIN = fileURLToPath(new URL('./worker-main.ts', import.meta.url));
const REPLY_TIMEOUT_MS = 30_000;
/** How far ahead of now a reload's swap is set: IPC delivery to every worker takes well under this. */
const COMMIT_DELAY_MS = 25;
/** A worker that cannot say how it is within this time is reported not alive (its event loop is stuck). */
const REPORT_TIMEOUT_MS = 1_000;

/**
 * Worker environment: two malloc arenas instead of one per thread (~10 MB less
 * RSS per worker), unless the user set MALLOC_ARENA_MAX. V8's heap flags are
 * left alone: smaller young generations save 45-75 MB per worker but cost
 * 7-20% throughput (docs/performance.md, "Memory"); NODE_OPTIONS reaches the
 * workers for anyone who prefers the memory.
 */
export function workerEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return env.MALLOC_ARENA_MAX === undefined ? { MALLOC_ARENA_MAX: '2' } : {};
}
const HEALTH_PUSH_MS = 1_000;
/** node:cluster hands every worker the primary's socket, so port 0 is one port for all; Bun's cluster does not. */
const SHARES_PORT_ZERO = process.versions.bun === undefined;

export interface ClusterServingOptions {
  workers: number;
  debug?: boolean;
}

export class ClusterServing implements Serving {
  readonly #opts: ClusterServingOptions;
  readonly #hooks: ServingHooks;
  readonly #live = new Set<Worker>();
  /** Worker by slot (0..workers-1): a replacement takes its predecessor's slot, so reports stay one per slot. */
  readonly #slots: (Worker | undefined)[] = [];
  #reportIds = 0;
  #current: Snapshot | undefined;
  /** The newest snapshot handed out (set before workers confirm it): replacements start from it. */
  #target: Snapshot | undefined;
  #listening = false;
  /** Bun: the port every worker listens on, once the first one has one (see listen()). */
  #port: number | undefined;
  #stopping = false;
  #healthTimer: NodeJS.Timeout | undefined;

  constructor(hooks: ServingHooks, opts: ClusterServingOptions) {
    this.#hooks = hooks;
    this.#opts = opts;
    cluster.setupPrimary({
      exec: WORKER_MAIN,
      serialization: 'advanced',
      silent: false,
    });
  }

  async apply(next: Snapshot, previous: Snapshot | undefined): Promise<void> {
    this.#target = next;
    if (this.#live.size === 0) {
      await Promise.all(Array.from({ length: this.#opts.workers }, (_, slot) => this.#spawn(next, slot)));
    } else {
      await this.#reload(next, previous);
    }
    this.#current = next;
    // The primary's own lines (lifecycle, reloads) follow the config as the workers' do.
    applyLogging(next.config);
    this.healthChanged();
  }

  /**
   * A reload in two phases, so the instance serves one version at a time:
   * every worker compiles and holds the new plan; only when all have, each is
   * told to swap at the same wall-clock moment (COMMIT_DELAY_MS ahead, time for
   * the message to arrive). Requests that reach any worker after that moment
   * run on the new plan. If a worker cannot compile (workers compile what the
   * primary validated, so the cause is environmental: a TLS file gone), all
   * drop it and the offer fails: nothing changes. A worker that dies meanwhile
   * is left out (its replacement starts from the new snapshot).
   */
  async #reload(next: Snapshot, previous: Snapshot | undefined): Promise<void> {
    const workers = [...this.#live];
    const results = await Promise.allSettled(workers.map((w) => this.#ask(w, { type: 'prepare', snapshot: next, previous }, 'prepared')));
    const failed = results.flatMap((r, i) => (r.status === 'rejected' && !workers[i].isDead() ? [r.reason as Error] : []));
    if (failed.length > 0) {
      for (const w of workers) send(w, { type: 'abort' });
      this.#target = this.#current;
      throw new Error(`${failed.length} of ${workers.length} workers could not compile the configuration: ${failed[0].message}`);
    }
    const at = Date.now() + COMMIT_DELAY_MS;
    const committed = workers.filter((w) => !w.isDead()).map((w) => this.#ask(w, { type: 'commit', at }, 'committed'));
    for (const r of await Promise.allSettled(committed)) {
      if (r.status === 'rejected') log('error', 'a worker could not swap in the new configuration', { error: String(r.reason) });
    }
  }

  async listen(): Promise<number> {
    const workers = [...this.#live];
    let port: number;
    if (SHARES_PORT_ZERO) {
      const ports = await Promise.all(workers.map((w) => this.#ask(w, { type: 'listen' }, 'listening')));
      port = (ports[0] as { port: number }).port;
    } else {
      // Bun's workers share no listening socket through the primary: a port picked by the
      // system (port 0) would differ per worker. The first one picks it, the rest take the same.
      port = (await this.#ask(workers[0], { type: 'listen' }, 'listening') as { port: number }).port;
      await Promise.all(workers.slice(1).map((w) => this.#ask(w, { type: 'listen', port }, 'listening')));
      this.#port = port;
    }
    this.#listening = true;
    this.#healthTimer = setInterval(() => this.healthChanged(), HEALTH_PUSH_MS);
    this.#healthTimer.unref();
    return port;
  }

  healthChanged(): void {
    const msg = this.#healthMessage();
    for (const w of this.#live) send(w, msg);
  }

  #healthMessage(): ToWorker {
    return { type: 'health', health: this.#hooks.health(), ready: this.#hooks.ready() };
  }

  async shutdown(graceMs: number): Promise<void> {
    this.#stopping = true;
    if (this.#healthTimer) clearInterval(this.#healthTimer);
    await Promise.all(
      [...this.#live].map(
        (w) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => w.process.kill('SIGKILL'), graceMs + 5_000);
            w.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            send(w, { type: 'shutdown', graceMs });
          }),
      ),
    );
  }

  async workers(withMetrics: boolean): Promise<WorkerReport[]> {
    return Promise.all(
      Array.from({ length: this.#opts.workers }, async (_, slot): Promise<WorkerReport> => {
        const w = this.#slots[slot];
        if (!w) return { slot, alive: false, error: 'not running (being replaced)' };
        const id = ++this.#reportIds;
        try {
          const m = await this.#ask(w, { type: 'report', id, metrics: withMetrics }, 'report', REPORT_TIMEOUT_MS, (r) => r.type === 'report' && r.id === id);
          return { slot, alive: true, ...(m as Extract<FromWorker, { type: 'report' }>).report };
        } catch (err) {
          return { slot, pid: w.process.pid, alive: false, error: (err as Error).message };
        }
      }),
    );
  }

  /** Fork a worker into `slot`, give it `snapshot`, and (once the fleet listens) make it listen too. */
  async #spawn(snapshot: Snapshot, slot: number): Promise<Worker> {
    const w = cluster.fork({ ...workerEnv(process.env), PORTICO_WORKER_DEBUG: this.#opts.debug ? '1' : '' });
    this.#live.add(w);
    this.#slots[slot] = w;
    // It says 'ready' once it listens for messages (sent earlier, they would be lost).
    const ready = this.#ask(w, undefined, 'ready');
    w.on('exit', (code, signal) => {
      this.#live.delete(w);
      if (this.#slots[slot] === w) this.#slots[slot] = undefined;
      if (this.#stopping) return;
      log('error', 'worker died; starting a replacement', { pid: w.process.pid, code, signal, slot });
      const latest = this.#target ?? this.#current;
      if (latest) void this.#replace(latest, slot);
    });
    await ready;
    await this.#apply(w, snapshot, undefined);
    // A newer snapshot may have been handed out while this worker started.
    const target = this.#target;
    if (target && target !== snapshot) await this.#apply(w, target, snapshot);
    if (this.#listening) await this.#ask(w, { type: 'listen', port: this.#port }, 'listening');
    send(w, this.#healthMessage());
    return w;
  }

  async #replace(snapshot: Snapshot, slot: number): Promise<void> {
    try {
      const w = await this.#spawn(snapshot, slot);
      log('info', 'worker replaced', { pid: w.process.pid, version: snapshot.version });
    } catch (err) {
      log('error', 'could not start a replacement worker; retrying', { error: String(err) });
      setTimeout(() => {
        const latest = this.#target ?? this.#current;
        if (!this.#stopping && latest) void this.#replace(latest, slot);
      }, 1_000).unref();
    }
  }

  #apply(w: Worker, next: Snapshot, previous: Snapshot | undefined): Promise<unknown> {
    return this.#ask(w, { type: 'apply', snapshot: next, previous }, 'applied');
  }

  /**
   * Send a request (none: only wait) and wait for its answer `expect` (or the
   * worker's error, exit or silence).
   */
  #ask(w: Worker, msg: ToWorker | undefined, expect: FromWorker['type'], timeoutMs = REPLY_TIMEOUT_MS, matches?: (m: FromWorker) => boolean): Promise<FromWorker> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`worker ${w.process.pid} did not answer "${msg?.type ?? expect}" in time`)), timeoutMs);
      const onMessage = (m: FromWorker) => {
        if (m.type === expect && (matches === undefined || matches(m))) done(undefined, m);
        else if (m.type === 'failed' && m.request === msg?.type) done(new Error(m.error));
      };
      const onExit = () => done(new Error(`worker ${w.process.pid} exited`));
      const done = (err?: Error, m?: FromWorker) => {
        clearTimeout(timer);
        w.off('message', onMessage);
        w.off('exit', onExit);
        if (err) reject(err);
        else resolve(m!);
      };
      w.on('message', onMessage);
      w.once('exit', onExit);
      if (msg) send(w, msg);
    });
  }
}

function send(w: Worker, msg: ToWorker): void {
  if (w.isConnected()) w.send(msg);
}
