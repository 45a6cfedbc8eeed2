// Reads configuration text (JSON by default, YAML for .yml/.yaml) into a plain
// value without comment keys, plus a locator that maps any JSON path back to a
// line and column of the source for error messages.

import { parse as parseJsonAst } from '@humanwhocodes/momoa';
import type { AnyNode } from '@humanwhocodes/momoa';
import type { Document, LineCounter, Node as YamlNode } from 'yaml';
import { lazyRequire } from '../shared/lazy-require.ts';
import { isCommentKey, stripComments } from './comments.ts';
import { formatPath, type Locate, type PathSegment, type SourcePosition } from './json-path.ts';
import type { ConfigIssue } from './types.ts';

export type ConfigFormat = 'json' | 'yaml';

export interface ParsedSource {
  /** The document with comment keys removed. */
  value: unknown;
  locate: Locate;
  /** Keys written twice in one JSON object (the last one wins, as in Go). */
  duplicateKeys: PathSegment[][];
}

export type ParseOutcome = { ok: true; source: ParsedSource } | { ok: false; issue: ConfigIssue };

export function formatOf(file: string): ConfigFormat {
  return /\.ya?ml$/i.test(file) ? 'yaml' : 'json';
}

/** For documents that are not configurations (an OpenAPI spec): keep every key, name what the file should hold. */
export interface ParseOptions {
  keepCommentKeys?: boolean;
  /** What an empty file should have held; default "a configuration object". */
  expected?: string;
}

export function parseConfigText(text: string, file: string, format: ConfigFormat = formatOf(file), opts: ParseOptions = {}): ParseOutcome {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const expected = opts.expected ?? 'a configuration object';
  if (body.trim() === '') {
    return { ok: false, issue: syntaxIssue(file, expected, 'an empty file', 1, 1) };
  }
  const strip = opts.keepCommentKeys ? (v: unknown) => v : stripComments;
  return format === 'yaml' ? parseYaml(body, file, strip, expected) : parseJson(body, file, strip);
}

function syntaxIssue(file: string, expected: string, found: string, line?: number, column?: number): ConfigIssue {
  return { severity: 'error', file, path: '$', line, column, expected, found };
}

class PositionIndex {
  readonly values = new Map<string, SourcePosition>();
  readonly keys = new Map<string, SourcePosition>();

  readonly locate: Locate = (path, at) => {
    if (at === 'key') {
      const key = this.keys.get(formatPath(path));
      if (key) return key;
    }
    for (let n = path.length; n >= 0; n--) {
      const pos = this.values.get(formatPath(path.slice(0, n)));
      if (pos) return pos;
    }
    return undefined;
  };
}

// ---------- JSON ----------

const TOKEN_TEXT: Readonly<Record<string, string>> = {
  LBrace: '"{"',
  RBrace: '"}"',
  LBracket: '"["',
  RBracket: '"]"',
  Colon: '":"',
  Comma: '","',
  String: 'a string',
  Number: 'a number',
  Boolean: 'a boolean',
  Null: 'null',
};

interface MomoaError {
  message: string;
  line?: number;
  column?: number;
  offset?: number;
}

function parseJson(text: string, file: string, strip: (v: unknown) => unknown): ParseOutcome {
  let ast;
  try {
    ast = parseJsonAst(text, { mode: 'json' });
  } catch (e) {
    const err = e as MomoaError;
    return { ok: false, issue: syntaxIssue(file, 'valid JSON', describeJsonError(err, text), err.line, err.column) };
  }
  const duplicateKeys: PathSegment[][] = [];
  findDuplicateKeys(ast.body, [], duplicateKeys);
  // Positions are only needed to report a problem: index them on first use
  // (indexing every node costs more than parsing on large configs).
  let index: PositionIndex | undefined;
  const root = ast.body;
  const locate: Locate = (path, at) => {
    if (!index) {
      index = new PositionIndex();
      indexJson(root, [], index);
    }
    return index.locate(path, at);
  };
  return { ok: true, source: { value: strip(JSON.parse(text)), locate, duplicateKeys } };
}

/** Keys written twice in one object; `path` is a shared stack, copied only when one is found. */
function findDuplicateKeys(node: AnyNode, path: PathSegment[], dups: PathSegment[][]): void {
  if (node.type === 'Object') {
    const seen = new Set<string>();
    for (const member of node.members) {
      const name = member.name.type === 'String' ? member.name.value : member.name.name;
      if (seen.has(name) && !isCommentKey(name)) dups.push([...path, name]);
      seen.add(name);
      path.push(name);
      findDuplicateKeys(member.value, path, dups);
      path.pop();
    }
  } else if (node.type === 'Array') {
    node.elements.forEach((element, i) => {
      path.push(i);
      findDuplicateKeys(element.value, path, dups);
      path.pop();
    });
  }
}

