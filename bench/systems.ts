// The systems under test, each started fresh for a scenario on a free
// loopback port: Portico (on Node, and on Bun), nginx as a reverse proxy,
// @fastify/http-proxy, and the backend itself (no proxy: the ceiling of this
// machine with this load).

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNginx, writeProxyConfig } from './nginx.ts';
import { freePort, runToEnd, start, stop, waitForPort, type Proc } from './proc.ts';
import { porticoConfig, type Scenario, type SystemId } from './scenarios.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const NODE = process.execPath;
/** The pinned Bun (the `bun` dev dependency). */
export const BUN = join(ROOT, 'node_modules', '.bin', 'bun');

export const LABELS: Record<SystemId, string> = {
  portico: 'Portico',
  'portico-bun': 'Portico on Bun',
  nginx: 'nginx proxy',
  fastify: '@fastify/http-proxy',
  direct: 'backend direct',
};

export interface Running {
  id: SystemId;
  port: number;
  /** The process whose tree's RSS is reported (for `direct`: the backend). */
  rssPid: number;
  paths: string[];
  stop(): Promise<void>;
}

export interface Context {
  tmp: string;
  backendPort: number;
  backendPid: number;
  porticoArgs: string[];
  /** Worker processes of the nginx proxy. */
  nginxWorkers: number;
  /** host:port of the bench's redis-server, when a selected scenario needs one. */
  redisAddress?: string;
}

/** Environment for Portico without any PORTICO_/KRAKEND_ override from the caller's shell. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(PORTICO|KRAKEND)_/.test(k)) env[k] = v;
  return env;
}

/** Does this Portico build know `run --workers`? (Asked once, from its usage text.) */
export async function porticoKnowsWorkers(): Promise<boolean> {
  const r = await runToEnd('portico help', NODE, [join(ROOT, 'bin', 'portico.js'), 'help'], 20_000, { cwd: ROOT, env: cleanEnv() });
  return /--workers/.test(r.stdout + r.stderr);
}

/**
 * Portico's extra `run` arguments: BENCH_PORTICO_ARGS / --portico-args, plus
 * `--workers 1` when this build knows --workers and none was given (its
 * default is one per CPU; the bench compares one process with one nginx
 * worker). Returns the arguments and a sentence saying which.
 */
export async function porticoRunArgs(extra: string[]): Promise<{ args: string[]; description: string }> {
  const args = [...extra];
  const shown = extra.length ? `, extra args "${extra.join(' ')}"` : '';
  if (extra.some((a) => a === '--workers' || a.startsWith('--workers='))) return { args, description: `run args "${extra.join(' ')}"` };
  if (await porticoKnowsWorkers()) {
    args.push('--workers', '1');
    return { args, description: `1 worker (--workers 1, the bench default; BENCH_PORTICO_ARGS="--workers N" to change)${shown}` };
  }
  return { args, description: `1 process (this build has no --workers)${shown}` };
}

/** Write a scenario's Portico configuration to a file; returns its path. */
export function writePorticoConfig(tmp: string, scenario: Scenario, backendPort: number, redisAddress?: string): string {
  const file = join(tmp, 'portico', `${scenario.id}.json`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(porticoConfig(scenario.endpoints(`http://127.0.0.1:${backendPort}`), `bench ${scenario.id}`, scenario.serviceExtra?.({ redisAddress, backendPort })), null, 2));
  return file;
}

export async function startSystem(id: SystemId, scenario: Scenario, ctx: Context): Promise<Running> {
  switch (id) {
    case 'portico':
    case 'portico-bun': {
      const port = await freePort();
      const config = writePorticoConfig(ctx.tmp, scenario, ctx.backendPort, ctx.redisAddress);
      const cacheDir = join(ctx.tmp, 'portico', `cache-${scenario.id}-${id}`);
      const args = [join(ROOT, 'bin', 'portico.js'), 'run', '-c', config, '-p', String(port), '--cache-dir', cacheDir, ...ctx.porticoArgs];
      const p = start(id, id === 'portico' ? NODE : BUN, args, { cwd: ROOT, env: cleanEnv() });
      await waitForPort(port, 30_000, p);
      return proc(id, port, p, scenario.porticoPaths, 'SIGTERM', 15_000);
    }
    case 'nginx': {
      const port = await freePort();
      const dir = join(ctx.tmp, `nginx-proxy-${scenario.id}`);
      const conf = writeProxyConfig(dir, port, ctx.backendPort, ctx.nginxWorkers);
      const p = await startNginx('nginx-proxy', dir, conf, port);
      // SIGTERM is nginx's fast shutdown; SIGQUIT would wait for idle keep-alive clients.
      return proc(id, port, p, scenario.proxyPaths, 'SIGTERM', 5_000);
    }
    case 'fastify': {
      const port = await freePort();
      const args = [join(ROOT, 'bench', 'fastify-proxy.ts'), '--port', String(port), '--upstream', `http://127.0.0.1:${ctx.backendPort}`];
      const p = start('fastify-proxy', NODE, args, { cwd: ROOT });
      await waitForPort(port, 30_000, p);
      return proc(id, port, p, scenario.proxyPaths, 'SIGTERM', 5_000);
    }
    case 'direct':
      return { id, port: ctx.backendPort, rssPid: ctx.backendPid, paths: scenario.proxyPaths, stop: async () => {} };
  }
}

function proc(id: SystemId, port: number, p: Proc, paths: string[], sig: NodeJS.Signals, graceMs: number): Running {
  return { id, port, rssPid: p.pid, paths, stop: () => stop(p, sig, graceMs) };
}
