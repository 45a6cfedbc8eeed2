import { Writable } from 'node:stream';
import { formatIssue, loadConfigFile, type LoadResult } from '../config/load.ts';
import { compilePlan } from '../plan/compile.ts';
import type { ServiceConfig } from '../config/types.ts';

export interface CheckedFile {
  /** No errors: the file loads and compiles. */
  ok: boolean;
  result: LoadResult;
  /** What `check` prints on stderr for the file: warnings, then errors and their count. */
  messages: string[];
}

/** Load and validate `file` as `run` would, and compile it (nothing listens, nothing is fetched). */
export async function checkConfigFile(file: string, lint: boolean): Promise<CheckedFile> {
  const result = await loadConfigFile(file, { lint });
  const messages = result.warnings.map(formatIssue);
  if (result.errors.length) {
    messages.push(...result.errors.map(formatIssue), `${file}: ${result.errors.length} error(s)`);
    return { ok: false, result, messages };
  }
  const problem = await compileProblem(result.config!);
  if (problem !== undefined) {
    messages.push(`${file}: cannot serve: ${problem}`);
    return { ok: false, result, messages };
  }
  return { ok: true, result, messages };
}

/**
 * Compile a valid configuration as `run` would, so that what only compiling finds
 * (an unreadable htpasswd or key file, a key that cannot serve its algorithm)
 * fails too; returns why it cannot serve, if it cannot.
 */
export async function compileProblem(config: ServiceConfig): Promise<string | undefined> {
  try {
    const plan = compilePlan(config, { checkOnly: true, accessLogOut: new Writable({ write: (_c, _e, done) => done() }) });
    await plan.close(0);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

export async function check(file: string, lint: boolean): Promise<number> {
  const checked = await checkConfigFile(file, lint);
  for (const m of checked.messages) process.stderr.write(m + '\n');
  if (!checked.ok) return 1;
  const n = checked.result.config!.endpoints.length;
  process.stdout.write(`OK: ${file} is a valid configuration (${n} endpoint${n === 1 ? '' : 's'})\n`);
  return 0;
}
