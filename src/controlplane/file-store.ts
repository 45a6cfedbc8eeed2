// The default store: one directory on local disk, one control-plane process.
//
//   <dir>/configs/<version, 10 digits>.json   ConfigEnvelope (history; the highest is the newest)
//   <dir>/nodes/<id>.json                     NodeRecord
//   <dir>/lock                                the owning process's pid
//
// Configs are written durably (temp file, fsync, rename, fsync of the
// directory) under a process-local mutex; node records atomically but without
// fsync (they are refreshed by every report and watch). The index of versions
// and the newest envelope live in memory; every config file is checked against
// its hash at start, and a corrupted one stops the start with its name.

import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { configHash } from '../lifecycle/canonical.ts';
import { log } from '../telemetry/log.ts';
import { TEMP_SUFFIX, writeFileAtomic } from '../lifecycle/atomic-file.ts';
import { DirLock } from './dir-lock.ts';
import { Mutex } from '../lifecycle/mutex.ts';
import { parseNodeRecord } from './node-report.ts';
import { NODE_ID, type ConfigEnvelope, type ConfigMeta, type NodeRecord, type NodeReport } from './protocol.ts';
import {
  Listeners,
  metaOf,
  newEnvelope,
  nodeRecord,
  parseEnvelope,
  UNSEEN_REPORT,
  type ConfigStore,
  type History,
  type PublishRequest,
  type PublishResult,
} from './store.ts';

const CONFIG_FILE = /^(\d{10})\.json$/;

export class FileStore implements ConfigStore {
  readonly kind = 'file' as const;
  readonly dir: string;
  #lock: DirLock;
  /** Ascending by version. */
  #metas: ConfigMeta[] = [];
  #latest: ConfigEnvelope | undefined;
  #nodes = new Map<string, NodeRecord>();
  #configWrites = new Mutex();
  #nodeWrites = new Mutex();
  #listeners = new Listeners<ConfigEnvelope>();

  private constructor(dir: string, lock: DirLock) {
    this.dir = dir;
    this.#lock = lock;
  }

  static async open(dir: string): Promise<FileStore> {
    await mkdir(join(dir, 'configs'), { recursive: true });
    await mkdir(join(dir, 'nodes'), { recursive: true });
    const lock = await DirLock.acquire(dir);
    const store = new FileStore(dir, lock);
    try {
      await store.#loadConfigs();
      await store.#loadNodes();
    } catch (err) {
      await lock.release();
      throw err;
    }
    return store;
  }

  async #loadConfigs(): Promise<void> {
    const dir = join(this.dir, 'configs');
    for (const name of (await readdir(dir)).sort()) {
      if (name.endsWith(TEMP_SUFFIX)) {
        await rm(join(dir, name), { force: true });
        continue;
      }
      const m = CONFIG_FILE.exec(name);
      if (!m) continue;
      const file = join(dir, name);
      const e = parseEnvelope(await readFile(file, 'utf8'));
      if (!e || e.version !== Number(m[1])) throw new Error(`${file} is not a stored configuration (corrupted?); move it away to start`);
      if (configHash(e.config) !== e.hash) throw new Error(`${file} does not match its hash (corrupted or edited); move it away to start`);
      this.#metas.push(metaOf(e));
      this.#latest = e;
    }
  }

  async #loadNodes(): Promise<void> {
    const dir = join(this.dir, 'nodes');
    for (const name of await readdir(dir)) {
      if (name.endsWith(TEMP_SUFFIX)) {
        await rm(join(dir, name), { force: true });
        continue;
      }
      if (!name.endsWith('.json')) continue;
      const r = parseNodeRecord(await readFile(join(dir, name), 'utf8'));
      if (r && NODE_ID.test(r.node) && `${r.node}.json` === name) this.#nodes.set(r.node, r);
      else log('warn', 'node record unreadable, skipped', { file: join(dir, name) });
    }
  }

  async latest(): Promise<ConfigEnvelope | undefined> {
    return this.#latest;
  }

  async get(version: number): Promise<ConfigEnvelope | undefined> {
    if (version === this.#latest?.version) return this.#latest;
    if (!this.#metas.some((m) => m.version === version)) return undefined;
    return parseEnvelope(await readFile(this.#configFile(version), 'utf8'));
  }

  async history(limit: number): Promise<History> {
    return { total: this.#metas.length, configs: this.#metas.slice(-limit).reverse() };
  }

  publish(req: PublishRequest): Promise<PublishResult> {
    return this.#configWrites.run(async () => {
      const latest = this.#latest;
      if (req.ifMatch !== undefined && req.ifMatch !== (latest?.version ?? 0)) return { kind: 'conflict', latest: latest?.version ?? 0 };
      if (latest && latest.hash === req.hash) return { kind: 'unchanged', envelope: latest };
      const envelope = newEnvelope((latest?.version ?? 0) + 1, req);
      await writeFileAtomic(this.#configFile(envelope.version), JSON.stringify(envelope));
      this.#metas.push(metaOf(envelope));
      this.#latest = envelope;
      this.#listeners.emit(envelope);
      return { kind: 'created', envelope };
    });
  }

  async report(node: string, report: NodeReport, at: Date): Promise<void> {
    this.#nodes.set(node, nodeRecord(node, report, at));
    await this.#saveNode(node);
  }

  async seen(node: string, at: Date): Promise<void> {
    const r = this.#nodes.get(node);
    this.#nodes.set(node, r ? { ...r, last_seen: at.toISOString() } : nodeRecord(node, UNSEEN_REPORT, at));
    await this.#saveNode(node);
  }

  async nodes(): Promise<NodeRecord[]> {
    return [...this.#nodes.values()].sort((a, b) => a.node.localeCompare(b.node));
  }

  subscribe(listener: (latest: ConfigEnvelope) => void): () => void {
    return this.#listeners.add(listener);
  }

  async close(): Promise<void> {
    await this.#configWrites.run(async () => {});
    await this.#nodeWrites.run(async () => {});
    await this.#lock.release();
  }

  /** Writes are serialized and each writes the record as it is then, so the newest always lands last. */
  #saveNode(node: string): Promise<void> {
    return this.#nodeWrites.run(async () => {
      const r = this.#nodes.get(node);
      if (r) await writeFileAtomic(join(this.dir, 'nodes', `${node}.json`), JSON.stringify(r), { durable: false });
    });
  }

  #configFile(version: number): string {
    return join(this.dir, 'configs', `${String(version).padStart(10, '0')}.json`);
  }
}
