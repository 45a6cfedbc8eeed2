// etcd as a source (like APISIX): one key holds the current configuration,
// either a ConfigEnvelope (what the control plane writes) or a plain
// KrakenD/Portico configuration written by any tool (JSON or YAML), whose
// version is the key's mod revision and whose hash is computed here. The
// source reads it, watches it from the next revision, and re-reads everything
// when the watch errors or is cancelled (compaction), when etcd's cluster id
// changes, or when its revision went backwards (etcd wiped or restored from a
// backup): then the version may be lower than what the node applied, and the
// node follows etcd rather than ignoring it.
// A periodic check also catches any change a broken watch missed. Reports
// (ACK/NACK) go to <prefix>/nodes/<id>, next to the key.

import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import { posix } from 'node:path';
import { createEtcdClient } from '../controlplane/etcd-client.ts';
import { etcdErrorExplainer, type EtcdSecurity } from '../controlplane/etcd-connection.ts';
import { formatIssue } from '../config/load.ts';
import { parseConfigText, type ConfigFormat } from '../config/parse.ts';
import { configHash } from './canonical.ts';
import type { ConfigEnvelope, NodeRecord } from '../controlplane/protocol.ts';
import { log } from '../telemetry/log.ts';
import { Backoff, pause } from '../shared/backoff.ts';
import { nodeReport } from './control-plane-source.ts';
import type { DataPlane, OfferOutcome } from './data-plane.ts';

export interface EtcdSourceOptions {
  endpoints: string[];
  key: string;
  nodeId: string;
  /** TLS material and user/password (etcd-connection.ts). */
  security?: EtcdSecurity;
  /** How often the key's revision is checked besides the watch (ms). */
  checkEveryMs?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
}

interface Position {
  clusterId: string;
  /** etcd's store revision when we last looked. */
  revision: number;
  /** The key's mod_revision we last offered (0: absent). */
  modRevision: number;
}

export class EtcdSource {
  readonly #opts: EtcdSourceOptions;
  readonly #plane: DataPlane;
  readonly #client: Etcd3;
  readonly #stop = new AbortController();
  readonly #backoff: Backoff;
  readonly #errorText = etcdErrorExplainer();
  #watcher: Watcher | undefined;
  #pos: Position | undefined;
  #timer: NodeJS.Timeout | undefined;
  #resyncing: Promise<void> | undefined;
  /** Aborted by refresh(): ends a backoff pause of the resync in progress. */
  #wake: AbortController | undefined;

  constructor(plane: DataPlane, opts: EtcdSourceOptions) {
    this.#plane = plane;
    this.#opts = opts;
    this.#backoff = new Backoff(opts.backoffBaseMs, opts.backoffCapMs);
    this.#client = createEtcdClient(opts.endpoints, opts.security);
  }

  /** Read the key once (start-up). */
  async readOnce(): Promise<OfferOutcome | { kind: 'unreachable'; error: string } | { kind: 'none' }> {
    try {
      const outcome = await this.#fullRead();
      return outcome ?? { kind: 'none' };
    } catch (err) {
      const error = this.#errorText(err);
      this.#plane.reportSync(false, error);
      return { kind: 'unreachable', error };
    }
  }

  start(): void {
    void this.#resync();
    this.#timer = setInterval(() => void this.#check(), this.#opts.checkEveryMs ?? 5_000);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    if (this.#timer) clearInterval(this.#timer);
    await this.#resyncing;
    await this.#watcher?.cancel().catch(() => {});
    this.#client.close();
  }

  /** Read everything again now (SIGHUP). */
  refresh(): void {
    this.#wake?.abort();
    void this.#resync();
  }

