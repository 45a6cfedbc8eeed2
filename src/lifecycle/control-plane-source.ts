// The control plane as a source: a long-poll watch (GET /v1/watch?after=V)
// that answers at once when a newer version exists and otherwise holds ~30 s.
// Every offer goes through the DataPlane and is reported back (ACK/NACK). On
// failure the loop backs off exponentially with full jitter; while the control
// plane is down the data plane serves what it has, and nothing on the request
// path waits for it. Over https the control plane's certificate is always
// verified (tls-client.ts); the TLS files are read again on refresh (SIGHUP).

import { WATCH_HOLD_MS, type ConfigEnvelope, type NodeReport } from '../controlplane/protocol.ts';
import { ControlPlaneHttp, GATEWAY_TLS_FLAGS } from '../controlplane/tls-client.ts';
import type { TlsFiles } from '../controlplane/tls-files.ts';
import { log } from '../telemetry/log.ts';
import { Backoff, pause } from '../shared/backoff.ts';
import type { DataPlane, OfferOutcome } from './data-plane.ts';

export interface ControlPlaneSourceOptions {
  url: string;
  nodeId: string;
  token?: string;
  /** --control-plane-ca (the only CA trusted; default the system's), --control-plane-cert/-key (mTLS). */
  tls?: TlsFiles;
  backoffBaseMs?: number;
  backoffCapMs?: number;
}

export class ControlPlaneSource {
  readonly #opts: ControlPlaneSourceOptions;
  readonly #plane: DataPlane;
  readonly #stop = new AbortController();
  readonly #backoff: Backoff;
  readonly #http: ControlPlaneHttp;
  #loop: Promise<void> | undefined;
  #pendingReport: NodeReport | undefined;
  /** Aborts the round in progress (SIGHUP: ask again now). */
  #round = new AbortController();

  constructor(plane: DataPlane, opts: ControlPlaneSourceOptions) {
    this.#plane = plane;
    this.#opts = { ...opts, url: opts.url.replace(/\/+$/, '') };
    this.#backoff = new Backoff(opts.backoffBaseMs, opts.backoffCapMs);
    this.#http = new ControlPlaneHttp(this.#opts.url, opts.tls ?? {}, GATEWAY_TLS_FLAGS);
  }

  /** One watch round (used at start-up: a short wait for the first config). */
  async fetchOnce(holdMs: number): Promise<OfferOutcome | { kind: 'unreachable'; error: string } | { kind: 'none' }> {
    try {
      const env = await this.#watch(holdMs);
      this.#plane.reportSync(true);
      return env ? await this.#offer(env) : { kind: 'none' };
    } catch (err) {
      const error = (err as Error).message;
      this.#plane.reportSync(false, error);
      return { kind: 'unreachable', error };
    }
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    this.#http.close();
  }