function describeJsonError(err: MomoaError, text: string): string {
  const message = err.message.replace(/\s*\(\d+:\d+\)\s*$/, '');
  const token = /^Unexpected token (\w+) found/.exec(message);
  if (token) {
    const what = TOKEN_TEXT[token[1] as string] ?? token[1];
    const before = text.slice(0, err.offset ?? 0).trimEnd();
    const trailingComma = before.endsWith(',') && (token[1] === 'RBrace' || token[1] === 'RBracket');
    // momoa blames the last token when the text stops early: say that the file ended.
    if (!trailingComma && endsAfterToken(text, err.offset ?? 0)) return `the end of the file right after ${what}, before the JSON was complete`;
    return `unexpected ${what}${trailingComma ? ' after a trailing comma (JSON does not allow them)' : ''}`;
  }
  const char = /^Unexpected character '(.*)' found/.exec(message);
  if (char) return `unexpected character ${JSON.stringify(char[1])}`;
  if (/end of input/i.test(message)) return 'the end of the file before the JSON was complete';
  return message;
}

const JSON_TOKEN = /^(?:[{}[\],:]|"(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|true|false|null)/;

/** Whether nothing but whitespace follows the token that starts at `offset`. */
function endsAfterToken(text: string, offset: number): boolean {
  const m = JSON_TOKEN.exec(text.slice(offset));
  return m !== null && text.slice(offset + m[0].length).trim() === '';
}

function indexJson(node: AnyNode, path: PathSegment[], index: PositionIndex): void {
  const here = formatPath(path);
  if (node.loc) index.values.set(here, { line: node.loc.start.line, column: node.loc.start.column });
  if (node.type === 'Object') {
    for (const member of node.members) {
      const name = member.name.type === 'String' ? member.name.value : member.name.name;
      const childPath = [...path, name];
      const loc = member.name.loc;
      if (loc) index.keys.set(formatPath(childPath), { line: loc.start.line, column: loc.start.column });
      indexJson(member.value, childPath, index);
    }
  } else if (node.type === 'Array') {
    node.elements.forEach((element, i) => indexJson(element.value, [...path, i], index));
  }
}

// ---------- YAML ----------

/** yaml, loaded by the first YAML file (shared/lazy-require.ts). */
const yaml = lazyRequire<typeof import('yaml')>('yaml');

function parseYaml(text: string, file: string, strip: (v: unknown) => unknown, expected: string): ParseOutcome {
  const { LineCounter, parseDocument } = yaml();
  const lines = new LineCounter();
  // merge: true accepts "<<: *anchor" merge keys, as KrakenD's YAML reader does
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, merge: true });
  const first = doc.errors[0];
  if (first) {
    const pos = lines.linePos(first.pos[0]);
    const message = first.message.split('\n')[0] ?? first.message;
    return { ok: false, issue: syntaxIssue(file, 'valid YAML', message, pos.line, pos.col) };
  }
  if (doc.contents === null) {
    return { ok: false, issue: syntaxIssue(file, expected, 'a YAML file with no content', 1, 1) };
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 1000 });
  } catch (e) {
    return { ok: false, issue: syntaxIssue(file, 'valid YAML', (e as Error).message, 1, 1) };
  }
  const index = new PositionIndex();
  const recursive = indexYaml(doc.contents as YamlNode, [], doc, lines, index, 0, new Set());
  if (recursive) {
    // toJS() built a value that contains itself: nothing could walk it.
    return { ok: false, issue: syntaxIssue(file, 'YAML whose aliases do not contain themselves', 'a recursive alias (an *alias used inside its own &anchor)', recursive.line, recursive.column) };
  }
  return { ok: true, source: { value: strip(value), locate: index.locate, duplicateKeys: [] } };
}

function indexYaml(
  node: YamlNode | null,
  path: PathSegment[],
  doc: Document,
  lines: LineCounter,
  index: PositionIndex,
  depth: number,
  /** The nodes being walked: an alias to one of them is recursive. */
  ancestors: Set<YamlNode>,
): SourcePosition | undefined {
  if (!node || depth > 200) return undefined;
  const { isAlias, isMap, isScalar, isSeq } = yaml();
  const at = (offset: number): SourcePosition => {
    const p = lines.linePos(offset);
    return { line: p.line, column: p.col };
  };
  if (node.range) index.values.set(formatPath(path), at(node.range[0]));
  const target = isAlias(node) ? (node.resolve(doc) ?? null) : node;
  if (!target) return undefined;
  if (ancestors.has(target)) return node.range ? at(node.range[0]) : { line: 1, column: 1 };
  ancestors.add(target);
  let recursive: SourcePosition | undefined;
  if (isMap(target)) {
    for (const pair of target.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      if (key === '<<') continue;
      const childPath = [...path, key];
      const keyNode = pair.key as YamlNode | null;
      if (keyNode?.range) index.keys.set(formatPath(childPath), at(keyNode.range[0]));
      const valueNode = pair.value as YamlNode | null;
      if (valueNode) recursive ??= indexYaml(valueNode, childPath, doc, lines, index, depth + 1, ancestors);
      else if (keyNode?.range) index.values.set(formatPath(childPath), at(keyNode.range[0]));
    }
  } else if (isSeq(target)) {
    target.items.forEach((item, i) => (recursive ??= indexYaml(item as YamlNode, [...path, i], doc, lines, index, depth + 1, ancestors)));
  }
  ancestors.delete(target);
  return recursive;
}
