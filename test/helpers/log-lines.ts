// Follow the JSON log lines of a `portico run` child started with startCli:
// count them by msg and wait for the Nth occurrence of one.

import { logLevel, redirectLog, resetLogThrottle, setLogLevel, type Level } from '../../src/telemetry/log.ts';
import type { Running } from './process.ts';

export type LogRecord = Record<string, unknown> & { msg?: string; level?: string };

export class LogLines {
  readonly records: LogRecord[] = [];
  readonly #running: Running;
  #offset = 0;
  #waiters = new Set<() => void>();

  constructor(running: Running) {
    this.#running = running;
    // startCli's own listeners were attached first, so output() already holds
    // each chunk by the time these run: scanning it from an offset is race-free.
    const onData = () => this.#scan();
    running.child.stdout!.on('data', onData);
    running.child.stderr!.on('data', onData);
    void running.exited.then(() => this.#scan());
    this.#scan();
  }

  /** Records whose msg starts with `msg` (messages such as "config rejected; ..." carry a tail). */
  all(msg: string): LogRecord[] {
    return this.records.filter((r) => typeof r.msg === 'string' && r.msg.startsWith(msg));
  }

  count(msg: string): number {
    return this.all(msg).length;
  }

  /** Resolve with the nth (1-based) record whose msg starts with `msg`. */
  nth(msg: string, n: number, timeoutMs = 10_000): Promise<LogRecord> {
    const found = this.all(msg);
    if (found.length >= n) return Promise.resolve(found[n - 1]);
    return new Promise((resolve, reject) => {
      const check = () => {
        const f = this.all(msg);
        if (f.length < n) return;
        done();
        resolve(f[n - 1]);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for occurrence #${n} of "${msg}" (seen ${this.count(msg)})`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
    });
  }

  /** Resolve with the first record, after `from` records, whose msg starts with one of `msgs`. */
  next(from: number, msgs: string[], timeoutMs = 10_000): Promise<LogRecord> {
    const pick = () => this.records.slice(from).find((r) => typeof r.msg === 'string' && msgs.some((m) => (r.msg as string).startsWith(m)));
    const now = pick();
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const check = () => {
        const r = pick();
        if (!r) return;
        done();
        resolve(r);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for one of ${JSON.stringify(msgs)}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
    });
  }

  #scan(): void {
    const out = this.#running.output();
    const end = out.lastIndexOf('\n');
    if (end < this.#offset) return;
    const chunk = out.slice(this.#offset, end);
    this.#offset = end + 1;
    for (const line of chunk.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        this.records.push(JSON.parse(line) as LogRecord);
      } catch {
        // not a log line (or stdout and stderr interleaved mid-line)
      }
    }
    for (const w of [...this.#waiters]) w();
  }
}

/**
 * Run `fn` with this process's own log lines captured instead of written, at
 * `level`, with log throttles reset; the level is restored after.
 */
export async function logsDuring(fn: () => Promise<void>, level: Level = 'info'): Promise<{ text: string; records: LogRecord[] }> {
  const chunks: string[] = [];
  const previous = logLevel();
  redirectLog((line) => chunks.push(line));
  setLogLevel(level);
  resetLogThrottle();
  try {
    await fn();
  } finally {
    redirectLog(undefined);
    setLogLevel(previous);
    resetLogThrottle();
  }
  const text = chunks.join('');
  const records = text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogRecord);
  return { text, records };
}
