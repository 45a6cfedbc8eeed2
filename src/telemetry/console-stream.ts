// Where pino's lines go on stdout and stderr. Written by hand: sonic-boom
// (pino.destination) keeps one write in flight and sees it complete once per
// event-loop iteration, so with writes capped at 4096 bytes (below) it passes
// at most ~18 lines per iteration; measured on `portico run`, it fell behind
// by ~3,000 lines/s at 5,000 req/s over 256 connections.
//
// Lines are queued and written at the end of the event-loop turn, in writes
// of whole lines of at most PIPE_BUF (4096) bytes, counted in UTF-8: a pipe
// write that size is atomic, so the lines of `--workers N` processes sharing
// stdout/stderr never interleave (a single longer line is written alone).
// One write at a time goes to the thread pool (fs.write); what queued up
// meanwhile is written synchronously as soon as it completes (at most
// CATCH_UP_BYTES per completion). The stream keeps up with whatever rate its
// reader does, and a slower reader makes the process wait rather than lose
// lines. While a write is not taken at all (a stopped reader), lines queue up
// to MAX_QUEUED_BYTES; later ones are dropped and counted.

import { write as writeAsync, writeSync } from 'node:fs';

const PIPE_BUF = 4096;
const CATCH_UP_BYTES = 64 * 1024;
const MAX_QUEUED_BYTES = 16 * 1024 * 1024;
/** A full non-blocking pipe (EAGAIN) is tried again after this long. */
const RETRY_MS = 10;

type Chunk = string | Buffer;

export class ConsoleStream {
  readonly #fd: number;
  /** Queued writes: whole lines, each at most PIPE_BUF bytes unless it is one longer line (a Buffer: the rest of a short write). */
  #chunks: Chunk[] = [];
  #sizes: number[] = [];
  #queued = 0;
  #inFlight = false;
  #scheduled = false;
  /** EPIPE and the like: the reader is gone, nothing more is written. */
  #closed = false;
  #dropped = 0;
  #idle: (() => void)[] = [];
  /** Told how many lines were dropped, once the stream caught up again. */
  onDropped: ((n: number) => void) | undefined;

  constructor(fd: number) {
    this.#fd = fd;
    // What is still queued when the process exits is written synchronously.
    process.once('exit', () => this.#writeQueuedSync(Infinity));
  }

  write(line: string): void {
    if (this.#closed) return;
    const n = Buffer.byteLength(line);
    if (this.#queued + n > MAX_QUEUED_BYTES) {
      this.#dropped++;
      return;
    }
    const last = this.#chunks.length - 1;
    if (last >= 0 && typeof this.#chunks[last] === 'string' && this.#sizes[last] + n <= PIPE_BUF) {
      this.#chunks[last] += line;
      this.#sizes[last] += n;
    } else {
      this.#chunks.push(line);
      this.#sizes.push(n);
    }
    this.#queued += n;
    if (!this.#inFlight && !this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
  }

  /** Resolves once everything queued so far is written (or lost). */
  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #isIdle(): boolean {
    return this.#closed || (this.#chunks.length === 0 && !this.#inFlight && !this.#scheduled);
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    if (!this.#inFlight) this.#next();
  };

  /** Hand the next queued write to the thread pool. */
  #next(): void {
    if (this.#closed || this.#chunks.length === 0) return this.#settled();
    const chunk = this.#chunks.shift()!;
    const size = this.#sizes.shift()!;
    this.#inFlight = true;
    const done = (err: NodeJS.ErrnoException | null, written: number) => {
      if (err?.code === 'EAGAIN') {
        // A full non-blocking pipe: the same write again, a little later (nothing else starts meanwhile).
        this.#unshift(chunk, size);
        setTimeout(() => {
          this.#inFlight = false;
          this.#next();
        }, RETRY_MS);
        return;
      }
      this.#inFlight = false;
      if (err) this.#lost(err, size);
      else this.#written(chunk, size, written);
      // What queued up during the write goes out now, synchronously; the last write goes async again.
      if (this.#chunks.length > 1) this.#writeQueuedSync(CATCH_UP_BYTES);
      this.#next();
    };
    if (typeof chunk === 'string') writeAsync(this.#fd, chunk, null, 'utf8', done);
    else writeAsync(this.#fd, chunk, done);
  }

  #writeQueuedSync(budget: number): void {
    const keep = budget === Infinity ? 0 : 1;
    while (!this.#closed && this.#chunks.length > keep && budget > 0) {
      const chunk = this.#chunks.shift()!;
      const size = this.#sizes.shift()!;
      try {
        this.#written(chunk, size, typeof chunk === 'string' ? writeSync(this.#fd, chunk, null, 'utf8') : writeSync(this.#fd, chunk));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          this.#unshift(chunk, size);
          return;
        }
        this.#lost(err as NodeJS.ErrnoException, size);
      }
      budget -= size;
    }
  }

  /** Account for `written` bytes of `chunk`; a short write puts the rest back in front. */
  #written(chunk: Chunk, size: number, written: number): void {
    if (written >= size) {
      this.#queued -= size;
      return;
    }
    this.#queued -= written;
    this.#unshift((typeof chunk === 'string' ? Buffer.from(chunk) : chunk).subarray(written), size - written);
  }

  #unshift(chunk: Chunk, size: number): void {
    this.#chunks.unshift(chunk);
    this.#sizes.unshift(size);
  }

  /** These lines are lost (the process is not); a reader that is gone (EPIPE) stops the stream. */
  #lost(err: NodeJS.ErrnoException, size: number): void {
    this.#queued -= size;
    if (err.code === 'EPIPE' || err.code === 'EBADF') {
      this.#closed = true;
      this.#chunks = [];
      this.#sizes = [];
      this.#queued = 0;
    }
  }

  #settled(): void {
    if (!this.#isIdle()) return;
    const waiting = this.#idle;
    this.#idle = [];
    for (const resolve of waiting) resolve();
    if (this.#dropped > 0 && !this.#closed) {
      const n = this.#dropped;
      this.#dropped = 0;
      this.onDropped?.(n);
    }
  }
}
