// Collects every problem found in a configuration, each tied to a JSON path and
// (when the value came from the file) to its line and column.

import { formatPath, isPlainObject, type JsonPath, type Locate } from './json-path.ts';
import { isSecretPath, maskSecrets } from './secret-fields.ts';
import type { ConfigIssue } from './types.ts';

const MAX_SHOWN = 60;

function shorten(text: string): string {
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN - 3)}...` : text;
}

/** `"2 seconds" (string)`, `8080 (number)`, `an array of 3 items`, ... */
function valueAt(root: unknown, path: JsonPath): unknown {
  let v = root;
  for (const k of path) v = isPlainObject(v) || Array.isArray(v) ? (v as Record<string | number, unknown>)[k] : undefined;
  return v;
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return isPlainObject(value) ? 'an object' : `a ${typeof value}`;
}

export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return `${JSON.stringify(shorten(value))} (string)`;
    case 'number':
    case 'boolean':
      return `${String(value)} (${typeof value})`;
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return '[] (an empty array)';
    const json = JSON.stringify(value);
    return json.length <= MAX_SHOWN ? `${json} (array)` : `an array of ${value.length} items`;
  }
  if (isPlainObject(value)) {
    const keys = Object.keys(value);
    if (keys.length === 0) return '{} (an empty object)';
    const json = JSON.stringify(value);
    return json.length <= MAX_SHOWN ? `${json} (object)` : `an object with keys ${shorten(keys.join(', '))}`;
  }
  return shorten(String(value));
}

/** Keys KrakenD renamed in the v3 format; a migrating user gets a precise hint. */
const RENAMED_KEYS: Readonly<Record<string, string>> = {
  headers_to_pass: 'input_headers',
  querystring_params: 'input_query_strings',
  whitelist: 'allow',
  blacklist: 'deny',
};

export class IssueCollector {
  readonly errors: ConfigIssue[] = [];
  readonly warnings: ConfigIssue[] = [];
  private readonly file: string;
  private readonly locate: Locate;
  /** Top-level keys whose value came from an environment variable, with its name. */
  private readonly envSources: ReadonlyMap<string, string>;
  /** The document checked, so that found() can tell a secret by its neighbours (martian's name/value). */
  private readonly root: unknown;

  constructor(file: string, locate: Locate, envSources: ReadonlyMap<string, string> = new Map(), root?: unknown) {
    this.file = file;
    this.locate = locate;
    this.envSources = envSources;
    this.root = root;
  }

  add(severity: ConfigIssue['severity'], path: JsonPath, expected: string, found: string, at: 'value' | 'key' = 'value'): void {
    const fromEnv = typeof path[0] === 'string' && this.envSources.has(path[0]);
    const pos = fromEnv ? undefined : this.locate(path, at);
    const issue: ConfigIssue = { severity, file: this.file, path: formatPath(path), expected, found };
    if (pos) {
      issue.line = pos.line;
      issue.column = pos.column;
    }
    (severity === 'error' ? this.errors : this.warnings).push(issue);
  }

  error(path: JsonPath, expected: string, found: string): void {
    this.add('error', path, expected, found);
  }

  warning(path: JsonPath, expected: string, found: string, at: 'value' | 'key' = 'value'): void {
    this.add('warning', path, expected, found, at);
  }

  /** An error about `value`, described with its type (and its environment variable, if any). */
  invalid(path: JsonPath, expected: string, value: unknown): void {
    this.error(path, expected, this.found(path, value));
  }

  missing(path: JsonPath, expected: string): void {
    this.error(path, expected, 'nothing (the key is missing)');
  }

  /** `value` described for a message; secrets (secret-fields.ts) are never quoted. */
  found(path: JsonPath, value: unknown): string {
    const parent = valueAt(this.root, path.slice(0, -1));
    const described = isSecretPath(path, parent) ? `${describeType(value)} (a secret: not shown)` : describeValue(maskSecrets(value, path, parent));
    const variable = typeof path[0] === 'string' ? this.envSources.get(path[0]) : undefined;
    return variable ? `${described} from environment variable ${variable}` : described;
  }

  unknownKey(path: JsonPath, where: string, known: readonly string[]): void {
    const key = String(path[path.length - 1]);
    const renamed = RENAMED_KEYS[key];
    const hint = renamed && known.includes(renamed) ? renamed : suggest(key, known);
    const expected = hint
      ? `a known key of ${where} (did you mean "${hint}"?)`
      : `a known key of ${where}, or a comment key starting with @, $, _ or #`;
    this.warning(path, expected, `unknown key ${JSON.stringify(key)}`, 'key');
  }
}

export function suggest(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    if (candidate.toLowerCase() === lower) return candidate;
    const d = editDistance(lower, candidate.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = candidate;
    }
  }
  return bestDistance <= Math.min(2, Math.floor(key.length / 3)) ? best : undefined;
}

/** Edit distance where swapping two adjacent letters counts as one edit ("prot" -> "port"). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 0; j <= b.length; j++) (d[0] as number[])[j] = j;
  for (let i = 1; i <= a.length; i++) {
    const row = d[i] as number[];
    const prev = d[i - 1] as number[];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, ((d[i - 2] as number[])[j - 2] as number) + 1);
      }
      row[j] = best;
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}
