// Serving in this process: compile a Plan with upstream pools and policy state
// shared across reloads, swap it into the Gateway with one reference assignment, and retire
// the old plan once its last request finished.

import { compilePlan } from '../plan/compile.ts';
import type { Plan } from '../plan/plan.ts';
import { PolicyState } from '../namespaces/state.ts';
import { applyLogging } from '../namespaces/telemetry-logging.ts';
import { UpstreamPools } from '../proxy/upstream.ts';
import { Gateway } from '../server/server.ts';
import { log } from '../telemetry/log.ts';
import { restartOnlyChanges } from './restart-only.ts';
import type { Serving, ServingHooks } from './serving.ts';
import type { Snapshot } from './snapshot.ts';

export interface LocalServingOptions {
  debug?: boolean;
  accessLogOut?: NodeJS.WritableStream;
}

export class LocalServing implements Serving {
  readonly #opts: LocalServingOptions;
  readonly #hooks: ServingHooks;
  readonly #pools = new UpstreamPools();
  /** Policy state (key sets, tokens, buckets) shared by every plan of this process, like the pools. */
  readonly #state = new PolicyState();
  readonly #retiring = new Set<Promise<void>>();
  #gateway: Gateway | undefined;
  /** A compiled plan waiting for commit() (two-phase reloads across workers). */
  #prepared: { plan: Plan; next: Snapshot; previous: Snapshot | undefined } | undefined;

  constructor(hooks: ServingHooks, opts: LocalServingOptions = {}) {
    this.#hooks = hooks;
    this.#opts = opts;
  }

  /** /__health: the hooks' fields plus what policy state reports (circuit breakers), read live at each request. */
  readonly #health = (): Record<string, unknown> => ({ ...this.#hooks.health(), ...this.#state.report() });

  /** What this process's policy state reports (circuit breakers, traffic splits). */
  policyReport(): Record<string, Record<string, unknown>> {
    return this.#state.report();
  }

  get gateway(): Gateway | undefined {
    return this.#gateway;
  }

  async apply(next: Snapshot, previous: Snapshot | undefined): Promise<void> {
    await this.prepare(next, previous);
    await this.commit(Date.now());
  }

  /** Phase one of a reload (--workers: every worker compiles before any swaps): compile `next` and hold it. */
  async prepare(next: Snapshot, previous: Snapshot | undefined): Promise<void> {
    const plan = compilePlan(next.config, { pools: this.#pools, state: this.#state, accessLogOut: this.#opts.accessLogOut });
    await this.abort();
    this.#prepared = { plan, next, previous };
  }

  /** Phase two: serve the prepared plan from wall-clock time `at` on; resolves once it serves. */
  async commit(at: number): Promise<void> {
    const prepared = this.#prepared;
    if (prepared === undefined) throw new Error('no prepared configuration to commit');
    this.#prepared = undefined;
    const { plan, next, previous } = prepared;
    if (!this.#gateway) {
      try {
        this.#gateway = new Gateway(plan, { forceDebug: this.#opts.debug, health: this.#health, ready: this.#hooks.ready });
      } catch (err) {
        await plan.close(0);
        throw err;
      }
      applyLogging(next.config);
      return;
    }
    if (previous) {
      for (const change of restartOnlyChanges(previous.config, next.config)) {
        log('warn', `${change} changed: takes effect after a restart`, { version: next.version });
      }
    }
    this.#retire(await this.#gateway.swapAt(plan, at));
    applyLogging(next.config);
  }

  /** Drop a prepared plan that will not be committed (another worker could not compile it). */
  async abort(): Promise<void> {
    const prepared = this.#prepared;
    this.#prepared = undefined;
    if (prepared !== undefined) await prepared.plan.close(0);
  }

  #retire(old: Plan): void {
    const grace = Math.max(0, ...old.config.endpoints.map((e) => e.timeoutMs)) + 5_000;
    const p = old.close(grace).catch((err) => log('warn', 'closing a retired plan failed', { error: String(err) }));
    this.#retiring.add(p);
    void p.finally(() => this.#retiring.delete(p));
  }

  async listen(port?: number): Promise<number> {
    if (!this.#gateway) throw new Error('no configuration applied yet');
    return (await this.#gateway.listen(port)).port;
  }

  async shutdown(graceMs: number): Promise<void> {
    await this.abort();
    await this.#gateway?.shutdown(graceMs);
    await Promise.all(this.#retiring);
    await Promise.all([this.#pools.close(), this.#state.close()]);
  }
}
