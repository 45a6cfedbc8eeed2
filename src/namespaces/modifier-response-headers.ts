// `modifier/response-headers` (service; Enterprise in KrakenD): add, replace
// and delete headers of every answer, at the very end, whatever produced it
// (an endpoint, a streamed no-op answer, an error, a policy refusal, a 404,
// Portico's own X-Portico-Completed). The rules are applied when the answer's
// headers are written (see applyTo), so nothing set later escapes them.

import { ServerResponse } from 'node:http';
import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import type { IssueCollector } from '../config/issues.ts';
import type { JsonPath } from '../config/json-path.ts';
import { BAD_HEADER_VALUE, canonicalHeaderKey, HTTP_TOKEN } from '../proxy/headers.ts';
import type { Namespace } from './namespace.ts';

const NAME = 'modifier/response-headers';

export interface ResponseHeaderRules {
  /** Lower-case names removed. */
  delete: string[];
  /** [canonical name, values]: every earlier value replaced. */
  replace: [string, string[]][];
  /** [canonical name, values]: appended to what is there. */
  add: [string, string[]][];
}

const RULES: ObjectRules = { add: 'object', replace: 'object', delete: 'string[]' };

/** Headers a rule may not touch: they frame the message (changing them would corrupt it). */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection']);

export const modifierResponseHeaders: Namespace<ResponseHeaderRules> = {
  name: NAME,
  scopes: ['service'],
  order: 640,
  policy: true,
  parse(raw, path, c) {
    if (!expectObject(c, raw, path, 'an object with "add", "replace" and/or "delete"')) return undefined;
    const valid = checkFields(c, raw, path, RULES, `the "${NAME}" namespace`);
    const out: ResponseHeaderRules = { delete: [], replace: [], add: [] };
    if (valid.has('delete')) {
      (raw.delete as string[]).forEach((name, i) => {
        if (checkName(c, name, [...path, 'delete', i])) out.delete.push(name.toLowerCase());
      });
    }
    for (const kind of ['replace', 'add'] as const) {
      if (!valid.has(kind)) continue;
      for (const [name, value] of Object.entries(raw[kind] as Record<string, unknown>)) {
        const at = [...path, kind, name];
        if (!checkName(c, name, at)) continue;
        const values = typeof value === 'string' ? [value] : value;
        if (!Array.isArray(values) || values.some((v) => typeof v !== 'string')) {
          c.invalid(at, 'an array of header values (strings)', value);
          continue;
        }
        if (values.some((v) => BAD_HEADER_VALUE.test(v as string))) {
          c.invalid(at, 'values without control characters (CR, LF, NUL, ...)', value);
          continue;
        }
        out[kind].push([canonicalHeaderKey(name), values as string[]]);
      }
    }
    return out;
  },
};

function checkName(c: IssueCollector, name: string, at: JsonPath): boolean {
  if (!HTTP_TOKEN.test(name)) {
    c.invalid(at, 'a header name', name);
    return false;
  }
  if (FRAMING.has(name.toLowerCase())) {
    c.invalid(at, `a header other than ${[...FRAMING].join(', ')} (they frame the message; Portico sets them)`, name);
    return false;
  }
  return true;
}

const kRules = Symbol('portico.responseHeaderRules');
type RuledResponse = ServerResponse & { [kRules]?: ResponseHeaderRules };

/**
 * Apply `rules` to `res` when its head is written. Every answer ends in
 * writeHead (node:http calls it for a bare end() too), so the rules see the
 * final header set: the ones set before and the ones passed to writeHead.
 */
export function applyTo(res: ServerResponse, rules: ResponseHeaderRules): void {
  (res as RuledResponse)[kRules] = rules;
  res.writeHead = writeHeadWithRules as ServerResponse['writeHead'];
}

function writeHeadWithRules(this: RuledResponse, status: number, ...rest: unknown[]): ServerResponse {
  const rules = this[kRules]!;
  // writeHead(status, [reason], [headers]): fold the headers into the response first.
  const headers = typeof rest[0] === 'string' ? rest[1] : rest[0];
  const reason = typeof rest[0] === 'string' ? rest[0] : undefined;
  if (Array.isArray(headers)) {
    // A flat [name, value, ...] list (streamed answers) or [[name, value], ...].
    if (headers.length > 0 && Array.isArray(headers[0])) for (const [n, v] of headers as [string, string][]) this.appendHeader(n, v);
    else for (let i = 0; i < headers.length; i += 2) this.appendHeader(headers[i] as string, headers[i + 1] as string | string[]);
  } else if (headers !== undefined && headers !== null) {
    for (const [n, v] of Object.entries(headers as Record<string, string | string[] | number>)) this.setHeader(n, v);
  }
  for (const name of rules.delete) this.removeHeader(name);
  for (const [name, values] of rules.replace) this.setHeader(name, values.length === 1 ? values[0] : values);
  for (const [name, values] of rules.add) this.appendHeader(name, values);
  return reason === undefined ? proto.call(this, status) : proto.call(this, status, reason);
}

const proto = ServerResponse.prototype.writeHead as (this: ServerResponse, status: number, reason?: string) => ServerResponse;
