// The data plane's lifecycle: it holds the current Snapshot and takes
// configurations offered by sources one at a time: version newer, hash
// verified, validated, then handed to its Serving (compiled off the hot path,
// swapped in with one reference assignment) and persisted as last known good.
// A rejected offer changes nothing but what health reports.

import { formatIssue, loadConfigDocument, loadConfigText } from '../config/load.ts';
import type { Env } from '../config/env.ts';
import type { LoadResult, ServiceConfig } from '../config/types.ts';
import type { Gateway } from '../server/server.ts';
import { log } from '../telemetry/log.ts';
import { configRejected, setConfigInfo } from '../telemetry/metrics.ts';
import type { WorkerReport } from '../telemetry/stats.ts';
import { VERSION } from '../version.ts';
import { configHash } from './canonical.ts';
import { embeddedDefault } from './default-config.ts';
import type { LastKnownGood, StoredSnapshot } from './last-known-good.ts';
import { Mutex } from './mutex.ts';
import { LocalServing } from './local-serving.ts';
import type { Serving, ServingHooks } from './serving.ts';
import type { Candidate, Snapshot } from './snapshot.ts';

export interface DataPlaneOptions {
  env?: Env;
  /** -p: overrides the configured port. */
  port?: number;
  /** Listen address override (tests). */
  listenIp?: string;
  /** -d: /__debug even when the config does not enable it. */
  debug?: boolean;
  /** Where applied snapshots are persisted; undefined disables persistence. */
  lastKnownGood?: LastKnownGood;
  /** A source that keeps watching exists (control plane, etcd, file --watch). */
  syncEnabled: boolean;
  /** How long the source may be unreachable before health says degraded. */
  staleAfterMs: number;
  accessLogOut?: NodeJS.WritableStream;
  /** Where accepted snapshots are served; default: in this process. */
  serving?: (hooks: ServingHooks) => Serving;
  /** Called after each snapshot starts serving (the management listener follows its address). */
  onApplied?: (s: Snapshot) => void;
}

export type OfferOutcome =
  | { kind: 'applied'; snapshot: Snapshot; ms: number }
  | { kind: 'unchanged' }
  | { kind: 'ignored'; reason: string }
  | { kind: 'rejected'; errors: string[] };

export interface OfferHow {
  /** For a last-known-good restore: the source that originally produced it. */
  origin?: Candidate['source'];
  allowOlder?: boolean;
}

function isRemote(source: Candidate['source']): boolean {
  return source === 'control-plane' || source === 'etcd';
}

export interface Rejection {
  version: number | undefined;
  hash: string | undefined;
  source: string;
  label: string;
  errors: string[];
  at: Date;
}

export class DataPlane {
  readonly #opts: DataPlaneOptions;
  readonly #serving: Serving;
  #current: Snapshot | undefined;
  #rejected: Rejection | undefined;
  #stored: StoredSnapshot | undefined;
  #highestVersion = 0;
  /** The newest version applied from a versioned source (control plane, etcd): offers must beat it. */
  #remoteVersion: number | undefined;
  /** The newest versioned offer that was rejected, so watchers wait for a newer one instead of re-offering it. */
  #remoteRejected: number | undefined;
  #lastSyncOk: number | undefined;
  #lastSyncError: string | undefined;
  /** When the source started failing (reset by its next success): stale is failing for longer than staleAfterMs. */
  #failingSince: number | undefined;
  /** Offers are applied one at a time, in order. */
  readonly #offers = new Mutex();
  readonly #ignoredLogged = new Set<number>();

  constructor(opts: DataPlaneOptions) {
    this.#opts = opts;
    const hooks: ServingHooks = { health: () => this.health(), ready: () => this.ready() };
    this.#serving = opts.serving ? opts.serving(hooks) : new LocalServing(hooks, { debug: opts.debug, accessLogOut: opts.accessLogOut });
  }

  get current(): Snapshot | undefined {
    return this.#current;
  }

  get rejected(): Rejection | undefined {
    return this.#rejected;
  }

  get gateway(): Gateway | undefined {
    return this.#serving.gateway;
  }