  /** Full re-read, then a fresh watch from the revision read; retried with backoff until it works. */
  #resync(): Promise<void> {
    this.#resyncing ??= (async () => {
      const signal = this.#stop.signal;
      while (!signal.aborted) {
        try {
          await this.#watcher?.cancel().catch(() => {});
          this.#watcher = undefined;
          await this.#fullRead();
          await this.#watch();
          this.#backoff.reset();
          return;
        } catch (err) {
          const wait = this.#backoff.next();
          this.#plane.reportSync(false, this.#errorText(err));
          if (this.#backoff.failures === 1 || this.#backoff.failures % 10 === 0) {
            log('warn', 'etcd unreachable; serving the current config', { error: this.#errorText(err), failures: this.#backoff.failures, retry_in_ms: Math.round(wait) });
          }
          const wake = (this.#wake = new AbortController());
          await pause(wait, AbortSignal.any([signal, wake.signal]));
        }
      }
    })().finally(() => (this.#resyncing = undefined));
    return this.#resyncing;
  }

  async #fullRead(): Promise<OfferOutcome | undefined> {
    const res = await this.#client.get(this.#opts.key).exec();
    const clusterId = String(res.header.cluster_id);
    const revision = Number(res.header.revision);
    const prev = this.#pos;
    if (prev && (prev.clusterId !== clusterId || revision < prev.revision)) {
      log('warn', 'etcd was reset (revision went backwards or cluster changed); re-reading everything', {
        previous_revision: prev.revision,
        revision,
        cluster_changed: prev.clusterId !== clusterId,
      });
      this.#plane.resetRemoteVersion();
    }
    this.#plane.reportSync(true);
    const kv = res.kvs[0];
    this.#pos = { clusterId, revision, modRevision: kv ? Number(kv.mod_revision) : 0 };
    return kv ? this.#offer(kv) : undefined;
  }

  async #watch(): Promise<void> {
    const from = this.#pos!.revision + 1;
    const w = await this.#client.watch().key(this.#opts.key).startRevision(String(from)).create();
    this.#watcher = w;
    w.on('put', (kv) => {
      this.#pos!.modRevision = Number(kv.mod_revision);
      this.#pos!.revision = Math.max(this.#pos!.revision, Number(kv.mod_revision));
      void this.#offer(kv);
    });
    w.on('delete', () => log('warn', 'the config key was deleted from etcd; keeping the current config', { key: this.#opts.key }));
    w.on('connected', (r) => {
      this.#plane.reportSync(true);
      // After a reconnect: a lower revision or another cluster means etcd was wiped or restored.
      const rev = Number(r.header?.revision ?? 0);
      const cluster = String(r.header?.cluster_id ?? '');
      if (this.#pos && (rev < this.#pos.revision || (cluster && cluster !== this.#pos.clusterId))) void this.#resync();
    });
    w.on('disconnected', (err) => this.#plane.reportSync(false, this.#errorText(err)));
    w.on('error', (err) => {
      // A cancelled watch (compaction, or any other server-side cancel): start over.
      log('warn', 'etcd watch failed; re-reading the key', { error: this.#errorText(err) });
      void this.#resync();
    });
  }

  /** Periodic check: etcd reachable, not reset, and nothing missed by the watch. */
  async #check(): Promise<void> {
    if (this.#resyncing || this.#stop.signal.aborted || !this.#pos) return;
    try {
      const res = await this.#client.get(this.#opts.key).exec();
      const revision = Number(res.header.revision);
      const clusterId = String(res.header.cluster_id);
      const mod = res.kvs[0] ? Number(res.kvs[0].mod_revision) : 0;
      this.#plane.reportSync(true);
      if (clusterId !== this.#pos.clusterId || revision < this.#pos.revision || mod !== this.#pos.modRevision) void this.#resync();
      else this.#pos.revision = revision;
    } catch (err) {
      this.#plane.reportSync(false, this.#errorText(err));
    }
  }

  async #offer(kv: IKeyValue): Promise<OfferOutcome> {
    const label = `etcd ${this.#opts.key}@${kv.mod_revision}`;
    const text = kv.value.toString('utf8');
    const read = readValue(text, this.#opts.key, Number(kv.mod_revision));
    if ('errors' in read) {
      // Not even a configuration: refused like an invalid one (health and the node report say why).
      const refused = this.#plane.refuse({ source: 'etcd', label: this.#opts.key, version: Number(kv.mod_revision) }, read.errors);
      await this.#report(refused);
      return refused;
    }
    // etcd is the source of truth and `current` only moves forward: a version at or
    // below what this node applied, with other content, means etcd was restored or
    // rewritten (possibly past its old revision, so the revision check cannot tell),
    // or that a plain config (versioned by revision) replaced envelopes (versioned by
    // the control plane), or the reverse.
    const applied = this.#plane.current;
    if (read.version <= this.#plane.remoteWatermark() && read.hash !== applied?.hash && read.hash !== this.#plane.rejected?.hash) {
      log('warn', 'etcd holds an older config version than this node applied (restored, rewritten, or plain configs and envelopes mixed); following etcd', {
        version: read.version,
        applied: applied?.version ?? null,
      });
      this.#plane.resetRemoteVersion();
    }
    const outcome = await this.#plane.offer(
      read.envelope
        ? { source: 'etcd', label, document: read.envelope.config, version: read.version, hash: read.hash }
        : { source: 'etcd', label: this.#opts.key, text, format: read.format, version: read.version, hash: read.hash },
    );
    await this.#report(outcome);
    return outcome;
  }

  async #report(outcome: OfferOutcome): Promise<void> {
    if (outcome.kind !== 'applied' && outcome.kind !== 'rejected') return;
    const record: NodeRecord = { node: this.#opts.nodeId, last_seen: new Date().toISOString(), ...nodeReport(this.#plane, outcome) };
    const nodesKey = posix.join(posix.dirname(this.#opts.key), 'nodes', this.#opts.nodeId);
    try {
      await this.#client.put(nodesKey).value(JSON.stringify(record));
    } catch (err) {
      log('warn', 'cannot report to etcd', { key: nodesKey, error: this.#errorText(err) });
    }
  }
}

type ReadValue =
  | { envelope: ConfigEnvelope; version: number; hash: string }
  | { envelope?: undefined; format: ConfigFormat; version: number; hash: string }
  | { errors: string[] };

/**
 * An envelope ({version, hash, config, ...}) keeps its version and announced hash;
 * anything else is a plain configuration: JSON when it starts with "{", YAML
 * otherwise, versioned by the key's mod revision, its hash computed from the
 * parsed text (the data plane parses it again, for line:column in its errors).
 */
function readValue(text: string, key: string, modRevision: number): ReadValue {
  const body = text.trimStart();
  if (body.startsWith('{')) {
    let v: unknown;
    try {
      v = JSON.parse(body);
    } catch {
      v = undefined; // reported with its position by parseConfigText below
    }
    const e = v as Partial<ConfigEnvelope> | undefined;
    if (e && typeof e === 'object' && typeof e.version === 'number' && typeof e.hash === 'string' && 'config' in e) {
      return { envelope: e as ConfigEnvelope, version: e.version, hash: e.hash };
    }
  }
  const format: ConfigFormat = body.startsWith('{') || body.startsWith('[') ? 'json' : 'yaml';
  const parsed = parseConfigText(text, key, format);
  if (!parsed.ok) return { errors: [formatIssue(parsed.issue)] };
  return { format, version: modRevision, hash: configHash(parsed.source.value) };
}
