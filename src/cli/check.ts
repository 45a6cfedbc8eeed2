import { formatIssue, loadConfigFile } from '../config/load.ts';

export async function check(file: string, lint: boolean): Promise<number> {
  const result = await loadConfigFile(file, { lint });
  for (const w of result.warnings) process.stderr.write(formatIssue(w) + '\n');
  if (result.errors.length) {
    for (const e of result.errors) process.stderr.write(formatIssue(e) + '\n');
    process.stderr.write(`${file}: ${result.errors.length} error(s)\n`);
    return 1;
  }
  const n = result.config!.endpoints.length;
  process.stdout.write(`OK: ${file} is a valid configuration (${n} endpoint${n === 1 ? '' : 's'})\n`);
  return 0;
}