  /** Read the last-known-good file once, so versions keep increasing across restarts. */
  async loadLastKnownGood(): Promise<StoredSnapshot | undefined> {
    this.#stored = await this.#opts.lastKnownGood?.load();
    if (this.#stored) this.#highestVersion = Math.max(this.#highestVersion, this.#stored.version);
    return this.#stored;
  }

  /** Serve the stored last-known-good snapshot (after loadLastKnownGood). */
  restoreLastKnownGood(): Promise<OfferOutcome> {
    const s = this.#stored;
    if (!s) return Promise.resolve({ kind: 'ignored', reason: 'no last-known-good config' });
    return this.offer({ source: 'last-known-good', label: this.#opts.lastKnownGood!.file, document: s.document, version: s.version, hash: s.hash }, { origin: s.source });
  }

  /** Serve the embedded default: built-in endpoints only, not ready. */
  applyDefault(): Promise<OfferOutcome> {
    return this.offer({ source: 'default', label: '<embedded default>', document: embeddedDefault(), version: 0 });
  }

  /**
   * Offer a configuration; offers are applied one at a time, in order.
   * `allowOlder` accepts a version that is not newer (after a source was reset, e.g. etcd wiped).
   */
  offer(c: Candidate, how: OfferHow = {}): Promise<OfferOutcome> {
    return this.#offers.run(() => this.#apply(c, how));
  }

  async #apply(c: Candidate, how: OfferHow): Promise<OfferOutcome> {
    const started = performance.now();
    const current = this.#current;
    const floor = this.#remoteVersion;
    if (c.version !== undefined && isRemote(c.source) && floor !== undefined && c.version <= floor && !how.allowOlder) {
      if (!this.#ignoredLogged.has(c.version)) {
        this.#ignoredLogged.add(c.version);
        log('info', 'config version not newer than the current one, ignored', { offered: c.version, current: floor, source: c.source });
      }
      return { kind: 'ignored', reason: `version ${c.version} is not newer than ${floor}` };
    }

    const loaded: LoadResult = c.text !== undefined
      ? loadConfigText(c.text, c.label, { env: this.#opts.env, format: c.format })
      : loadConfigDocument(c.document, c.label, { env: this.#opts.env });
    const hash = loaded.document === undefined ? undefined : configHash(loaded.document);
    if (c.hash !== undefined && hash !== undefined && c.hash !== hash) {
      return this.#reject(c, hash, [`${c.label}: content hash ${hash} does not match the announced hash ${c.hash}`]);
    }
    if (loaded.errors.length || !loaded.config) return this.#reject(c, hash, loaded.errors.map(formatIssue));
    if (c.version === undefined && current && current.hash === hash && current.source !== 'default') {
      this.#clearRejection(c.source);
      if (current.source === 'last-known-good') {
        // The source now confirms the fallback's content: it is served from the source again.
        this.#current = { ...current, source: c.source };
        setConfigInfo(current.version, current.hash, c.source);
        log('info', 'config confirmed by its source', { version: current.version, hash, source: c.source });
      } else log('info', 'config unchanged', { version: current.version, hash, source: c.source });
      return { kind: 'unchanged' };
    }
    for (const w of loaded.warnings) log('warn', formatIssue(w));

    const version = c.version ?? (this.#stored?.hash === hash && !current ? this.#stored!.version : this.#highestVersion + 1);
    const config = this.#adjust(loaded.config);
    const snapshot: Snapshot = { version, hash: hash!, source: c.source, appliedAt: new Date(), document: loaded.document, config };
    try {
      await this.#serving.apply(snapshot, current);
    } catch (err) {
      return this.#reject(c, hash, [`${c.label}: cannot serve: ${(err as Error).message}`]);
    }
    this.#current = snapshot;
    setConfigInfo(version, snapshot.hash, snapshot.source);
    this.#highestVersion = Math.max(this.#highestVersion, version);
    if (isRemote(c.source) || (c.source === 'last-known-good' && how.origin !== undefined && isRemote(how.origin))) {
      this.#remoteVersion = version;
      this.#remoteRejected = undefined;
    }
    this.#clearRejection(c.source);
    const ms = performance.now() - started;
    log('info', 'config applied', { version, hash, source: c.source, endpoints: config.endpoints.length, ms: Math.round(ms * 10) / 10 });
    this.#serving.healthChanged?.();
    this.#opts.onApplied?.(snapshot);
    if (c.source !== 'default' && c.source !== 'last-known-good') await this.#persist(snapshot);
    return { kind: 'applied', snapshot, ms };
  }

  /** Command-line overrides are part of the effective config, so restart-only checks compare like with like. */
  #adjust(config: ServiceConfig): ServiceConfig {
    const { port, listenIp } = this.#opts;
    if (port === undefined && listenIp === undefined) return config;
    return { ...config, ...(port !== undefined ? { port } : {}), ...(listenIp !== undefined ? { listenIp } : {}) };
  }

  #reject(c: Candidate, hash: string | undefined, errors: string[]): OfferOutcome {
    configRejected.inc({ source: c.source });
    if (c.version !== undefined && isRemote(c.source)) this.#remoteRejected = Math.max(this.#remoteRejected ?? 0, c.version);
    this.#rejected = { version: c.version, hash, source: c.source, label: c.label, errors, at: new Date() };
    this.#serving.healthChanged?.();
    log('error', 'config rejected; the current config keeps serving', {
      source: c.source,
      label: c.label,
      version: c.version,
      current_version: this.#current?.version,
      errors,
    });
    return { kind: 'rejected', errors };
  }

  /** A good config from a real source ends the rejection; restoring a fallback does not. */
  #clearRejection(source: Candidate['source']): void {
    if (source !== 'default' && source !== 'last-known-good') this.#rejected = undefined;
  }

  async #persist(s: Snapshot): Promise<void> {
    const lkg = this.#opts.lastKnownGood;
    if (!lkg) return;
    try {
      await lkg.save(s);
    } catch (err) {
      log('error', 'cannot persist the last-known-good config; serving continues', { file: lkg.file, error: (err as Error).message });
    }
  }


  /** Record an offer a source could not even turn into a candidate (e.g. a malformed etcd value). */
  refuse(c: Candidate, errors: string[]): OfferOutcome {
    return this.#reject(c, undefined, errors);
  }

  /** What a watching source asks for: versions newer than both the applied and the last rejected one. */
  remoteWatermark(): number {
    return Math.max(this.#remoteVersion ?? 0, this.#remoteRejected ?? 0);
  }

  /** Forget the versioned floor (the source was reset): its next version applies even if lower. */
  resetRemoteVersion(): void {
    this.#remoteVersion = undefined;
    this.#remoteRejected = undefined;
    this.#ignoredLogged.clear();
  }

  /** Sources report whether they could reach their origin. */
  reportSync(ok: boolean, error?: string): void {
    const wasFailing = this.#failingSince !== undefined;
    if (ok) {
      this.#lastSyncOk = Date.now();
      this.#lastSyncError = undefined;
      this.#failingSince = undefined;
    } else {
      this.#lastSyncError = error ?? 'unreachable';
      this.#failingSince ??= Date.now();
    }
    if (wasFailing !== (this.#failingSince !== undefined)) this.#serving.healthChanged?.();
  }

  ready(): boolean {
    return this.#current !== undefined && this.#current.source !== 'default';
  }

  /** When the served config was applied and the source last answered (metrics). */
  get clock(): { appliedAt(): Date | undefined; lastSyncOk(): number | undefined } {
    return { appliedAt: () => this.#current?.appliedAt, lastSyncOk: () => this.#lastSyncOk };
  }

  health(): Record<string, unknown> {
    const now = Date.now();
    const s = this.#current;
    // A source that is quiet but fine (a watched file nobody edits) is not stale; one failing for too long is.
    const stale = this.#opts.syncEnabled && this.#failingSince !== undefined && now - this.#failingSince > this.#opts.staleAfterMs;
    const syncState = !this.#opts.syncEnabled ? 'disabled' : stale ? 'stale' : 'current';
    const r = this.#rejected;
    return {
      status: stale || r ? 'degraded' : 'ok',
      ready: this.ready(),
      portico_version: VERSION,
      config: s
        ? { version: s.version, hash: s.hash, source: s.source, applied_at: s.appliedAt.toISOString(), endpoints: s.config.endpoints.length }
        : null,
      sync: {
        state: syncState,
        last_success_seconds_ago: this.#lastSyncOk === undefined ? null : Math.round((now - this.#lastSyncOk) / 100) / 10,
        last_error: this.#lastSyncError ?? null,
        stale_after_seconds: this.#opts.staleAfterMs / 1000,
      },
      rejected: r ? { version: r.version ?? null, hash: r.hash ?? null, source: r.source, label: r.label, errors: r.errors, at: r.at.toISOString() } : null,
      ...this.#serving.policyReport?.(),
    };
  }

  listen(): Promise<number> {
    return this.#serving.listen();
  }

  /** With --workers N, how every worker is; undefined when this process serves alone. */
  get workers(): ((withMetrics: boolean) => Promise<WorkerReport[]>) | undefined {
    const s = this.#serving;
    return s.workers === undefined ? undefined : (withMetrics) => s.workers!(withMetrics);
  }

  shutdown(graceMs: number): Promise<void> {
    return this.#serving.shutdown(graceMs);
  }
}
