import { Writable } from 'node:stream';
import { formatIssue, loadConfigFile } from '../config/load.ts';
import { compilePlan } from '../plan/compile.ts';

export async function check(file: string, lint: boolean): Promise<number> {
  const result = await loadConfigFile(file, { lint });
  for (const w of result.warnings) process.stderr.write(formatIssue(w) + '\n');
  if (result.errors.length) {
    for (const e of result.errors) process.stderr.write(formatIssue(e) + '\n');
    process.stderr.write(`${file}: ${result.errors.length} error(s)\n`);
    return 1;
  }
  // Compile it as `run` would, so what only compiling finds (an unreadable
  // htpasswd or key file, a key that cannot serve its algorithm) fails here too.
  // Nothing listens and nothing is fetched.
  try {
    const plan = compilePlan(result.config!, { checkOnly: true, accessLogOut: new Writable({ write: (_c, _e, done) => done() }) });
    await plan.close(0);
  } catch (err) {
    process.stderr.write(`${file}: cannot serve: ${(err as Error).message}\n`);
    return 1;
  }
  const n = result.config!.endpoints.length;
  process.stdout.write(`OK: ${file} is a valid configuration (${n} endpoint${n === 1 ? '' : 's'})\n`);
  return 0;
}
