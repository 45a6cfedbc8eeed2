// A Snapshot is one configuration the data plane holds: the document, the
// compiled-from config, a monotonically increasing version, the content hash,
// where it came from and when it was applied.

import type { ConfigFormat } from '../config/parse.ts';
import type { ServiceConfig } from '../config/types.ts';

export type SnapshotSource = 'file' | 'control-plane' | 'etcd' | 'last-known-good' | 'default';

export interface Snapshot {
  readonly version: number;
  readonly hash: string;
  readonly source: SnapshotSource;
  readonly appliedAt: Date;
  /** The configuration document as published (comments stripped, no environment overrides). */
  readonly document: unknown;
  readonly config: ServiceConfig;
}

/** A configuration offered to the data plane by a source, not yet validated. */
export interface Candidate {
  source: SnapshotSource;
  /** A label for error messages (a file name, a URL, an etcd key). */
  label: string;
  /** Either the raw text (from a file) or an already-parsed document. */
  text?: string;
  document?: unknown;
  /** The text's format when the label has no .json/.yaml extension (an etcd key). */
  format?: ConfigFormat;
  /** Versioned sources say which version this is; file sources leave it to the data plane. */
  version?: number;
  /** The hash the source claims; checked against the content. */
  hash?: string;
}
