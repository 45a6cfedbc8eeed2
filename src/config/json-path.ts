// JSON paths as used in every ConfigIssue: $.endpoints[2].backend[0].url_pattern,
// with bracket notation for keys that are not identifiers: $.extra_config["backend/http"].

export type PathSegment = string | number;
export type JsonPath = readonly PathSegment[];

/** 1-based position in the source text. */
export interface SourcePosition {
  line: number;
  column: number;
}

/**
 * Finds where a path's value (or its key) is written in the source. A path that
 * does not exist in the file (a missing key) resolves to its closest existing
 * ancestor, so that "missing key" issues point at the containing object.
 */
export type Locate = (path: JsonPath, at: 'value' | 'key') => SourcePosition | undefined;

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function formatPath(path: JsonPath): string {
  let out = '$';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (IDENTIFIER.test(segment)) out += `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
