// State that outlives a Plan: JWKS key sets, OAuth2 tokens, later rate-limit
// buckets and circuit breakers. One registry per serving process (like the
// upstream pools); each Plan acquires the entries its policies use at compile
// time and releases them when it retires. An entry is keyed by its
// namespace's own options, so a reload that leaves a policy unchanged finds
// the same entry (warm keys, the same buckets), and a changed policy gets a
// fresh one. An entry no plan holds any more is disposed.

import { log } from '../telemetry/log.ts';

interface Entry {
  value: unknown;
  refs: number;
  dispose: ((value: unknown) => void | Promise<void>) | undefined;
}

/** A Plan's view of the registry: what it acquires is released with it. */
export interface StateScope {
  /**
   * The entry for `key`, created by `create` the first time. `key` must
   * identify the options the value depends on (see stateKey). `dispose` runs
   * when no plan holds the entry any more.
   */
  get<T>(key: string, create: () => T, dispose?: (value: T) => void | Promise<void>): T;
}

/**
 * A state value that shows in /__health (a circuit breaker): PolicyState.report()
 * puts `value` under `section`, then `name`.
 */
export interface HealthReporter {
  reportHealth(): { section: string; name: string; value: unknown };
}

function isHealthReporter(v: unknown): v is HealthReporter {
  return typeof v === 'object' && v !== null && typeof (v as Partial<HealthReporter>).reportHealth === 'function';
}

export class PolicyState {
  readonly #entries = new Map<string, Entry>();

  /** A scope for one plan being compiled; call release() on it when that plan retires (or fails to compile). */
  scope(): StateScope & { release(): Promise<void> } {
    const held = new Set<string>();
    return {
      get: <T>(key: string, create: () => T, dispose?: (value: T) => void | Promise<void>): T => {
        let e = this.#entries.get(key);
        if (!e) {
          e = { value: create(), refs: 0, dispose: dispose as Entry['dispose'] };
          this.#entries.set(key, e);
        }
        // One reference per plan, however many of its endpoints share the entry.
        if (!held.has(key)) {
          held.add(key);
          e.refs++;
        }
        return e.value as T;
      },
      release: async () => {
        const keys = [...held];
        held.clear();
        await Promise.all(keys.map((k) => this.#release(k)));
      },
    };
  }

  /** Keys of live entries (tests and health). */
  keys(): string[] {
    return [...this.#entries.keys()];
  }

  /**
   * What live entries report for /__health, e.g. {breakers: {name: "open"}}
   * (see HealthReporter). A name used twice in a section gets " #2", " #3"...
   */
  report(): Record<string, Record<string, unknown>> {
    const out: Record<string, Record<string, unknown>> = {};
    for (const e of this.#entries.values()) {
      if (!isHealthReporter(e.value)) continue;
      const r = e.value.reportHealth();
      const section = (out[r.section] ??= {});
      let name = r.name;
      for (let i = 2; Object.hasOwn(section, name); i++) name = `${r.name} #${i}`;
      section[name] = r.value;
    }
    return out;
  }

  async close(): Promise<void> {
    const all = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.all(all.map((e) => dispose(e)));
  }

  async #release(key: string): Promise<void> {
    const e = this.#entries.get(key);
    if (!e || --e.refs > 0) return;
    this.#entries.delete(key);
    await dispose(e);
  }
}

async function dispose(e: Entry): Promise<void> {
  try {
    await e.dispose?.(e.value);
  } catch (err) {
    log('warn', 'disposing policy state failed', { error: String(err) });
  }
}

/**
 * A registry key: the namespace, what the state is for, and the options it
 * depends on. Keys may be shown (health, tests): put a digest of a secret in
 * them, never the secret.
 */
export function stateKey(namespace: string, ...parts: unknown[]): string {
  return `${namespace}\u0000${JSON.stringify(parts)}`;
}
