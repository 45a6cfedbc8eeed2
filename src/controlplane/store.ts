// Where the control plane keeps configuration versions and node reports. Two
// implementations: FileStore (one directory, one process) and EtcdStore
// (everything in etcd, any number of replicas).

import type { ConfigEnvelope, ConfigMeta, NodeRecord, NodeReport } from './protocol.ts';

export interface PublishRequest {
  /** The configuration document, comments stripped. */
  config: unknown;
  /** configHash(config). */
  hash: string;
  author?: string;
  message?: string;
  /** Publish only if the newest version is this one (0: only if nothing is published yet). */
  ifMatch?: number;
}

export type PublishResult =
  | { kind: 'created'; envelope: ConfigEnvelope }
  /** The newest version already has this content: nothing was written. */
  | { kind: 'unchanged'; envelope: ConfigEnvelope }
  /** ifMatch was given and the newest version is another one (0: none). */
  | { kind: 'conflict'; latest: number };

export interface History {
  /** How many versions are stored. */
  total: number;
  /** Newest first, at most the limit asked for. */
  configs: ConfigMeta[];
}

export interface ConfigStore {
  readonly kind: 'file' | 'etcd';
  /** The newest version, or undefined when nothing was published. */
  latest(): Promise<ConfigEnvelope | undefined>;
  get(version: number): Promise<ConfigEnvelope | undefined>;
  history(limit: number): Promise<History>;
  /** Store a new version (latest + 1) unless it is unchanged or ifMatch fails. */
  publish(req: PublishRequest): Promise<PublishResult>;
  /** Keep a node's report (and mark it seen). */
  report(node: string, report: NodeReport, at: Date): Promise<void>;
  /** Mark a node seen (a watch); a node never seen before is recorded as `starting`. */
  seen(node: string, at: Date): Promise<void>;
  nodes(): Promise<NodeRecord[]>;
  /**
   * Called with the newest version whenever it changes: written through this
   * process or (etcd) through any other replica.
   */
  subscribe(listener: (latest: ConfigEnvelope) => void): () => void;
  close(): Promise<void>;
}

/** A stored envelope, or undefined when the text is not one (corrupted, or written by something else). */
export function parseEnvelope(text: string): ConfigEnvelope | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const e = v as Record<string, unknown>;
  if (!isVersion(e.version) || typeof e.hash !== 'string' || typeof e.created_at !== 'string' || !('config' in e)) return undefined;
  return e as unknown as ConfigEnvelope;
}

export function metaOf(e: ConfigEnvelope): ConfigMeta {
  const m: ConfigMeta = { version: e.version, hash: e.hash, created_at: e.created_at };
  if (e.author !== undefined) m.author = e.author;
  if (e.message !== undefined) m.message = e.message;
  return m;
}

export function newEnvelope(version: number, req: PublishRequest, at = new Date()): ConfigEnvelope {
  const e: ConfigEnvelope = { version, hash: req.hash, created_at: at.toISOString(), config: req.config };
  if (req.author !== undefined) e.author = req.author;
  if (req.message !== undefined) e.message = req.message;
  return e;
}

export function nodeRecord(node: string, report: NodeReport, at: Date): NodeRecord {
  return {
    node,
    applied_version: report.applied_version,
    hash: report.hash,
    status: report.status,
    rejected_version: report.rejected_version,
    error: report.error,
    last_seen: at.toISOString(),
  };
}

export const UNSEEN_REPORT: NodeReport = { applied_version: null, hash: null, status: 'starting', rejected_version: null, error: null };

export function isVersion(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
}

/** A tiny listener set shared by the stores. */
export class Listeners<T> {
  #set = new Set<(value: T) => void>();

  add(fn: (value: T) => void): () => void {
    this.#set.add(fn);
    return () => this.#set.delete(fn);
  }

  emit(value: T): void {
    for (const fn of [...this.#set]) fn(value);
  }
}

/** A store failure with the HTTP status it should be answered with (413 too large, 503 unavailable, 500 corrupted). */
export class StoreError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}
