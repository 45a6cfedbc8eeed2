// The last known good configuration on disk: every applied snapshot is written
// atomically (temp file, fsync, rename, fsync of the directory), with its
// version and hash, so a restart can serve it when every source is down. A
// file whose content does not match its hash (truncated, edited, corrupted) is
// refused with a clear log line.

import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { log } from '../telemetry/log.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { configHash } from './canonical.ts';
import type { Snapshot, SnapshotSource } from './snapshot.ts';

export interface StoredSnapshot {
  version: number;
  hash: string;
  source: SnapshotSource;
  appliedAt: string;
  document: unknown;
}

const FORMAT = 'portico-last-known-good/1';

/** $PORTICO_CACHE_DIR, else $XDG_CACHE_HOME/portico, else ~/.cache/portico. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PORTICO_CACHE_DIR) return env.PORTICO_CACHE_DIR;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'portico');
}

export class LastKnownGood {
  readonly file: string;
  readonly dir: string;

  /** `name` tells instances with different sources apart when they share a directory. */
  constructor(dir: string, name = 'last-known-good') {
    this.dir = dir;
    this.file = join(dir, `${name}.json`);
  }

  async save(s: Snapshot): Promise<void> {
    const stored = {
      format: FORMAT,
      version: s.version,
      hash: s.hash,
      source: s.source,
      appliedAt: s.appliedAt.toISOString(),
      document: s.document,
    };
    await mkdir(this.dir, { recursive: true });
    await writeFileAtomic(this.file, JSON.stringify(stored));
  }

  /** The stored snapshot, or undefined (with one log line saying why) when there is none usable. */
  async load(): Promise<StoredSnapshot | undefined> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') log('warn', 'last-known-good config unreadable, skipped', { file: this.file, error: code ?? String(err) });
      return undefined;
    }
    let stored: Record<string, unknown>;
    try {
      stored = JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      log('error', 'last-known-good config is corrupted (not JSON; truncated?), skipped', { file: this.file, error: (err as Error).message });
      return undefined;
    }
    if (stored === null || typeof stored !== 'object' || stored.format !== FORMAT || typeof stored.version !== 'number' || typeof stored.hash !== 'string') {
      log('error', 'last-known-good config has an unknown layout, skipped', { file: this.file });
      return undefined;
    }
    const actual = configHash(stored.document);
    if (actual !== stored.hash) {
      log('error', 'last-known-good config does not match its hash (corrupted or edited), skipped', { file: this.file, expected: stored.hash, actual });
      return undefined;
    }
    return {
      version: stored.version,
      hash: stored.hash,
      source: stored.source as SnapshotSource,
      appliedAt: String(stored.appliedAt),
      document: stored.document,
    };
  }
}
