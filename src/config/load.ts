// The public entry points of config/: text or file in, LoadResult out. Nothing
// here throws for a bad configuration; every problem is a ConfigIssue.

import { readFile } from 'node:fs/promises';
import { applyEnvOverrides, type Env } from './env.ts';
import { IssueCollector } from './issues.ts';
import { isPlainObject } from './json-path.ts';
import { normalizeConfig } from './normalize.ts';
import { stripComments } from './comments.ts';
import { parseConfigText, type ConfigFormat, type ParsedSource } from './parse.ts';
import type { ConfigIssue, LoadResult } from './types.ts';
import { validateConfig } from './validate.ts';

export interface LoadOptions {
  /** Report warnings (unknown keys, ...) as errors, like `portico check --lint`. */
  lint?: boolean;
  /** Environment for PORTICO_* / KRAKEND_* overrides; default process.env. Pass {} to ignore the environment. */
  env?: Env;
  /** Force a format instead of guessing from the file name (.yml/.yaml = YAML, anything else JSON). */
  format?: ConfigFormat;
}

export function loadConfigText(text: string, file: string, opts: LoadOptions = {}): LoadResult {
  const parsed = parseConfigText(text, file, opts.format);
  if (!parsed.ok) return { errors: [parsed.issue], warnings: [] };
  return loadParsed(parsed.source, file, opts);
}

/**
 * Validate a configuration that is already a value (from the last-known-good
 * cache, a control plane or etcd). Issues carry JSON paths but no positions.
 */
export function loadConfigDocument(document: unknown, label: string, opts: LoadOptions = {}): LoadResult {
  return loadParsed({ value: stripComments(document), locate: () => undefined, duplicateKeys: [] }, label, opts);
}

function loadParsed(source: ParsedSource, file: string, opts: LoadOptions): LoadResult {
  const document = source.value;
  let raw = document;
  let envSources = new Map<string, string>();
  if (isPlainObject(raw)) {
    const overridden = applyEnvOverrides(raw, opts.env ?? process.env);
    raw = overridden.value;
    envSources = overridden.sources;
  }

  const c = new IssueCollector(file, source.locate, envSources, raw);
  for (const path of source.duplicateKeys) {
    c.warning(path, 'each key once per object (the last value wins)', `duplicate key ${JSON.stringify(path.at(-1))}`, 'key');
  }
  const parsed = validateConfig(c, raw);

  const lintErrors = opts.lint ? c.warnings.map((w): ConfigIssue => ({ ...w, severity: 'error' })) : [];
  const errors = inFileOrder([...c.errors, ...lintErrors]);
  const warnings = opts.lint ? [] : inFileOrder(c.warnings);
  const result: LoadResult = { errors, warnings, raw, document };
  if (errors.length === 0 && isPlainObject(raw)) result.config = normalizeConfig(raw, parsed);
  return result;
}

/** Issues without a position (environment values) first, then top to bottom; stable otherwise. */
function inFileOrder(issues: ConfigIssue[]): ConfigIssue[] {
  return [...issues].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
}

export async function loadConfigFile(file: string, opts: LoadOptions = {}): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const reason = err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'a directory' : (err.code ?? err.message);
    const issue: ConfigIssue = { severity: 'error', file, path: '$', expected: 'a readable configuration file', found: reason };
    return { errors: [issue], warnings: [] };
  }
  return loadConfigText(text, file, opts);
}

/** `portico.json:12:17 error $.endpoints[0].timeout: expected a Go duration ..., found "2 seconds" (string)` */
export function formatIssue(i: ConfigIssue): string {
  const where = i.line === undefined ? i.file : i.column === undefined ? `${i.file}:${i.line}` : `${i.file}:${i.line}:${i.column}`;
  return `${where} ${i.severity} ${i.path}: expected ${i.expected}, found ${i.found}`;
}

export type { ConfigIssue, LoadResult } from './types.ts';
