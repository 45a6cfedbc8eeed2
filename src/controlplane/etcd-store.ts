// The etcd store: everything under a prefix (layout in protocol.ts), so any
// number of control-plane replicas can share one etcd with no other
// coordination. A new version is allocated by a transaction that compares
// <prefix>/current's mod revision (or its absence) and the new configs/<v>
// key's absence, and writes both; a lost race is retried (or answered as a
// conflict when the writer asked for If-Match). A watch on <prefix>/current
// tells this replica about versions written by any replica; it is
// re-established on error, and `current` is re-read on every (re)connection so
// nothing missed while disconnected (or compacted away) is lost.

import { Range, type Etcd3, type IKeyValue, type Watcher } from 'etcd3';
import { setTimeout as sleep } from 'node:timers/promises';
import { log } from '../telemetry/log.ts';
import { createEtcdClient } from './etcd-client.ts';
import { etcdErrorExplainer, type EtcdSecurity } from './etcd-connection.ts';
import { parseNodeRecord } from './node-report.ts';
import { etcdKeys, type ConfigEnvelope, type NodeRecord, type NodeReport } from './protocol.ts';
import {
  Listeners,
  metaOf,
  newEnvelope,
  nodeRecord,
  parseEnvelope,
  StoreError,
  UNSEEN_REPORT,
  type ConfigStore,
  type History,
  type PublishRequest,
  type PublishResult,
} from './store.ts';
import type { ConfigMeta } from './protocol.ts';

const MAX_PUBLISH_ATTEMPTS = 50;
const CONFIG_KEY = /\/configs\/(\d{10})$/;

interface ConfigKey {
  key: string;
  version: number;
  modRevision: string;
}

export class EtcdStore implements ConfigStore {
  readonly kind = 'etcd' as const;
  readonly keys: ReturnType<typeof etcdKeys>;
  #client: Etcd3;
  #watcher: Watcher | undefined;
  #closed = false;
  #listeners = new Listeners<ConfigEnvelope>();
  /** What listeners were last told, so our own writes seen again through the watch are not repeated. */
  #announced: { version: number; hash: string } | undefined;
  /** Metadata of configs/<v> by key, valid while the key's mod revision is the same. */
  #metaCache = new Map<string, { modRevision: string; meta: ConfigMeta }>();
  readonly #explain = etcdErrorExplainer();

  constructor(hosts: string[], prefix: string, security: EtcdSecurity = {}) {
    this.keys = etcdKeys(prefix);
    this.#client = createEtcdClient(hosts, security);
    this.#watch();
  }

  async latest(): Promise<ConfigEnvelope | undefined> {
    const text = await this.#call(() => this.#client.get(this.keys.current).string());
    if (text === null) return undefined;
    const e = parseEnvelope(text);
    if (!e) throw new StoreError(500, `${this.keys.current} in etcd is not a config envelope`);
    return e;
  }

  async get(version: number): Promise<ConfigEnvelope | undefined> {
    const key = this.keys.config(version);
    const text = await this.#call(() => this.#client.get(key).string());
    if (text === null) return undefined;
    const e = parseEnvelope(text);
    if (!e) throw new StoreError(500, `${key} in etcd is not a config envelope`);
    return e;
  }

  async history(limit: number): Promise<History> {
    const keys = await this.#configKeys();
    const configs: ConfigMeta[] = [];
    for (const k of keys.slice(0, limit)) {
      const cached = this.#metaCache.get(k.key);
      if (cached && cached.modRevision === k.modRevision) {
        configs.push(cached.meta);
        continue;
      }
      const e = await this.get(k.version).catch((err) => {
        if (err instanceof StoreError && err.status === 500) return undefined; // not an envelope: not part of the history
        throw err;
      });
      if (!e) continue; // deleted meanwhile
      const meta = metaOf(e);
      this.#metaCache.set(k.key, { modRevision: k.modRevision, meta });
      configs.push(meta);
    }
    return { total: keys.length, configs };
  }

