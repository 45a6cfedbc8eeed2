// Support for the configuration-lifecycle tests (test/lifecycle/): temp files,
// the JSON log lines of a `portico run` child, polling, a backend that echoes
// the path it was called with (so an answer tells which config served it), and
// capturing the in-process logger.

import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { redirectLog } from '../../src/telemetry/log.ts';
import { json, startBackend, type TestBackend } from './backend.ts';
import { get } from './http.ts';
import type { Running } from './process.ts';

export type LogEntry = Record<string, any> & { msg?: string; level?: string };

const tempDirs: string[] = [];
process.once('exit', () => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh temp directory, removed when the test process exits. */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `portico-${prefix}-`));
  tempDirs.push(d);
  return d;
}

/** Write `text` to a temp file next to `file` and rename it over `file` (how editors save). */
export function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.${Date.now()}.swp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/** A backend answering {path} for every request: `/x` served by configFor(tag) answers {path: "/tag"}. */
export function startEchoBackend(): Promise<TestBackend> {
  return startBackend((req, res) => json(res, { path: req.url }));
}

/** A valid config with one endpoint /x that calls the echo backend at /<tag>. */
export function configFor(backendUrl: string, tag: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 3,
    timeout: '3s',
    ...extra,
    endpoints: [{ endpoint: '/x', backend: [{ host: [backendUrl], url_pattern: `/${tag}` }] }],
  };
}

export function configText(backendUrl: string, tag: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify(configFor(backendUrl, tag, extra), null, 2);
}

/** Which config served GET /x: the tag, or `status <n>` when it did not answer 200. */
export async function servedTag(base: string): Promise<string> {
  const r = await get(base, '/x');
  if (r.status !== 200) return `status ${r.status}`;
  return String(r.json().path).slice(1);
}

/** The complete JSON lines of a text (other lines and partial lines are skipped). */
export function logEntries(text: string): LogEntry[] {
  const end = text.lastIndexOf('\n');
  const out: LogEntry[] = [];
  for (const line of text.slice(0, end + 1).split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as LogEntry);
    } catch {
      // not a log line
    }
  }
  return out;
}

/** Follows a running child's log: mark() a position, then wait for a line after it. */
export class ChildLog {
  readonly #r: Running;
  constructor(r: Running) {
    this.#r = r;
  }

  /** A position in the output; lines after it are "new". */
  mark(): number {
    const out = this.#r.output();
    return out.lastIndexOf('\n') + 1;
  }

  entries(from = 0): LogEntry[] {
    return logEntries(this.#r.output().slice(from));
  }

  find(msg: string | RegExp, from = 0): LogEntry[] {
    return this.entries(from).filter((e) => typeof e.msg === 'string' && (typeof msg === 'string' ? e.msg.startsWith(msg) : msg.test(e.msg)));
  }

  /** Wait for the first line after `from` whose msg starts with `msg` (or matches it). */
  async waitFor(msg: string | RegExp, from = 0, timeoutMs = 5000): Promise<LogEntry> {
    return waitUntil(() => this.find(msg, from)[0], `a log line ${String(msg)}`, timeoutMs, () => this.#r.output().slice(from));
  }
}

/** Poll `fn` until it returns a truthy value (which is returned); fail with `what` after timeoutMs. */
export async function waitUntil<T>(
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  what: string,
  timeoutMs = 5000,
  context?: () => string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const ctx = context ? `\n--- output ---\n${context()}` : '';
      const why = lastError ? ` (last error: ${(lastError as Error).message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}${ctx}`);
    }
    await sleep(25);
  }
}

/** SIGTERM the child and resolve to its exit code (SIGKILL after 5 s). */
export async function stopCli(r: Running): Promise<number | null> {
  if (r.child.exitCode !== null || r.child.signalCode !== null) return r.exited;
  r.child.kill('SIGTERM');
  const timer = setTimeout(() => r.child.kill('SIGKILL'), 5000);
  try {
    return await r.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Collect the in-process JSON log lines (src/telemetry/log.ts) instead of writing them, until restored. */
export function captureLog(): { entries: LogEntry[]; find(msg: string): LogEntry[]; restore(): void } {
  const entries: LogEntry[] = [];
  redirectLog((line) => entries.push(...logEntries(line)));
  return {
    entries,
    find: (msg) => entries.filter((e) => typeof e.msg === 'string' && e.msg.startsWith(msg)),
    restore: () => redirectLog(undefined),
  };
}

/** A stream that drops everything (access logs of in-process DataPlanes). */
export function discard(): Writable {
  return new Writable({ write: (_chunk, _enc, done) => done() });
}