  /** Read the TLS files again and ask the control plane now instead of waiting for the held round (or the backoff pause) to end. */
  refresh(): void {
    if (this.#opts.tls && Object.values(this.#opts.tls).some((f) => f !== undefined)) {
      try {
        this.#http.reload();
        log('info', 'control-plane TLS files reloaded');
      } catch (err) {
        log('error', 'control-plane TLS files not reloaded; the current ones stay in use', { error: (err as Error).message });
      }
    }
    this.#round.abort();
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      try {
        await this.#flushReport();
        this.#round = new AbortController();
        const env = await this.#watch(WATCH_HOLD_MS, this.#round.signal);
        this.#plane.reportSync(true);
        this.#backoff.reset();
        if (env) await this.#offer(env);
      } catch (err) {
        if (signal.aborted) break;
        if (this.#round.signal.aborted) continue;
        const error = (err as Error).message;
        this.#plane.reportSync(false, error);
        const wait = this.#backoff.next();
        if (this.#backoff.failures === 1 || this.#backoff.failures % 10 === 0) {
          log('warn', 'control plane unreachable; serving the current config', { url: this.#opts.url, error, failures: this.#backoff.failures, retry_in_ms: Math.round(wait) });
        }
        // SIGHUP (refresh) aborts this round's signal: it cuts the backoff pause short too.
        await pause(wait, AbortSignal.any([signal, this.#round.signal]));
      }
    }
  }

  async #watch(holdMs: number, round?: AbortSignal): Promise<ConfigEnvelope | undefined> {
    const after = this.#plane.remoteWatermark();
    const path = `/v1/watch?after=${after}&node=${encodeURIComponent(this.#opts.nodeId)}`;
    // A full round may be held for WATCH_HOLD_MS; a shorter wait (start-up) gives up early.
    const limit = holdMs >= WATCH_HOLD_MS ? holdMs + 10_000 : holdMs;
    let res;
    try {
      const signals = [this.#stop.signal, AbortSignal.timeout(limit)];
      if (round) signals.push(round);
      res = await this.#http.call(path, { headers: this.#headers(), signal: AbortSignal.any(signals) });
    } catch (err) {
      if ((err as Error).name === 'TimeoutError' && holdMs < WATCH_HOLD_MS) return undefined;
      throw err;
    }
    if (res.status === 204) return undefined;
    if (res.status === 409) {
      // The control plane knows fewer versions than this node applied: its store
      // was reset. Follow it from its newest version on.
      const body = parseJson(res.body) as { latest?: number } | undefined;
      log('warn', 'the control plane is behind this node (store reset?); following its versions from now on', { url: this.#opts.url, latest: body?.latest ?? null, applied: after });
      this.#plane.resetRemoteVersion();
      return undefined;
    }
    if (res.status !== 200) {
      // The API's {error} when there is one (a refused certificate or token says why), else the start of the body.
      const error = (parseJson(res.body) as { error?: unknown } | undefined)?.error;
      const text = typeof error === 'string' ? error : res.body.slice(0, 200);
      throw new Error(`watch answered ${res.status}${text ? `: ${text}` : ''}`);
    }
    const env = parseJson(res.body);
    if (env === undefined) throw new Error('watch answered 200 with something that is not JSON');
    return env as ConfigEnvelope;
  }

  async #offer(env: ConfigEnvelope): Promise<OfferOutcome> {
    const outcome = await this.#plane.offer({
      source: 'control-plane',
      label: `${this.#opts.url} version ${env.version}`,
      document: env.config,
      version: env.version,
      hash: env.hash,
    });
    if (outcome.kind === 'applied' || outcome.kind === 'rejected') {
      this.#pendingReport = nodeReport(this.#plane, outcome);
      await this.#flushReport();
    }
    return outcome;
  }

  /** Reports are retried with the next round until the control plane takes one. */
  async #flushReport(): Promise<void> {
    const report = this.#pendingReport;
    if (!report) return;
    try {
      const res = await this.#http.call(`/v1/nodes/${encodeURIComponent(this.#opts.nodeId)}/report`, {
        method: 'POST',
        headers: { ...this.#headers(), 'content-type': 'application/json' },
        body: JSON.stringify(report),
        signal: AbortSignal.any([this.#stop.signal, AbortSignal.timeout(5_000)]),
      });
      if (res.status >= 200 && res.status < 300 && this.#pendingReport === report) this.#pendingReport = undefined;
    } catch {
      // kept for the next round
    }
  }

  #headers(): Record<string, string> {
    return this.#opts.token ? { authorization: `Bearer ${this.#opts.token}` } : {};
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** ACK/NACK for the control plane or etcd, from the data plane's state after an offer. */
export function nodeReport(plane: DataPlane, outcome: OfferOutcome): NodeReport {
  const cur = plane.current;
  const applied = cur && cur.source !== 'default' ? cur : undefined;
  const rejected = plane.rejected;
  return {
    applied_version: applied?.version ?? null,
    hash: applied?.hash ?? null,
    status: outcome.kind === 'rejected' ? 'rejected' : plane.health().status === 'ok' ? 'ok' : 'degraded',
    rejected_version: outcome.kind === 'rejected' ? (rejected?.version ?? null) : null,
    error: outcome.kind === 'rejected' ? outcome.errors.join('\n') : null,
  };
}
