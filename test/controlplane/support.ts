// Support for the control-plane tests: start `portico control-plane` as a real
// process (port 0, found in its "control plane listening" log line), stop it by
// its pid, call its API, and build small valid configurations.

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request, type TestResponse } from '../helpers/http.ts';
import { BIN, runScript, startScript, type Finished } from '../helpers/process.ts';

/** Runs `control-plane` / `ctl` without the rest of the CLI (faster start); bin/portico.js is checked in ctl.test.ts. */
export const ENTRY = fileURLToPath(new URL('./entry.ts', import.meta.url));
const baseEnv = { ...process.env, PORTICO_ADMIN_TOKEN: '', PORTICO_NODE_TOKEN: '', PORTICO_CONTROL_PLANE: '' };

/** Run `portico <args>` (control-plane or ctl) to completion. */
export function runEntry(args: string[], env: Record<string, string> = {}): Promise<Finished> {
  return runScript(ENTRY, args, { ...baseEnv, ...env });
}

export interface ControlPlaneProcess {
  url: string;
  port: number;
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  /** Send `signal` (SIGTERM by default) and wait for the exit code; SIGKILL after 5 s. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const running = new Set<ControlPlaneProcess>();

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `portico-${prefix}-`));
}

/** Start a control plane (through bin/portico.js with viaBin, else the faster entry.ts) and resolve once it listens. */
export async function startControlPlane(args: string[], env: Record<string, string> = {}, opts: { viaBin?: boolean } = {}): Promise<ControlPlaneProcess> {
  const { child, port, output, exited } = await startScript(
    opts.viaBin ? BIN : ENTRY,
    ['control-plane', '--listen', '127.0.0.1:0', ...args],
    { ...baseEnv, ...env },
    /"msg":"control plane listening".*?"port":(\d+)/,
    'control plane',
  );
  const handle: ControlPlaneProcess = {
    url: `${args.includes('--tls-cert') ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    child,
    output,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      running.delete(handle);
      return child.exitCode;
    },
  };
  running.add(handle);
  return handle;
}

/** Stop every control plane this test process started and has not stopped (by pid). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop('SIGKILL')));
}

export interface CallOptions {
  method?: string;
  body?: string | Buffer | object;
  token?: string;
  headers?: Record<string, string>;
  /** For an https:// base: the CA to trust, and a client certificate. */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
}

export function call(base: string, path: string, opts: CallOptions = {}): Promise<TestResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body = opts.body;
  if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) {
    body = JSON.stringify(body);
    headers['content-type'] ??= 'application/json';
  }
  return request(base, path, { method: opts.method ?? (body === undefined ? 'GET' : 'PUT'), headers, body, tls: opts.tls });
}

/** A valid configuration; `tag` makes each one different. */
export function config(tag: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 3,
    timeout: '3s',
    ...extra,
    endpoints: [{ endpoint: `/${tag}`, backend: [{ host: ['http://backend:8000'], url_pattern: `/${tag}` }] }],
  };
}

export function writeTemp(dir: string, name: string, content: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return p;
}

export const okReport = (version: number, hash: string) => ({ applied_version: version, hash, status: 'ok', rejected_version: null, error: null });

/** Run an in-process command (ctl, control-plane usage errors), collecting what it writes. */
export async function capture(fn: (io: { out(t: string): void; err(t: string): void }) => Promise<number>): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await fn({ out: (t) => void (stdout += t), err: (t) => void (stderr += t) });
  return { code, stdout, stderr };
}
