// Run the real `portico` command as a child process.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Each test process gets its own cache directory unless a test sets PORTICO_CACHE_DIR itself,
 * and one serving process unless a test asks for workers (PORTICO_WORKERS or --workers).
 */
const CACHE_DIR = mkdtempSync(join(tmpdir(), 'portico-cache-'));
const childEnv = (env: Record<string, string>) => ({ ...process.env, PORTICO_CACHE_DIR: CACHE_DIR, PORTICO_WORKERS: '1', ...env });

export const BIN = fileURLToPath(new URL('../../bin/portico.js', import.meta.url));

/**
 * What runs the gateway (BIN): the pinned Bun when PORTICO_TEST_RUNTIME=bun, else this
 * Node. Every other script (control plane, test scripts) runs on this Node.
 */
export const GATEWAY_RUNTIME = gatewayRuntime(process.env.PORTICO_TEST_RUNTIME);

function gatewayRuntime(name: string | undefined): string {
  if (name === undefined || name === '' || name === 'node') return process.execPath;
  if (name === 'bun') return fileURLToPath(new URL('../../node_modules/.bin/bun', import.meta.url));
  throw new Error(`PORTICO_TEST_RUNTIME=${name}: expected "node" or "bun"`);
}

const runtimeFor = (script: string): string => (script === BIN ? GATEWAY_RUNTIME : process.execPath);

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `node <script> <args>` (the gateway's runtime for BIN) to completion with exactly `env`, collecting its output. */
export function runScript(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(runtimeFor(script), [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export function runCli(args: string[], env: Record<string, string> = {}): Promise<Finished> {
  return runScript(BIN, args, childEnv(env));
}

export interface Running {
  child: ChildProcess;
  port: number;
  output(): string;
  exited: Promise<number | null>;
}

/**
 * Start `node <script> <args>` (the gateway's runtime for BIN) with exactly `env` and resolve once its output
 * matches `listening`, whose first group is the port; reject if it exits first
 * or has not matched within 10 s (`name` is for the error messages).
 */
export function startScript(script: string, args: string[], env: NodeJS.ProcessEnv, listening: RegExp, name: string): Promise<Running> {
  return new Promise((resolve, reject) => {
    const child = spawn(runtimeFor(script), [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not start:\n` + out));
    }, 10_000);
    const onData = (d: Buffer) => {
      out += d;
      const m = listening.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]), output: () => out, exited });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}:\n${out}`));
    });
  });
}

/** Start `portico run` and resolve once it logs that it is listening. */
export function startCli(args: string[], env: Record<string, string> = {}): Promise<Running> {
  return startScript(BIN, args, childEnv(env), /"msg":"listening".*?"port":(\d+)/, 'portico');
}

/**
 * Write `config` as JSON into a fresh temporary directory (for `portico run -c`);
 * returns the file and a `cache(name)` path inside the same directory for --cache-dir.
 */
export function writeConfigFile(config: unknown): { file: string; cache(name?: string): string } {
  const dir = mkdtempSync(join(tmpdir(), 'portico-config-'));
  const file = join(dir, 'portico.json');
  writeFileSync(file, JSON.stringify(config));
  return { file, cache: (name = 'cache') => join(dir, name) };
}
