// The configuration file as a source: read on start, on SIGHUP, and (with
// --watch) whenever its directory changes. Watching the directory rather than
// the file sees editors that save by rename and Kubernetes ConfigMap symlink
// swaps. Events are debounced, and a file still being written (its size or
// mtime moved while we read it) is read again later, never half-way.

import { statSync, watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { log } from '../telemetry/log.ts';
import type { DataPlane, OfferOutcome } from './data-plane.ts';

export interface FileSourceOptions {
  /** Quiet time after the last change event before reading (ms). */
  debounceMs?: number;
  /** Files larger than this are refused without being read. */
  maxBytes?: number;
  /** With watch(): also compare the file's stat this often (ms), for filesystems whose change events get lost. */
  pollMs?: number;
}

export type ReadOutcome = OfferOutcome | { kind: 'unreadable'; error: string };

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
const MAX_UNSTABLE_RETRIES = 20;

export class FileSource {
  readonly file: string;
  readonly #plane: DataPlane;
  readonly #debounceMs: number;
  readonly #maxBytes: number;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #poll: NodeJS.Timeout | undefined;
  #lastStat = '';
  readonly #pollMs: number;
  #lastText: string | undefined;
  #reading: Promise<ReadOutcome> | undefined;
  #again = false;
  #againForce = false;

  constructor(file: string, plane: DataPlane, opts: FileSourceOptions = {}) {
    this.file = file;
    this.#plane = plane;
    this.#debounceMs = opts.debounceMs ?? 150;
    this.#maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    this.#pollMs = opts.pollMs ?? 1_000;
  }

  /** Read the file now and offer it. Concurrent calls coalesce into one more read. */
  read(force = false): Promise<ReadOutcome> {
    if (this.#reading) {
      this.#again = true;
      this.#againForce ||= force;
      return this.#reading;
    }
    this.#reading = this.#readAndOffer(force).finally(() => {
      this.#reading = undefined;
      if (this.#again) {
        const again = this.#againForce;
        this.#again = false;
        this.#againForce = false;
        void this.read(again);
      }
    });
    return this.#reading;
  }

  /**
   * Watch the file's directory; changes trigger a debounced read. A slow stat
   * poll runs beside it: inotify events are lost on some filesystems (network
   * mounts, some container bind mounts) and, rarely, under load.
   */
  watch(): void {
    if (this.#watcher) return;
    this.#lastStat = statKey(this.file);
    this.#poll = setInterval(() => void this.#checkStat(), this.#pollMs);
    this.#poll.unref();
    try {
      this.#watcher = watch(dirname(this.file), { persistent: false }, () => this.#schedule());
      this.#watcher.on('error', (err) => {
        log('error', 'config watch failed; SIGHUP still reloads', { file: this.file, error: err.message });
        this.#plane.reportSync(false, `watch failed: ${err.message}`);
      });
    } catch (err) {
      log('error', 'cannot watch the config file; SIGHUP still reloads', { file: this.file, error: (err as Error).message });
    }
  }

  stop(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#poll) clearInterval(this.#poll);
  }

  #checkStat(): void {
    const now = statKey(this.file);
    if (now !== this.#lastStat) {
      this.#lastStat = now;
      this.#schedule();
    }
  }

  #schedule(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.read(), this.#debounceMs);
  }

  async #readAndOffer(force: boolean): Promise<ReadOutcome> {
    const text = await this.#readStable();
    if (typeof text !== 'string') {
      log('error', 'config file unreadable; the current config keeps serving', { file: this.file, error: text.error });
      this.#plane.reportSync(false, `${this.file}: ${text.error}`);
      return { kind: 'unreadable', error: text.error };
    }
    this.#plane.reportSync(true);
    // Unrelated changes in the directory (or a save without edits) cost nothing.
    if (!force && text === this.#lastText) return { kind: 'unchanged' };
    this.#lastText = text;
    return this.#plane.offer({ source: 'file', label: this.file, text });
  }

  /** The file's text once its size and mtime hold still across a read. */
  async #readStable(): Promise<string | { error: string }> {
    for (let attempt = 0; ; attempt++) {
      try {
        const before = await stat(this.file);
        if (before.isDirectory()) return { error: 'is a directory, not a file' };
        if (before.size > this.#maxBytes) return { error: `is ${before.size} bytes, more than the ${this.#maxBytes}-byte limit` };
        const text = await readFile(this.file, 'utf8');
        const after = await stat(this.file);
        const settled = after.size === before.size && after.mtimeMs === before.mtimeMs && Buffer.byteLength(text) === after.size;
        if (settled || attempt >= MAX_UNSTABLE_RETRIES) return text;
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        return { error: e.code === 'ENOENT' ? 'does not exist' : e.code === 'EISDIR' ? 'is a directory, not a file' : (e.code ?? e.message) };
      }
      await new Promise((r) => setTimeout(r, this.#debounceMs));
    }
  }
}

/** What the poll compares: identity, size and mtime (or the error when there is no file). */
function statKey(file: string): string {
  try {
    const s = statSync(file);
    return `${s.ino}:${s.size}:${s.mtimeMs}:${s.isDirectory()}`;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'error';
  }
}
