// `portico import openapi SPEC [--host URL] [--validate] [-o FILE]`: a
// configuration from an OpenAPI 3.0/3.1 document (src/openapi). Problems of the
// document are printed as `check` prints a configuration's (file:line:column,
// JSON path, expected, found). The result is checked as `portico check` would
// before it is written. Exit 0: written (warnings aside), 1: the document (or
// the result) has errors, 2: usage or an unreadable file.

import { readFile, writeFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { IssueCollector } from '../config/issues.ts';
import { formatIssue, loadConfigDocument } from '../config/load.ts';
import { formatOf, parseConfigText } from '../config/parse.ts';
import type { ConfigIssue } from '../config/types.ts';
import { importOpenApi as buildConfig } from '../openapi/import.ts';
import { readOpenApi } from '../openapi/spec.ts';
import { compileProblem } from './check.ts';

export interface ImportCliOptions {
  host?: string;
  validate: boolean;
  output?: string;
}

export async function importOpenApi(spec: string, opts: ImportCliOptions): Promise<number> {
  let text: string;
  try {
    text = await readFile(spec, 'utf8');
  } catch (e) {
    process.stderr.write(`portico: cannot read ${spec}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
    return 2;
  }
  // JSON unless the name or the first character says YAML.
  const format = formatOf(spec) === 'yaml' || !/^\s*[{[]/.test(text.replace(/^\uFEFF/, '')) ? 'yaml' : 'json';
  const parsed = parseConfigText(text, spec, format, { keepCommentKeys: true, expected: 'an OpenAPI document' });
  if (!parsed.ok) return report(spec, [parsed.issue], []);

  const c = new IssueCollector(spec, parsed.source.locate);
  const doc = readOpenApi(parsed.source.value, c);
  const config = doc ? buildConfig(doc, { host: opts.host, validate: opts.validate, source: spec }, c) : undefined;
  if (!config || c.errors.length) return report(spec, c.errors, c.warnings);
  for (const w of sorted(c.warnings)) process.stderr.write(formatIssue(w) + '\n');

  // What `check` would say of the result (without the environment's overrides).
  const out = opts.output ?? '<output>';
  const checked = loadConfigDocument(config, out, { env: {} });
  for (const w of checked.warnings) process.stderr.write(formatIssue(w) + '\n');
  const problems = checked.errors.map(formatIssue);
  if (checked.config) {
    const problem = await compileProblem(checked.config);
    if (problem !== undefined) problems.push(`${out}: cannot serve: ${problem}`);
  }
  if (problems.length) {
    for (const p of problems) process.stderr.write(p + '\n');
    process.stderr.write(`${spec}: the generated configuration does not pass check; nothing written\n`);
    return 1;
  }
  const body = opts.output && formatOf(opts.output) === 'yaml' ? stringify(config, { lineWidth: 0 }) : JSON.stringify(config, null, 2) + '\n';
  if (opts.output) {
    try {
      await writeFile(opts.output, body);
    } catch (e) {
      process.stderr.write(`portico: cannot write ${opts.output}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`);
      return 2;
    }
    const n = (config.endpoints as unknown[]).length;
    process.stderr.write(`${opts.output}: ${n} endpoint${n === 1 ? '' : 's'} from ${spec}\n`);
  } else {
    process.stdout.write(body);
  }
  return 0;
}

function report(spec: string, errors: ConfigIssue[], warnings: ConfigIssue[]): number {
  for (const i of sorted([...errors, ...warnings])) process.stderr.write(formatIssue(i) + '\n');
  process.stderr.write(`${spec}: ${errors.length} error(s)\n`);
  return 1;
}

/** Top to bottom in the file. */
function sorted(issues: ConfigIssue[]): ConfigIssue[] {
  return [...issues].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
}