  async publish(req: PublishRequest): Promise<PublishResult> {
    for (let attempt = 1; ; attempt++) {
      const res = await this.#call(() => this.#client.get(this.keys.current).exec());
      const kv = res.kvs[0];
      const latest = kv ? parseEnvelope(kv.value.toString()) : undefined;
      const latestVersion = latest?.version ?? 0;
      if (req.ifMatch !== undefined && req.ifMatch !== latestVersion) return { kind: 'conflict', latest: latestVersion };
      if (latest && latest.hash === req.hash) return { kind: 'unchanged', envelope: latest };

      const highest = (await this.#configKeys())[0]?.version ?? 0;
      const envelope = newEnvelope(Math.max(latestVersion, highest) + 1, req);
      const value = JSON.stringify(envelope);
      const configKey = this.keys.config(envelope.version);
      const txn = kv
        ? this.#client.if(this.keys.current, 'Mod', '==', kv.mod_revision)
        : this.#client.if(this.keys.current, 'Create', '==', 0);
      const done = await this.#call(() =>
        txn
          .and(configKey, 'Create', '==', 0)
          .then(this.#client.put(configKey).value(value), this.#client.put(this.keys.current).value(value))
          .commit(),
      );
      if (done.succeeded) {
        this.#announce(envelope);
        return { kind: 'created', envelope };
      }
      if (attempt >= MAX_PUBLISH_ATTEMPTS) throw new StoreError(503, `no version could be allocated after ${attempt} attempts (too many concurrent writers)`);
      await sleep(Math.random() * 5 * Math.min(attempt, 10));
    }
  }

  async report(node: string, report: NodeReport, at: Date): Promise<void> {
    const value = JSON.stringify(nodeRecord(node, report, at));
    await this.#call(() => this.#client.put(this.keys.node(node)).value(value).exec());
  }

  async seen(node: string, at: Date): Promise<void> {
    const key = this.keys.node(node);
    const res = await this.#call(() => this.#client.get(key).exec());
    const kv = res.kvs[0];
    const current = kv ? parseNodeRecord(kv.value.toString()) : undefined;
    const next = current ? { ...current, last_seen: at.toISOString() } : nodeRecord(node, UNSEEN_REPORT, at);
    // Only if nobody wrote the record meanwhile: a report that did is newer than this.
    const txn = kv ? this.#client.if(key, 'Mod', '==', kv.mod_revision) : this.#client.if(key, 'Create', '==', 0);
    await this.#call(() => txn.then(this.#client.put(key).value(JSON.stringify(next))).commit());
  }

  async nodes(): Promise<NodeRecord[]> {
    const all = await this.#call(() => this.#client.getAll().prefix(this.keys.nodesPrefix).strings());
    const out: NodeRecord[] = [];
    for (const [key, text] of Object.entries(all)) {
      const r = parseNodeRecord(text);
      if (r && key === this.keys.node(r.node)) out.push(r);
    }
    return out.sort((a, b) => a.node.localeCompare(b.node));
  }

  subscribe(listener: (latest: ConfigEnvelope) => void): () => void {
    return this.#listeners.add(listener);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#watcher?.cancel().catch(() => {});
    this.#client.close();
  }

  /** configs/<v> keys, newest first (keys only: values can be large). */
  async #configKeys(): Promise<ConfigKey[]> {
    const range = Range.prefix(this.keys.configsPrefix);
    const res = await this.#call(() => this.#client.kv.range({ key: range.start, range_end: range.end, keys_only: true }));
    const out: ConfigKey[] = [];
    for (const kv of res.kvs as IKeyValue[]) {
      const key = kv.key.toString();
      const m = CONFIG_KEY.exec(key);
      if (m && key === this.keys.config(Number(m[1]))) out.push({ key, version: Number(m[1]), modRevision: kv.mod_revision });
    }
    return out.sort((a, b) => b.version - a.version);
  }

  #watch(): void {
    if (this.#closed) return;
    const w = this.#client.watch().key(this.keys.current).watcher();
    this.#watcher = w;
    let disconnected = false;
    w.on('put', (kv) => {
      const e = parseEnvelope(kv.value.toString());
      if (e) this.#announce(e);
      else log('warn', 'etcd: current is not a config envelope, ignored', { key: this.keys.current });
    });
    // Every (re)connection: read `current` again, in case a change was missed.
    w.on('connected', () => {
      if (disconnected) log('info', 'etcd watch re-established', { key: this.keys.current });
      disconnected = false;
      void this.#refresh();
    });
    w.on('disconnected', (err) => {
      if (!disconnected && !this.#closed) log('warn', 'etcd watch disconnected; reconnecting', { error: this.#explain(err) });
      disconnected = true;
    });
    // A cancelled watch (compaction, etcd restored) is not resumed by the client: start a new one.
    w.on('error', (err) => {
      if (this.#closed) return;
      log('warn', 'etcd watch failed; starting a new one', { error: this.#explain(err) });
      void w.cancel().catch(() => {});
      setTimeout(() => this.#watch(), 500).unref();
    });
  }

  async #refresh(): Promise<void> {
    try {
      const e = await this.latest();
      if (e) this.#announce(e);
    } catch (err) {
      log('warn', 'etcd: cannot read current', { error: (err as Error).message });
    }
  }

  #announce(e: ConfigEnvelope): void {
    if (this.#announced && this.#announced.version === e.version && this.#announced.hash === e.hash) return;
    this.#announced = { version: e.version, hash: e.hash };
    this.#listeners.emit(e);
  }

  /** Run an etcd call, turning its failures into StoreErrors with an HTTP status. */
  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof StoreError) throw err;
      const message = (err as Error).message;
      if (/too large|max.*(size|bytes)|larger than/i.test(message)) {
        throw new StoreError(413, `etcd refused the write as too large (${message}); etcd's --max-request-bytes (default 1.5 MiB) must hold the config twice`);
      }
      throw new StoreError(503, `etcd unavailable: ${this.#explain(err)}`);
    }
  }
}
