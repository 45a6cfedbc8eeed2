// `validation/cel` (endpoint and backend): KrakenD's krakend-cel. A list of
// `{"check_expr": "..."}` CEL expressions; each must be true for the request
// to go on. When an expression runs depends on the variables it uses, as in
// KrakenD: with a `resp_*` variable, after the backends (or this backend)
// answered; with `req_*` only, before; with `JWT` only, at endpoint level, as
// the token rejecter of auth/validator (401, empty body).
//
// A false expression (or one that fails, or is not a bool) gives KrakenD's
// answer: at endpoint level the request is aborted, 500 with
// "request aborted by evaluator #N" under router.return_error_msg; at backend
// level that backend fails, so the endpoint answers partially (or 500 when it
// was the only one). Expressions are parsed and type-checked once per Plan
// (@marcbachmann/cel-js); a syntax or type error is a config error.

import type { Environment, ParseResult } from '@marcbachmann/cel-js';
import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import type { IssueCollector } from '../config/issues.ts';
import type { JsonPath } from '../config/json-path.ts';
import { translateRe2 } from '../config/re2.ts';
import type { BackendConfig, EndpointConfig } from '../config/types.ts';
import { PolicyError } from '../proxy/errors.ts';
import { canonicalHeaderKey, compileHeaderForwarder } from '../proxy/headers.ts';
import { compileQueryFilter, decodePath, parseQuery } from '../proxy/query.ts';
import type { Proxy, ProxyRequest, ProxyResponse, RawHeaders } from '../proxy/types.ts';
import { lazyRequire } from '../shared/lazy-require.ts';
import { USER_AGENT } from '../version.ts';
import type { Namespace } from './namespace.ts';
import { NESTED_QUANTIFIER } from './validation-json-schema.ts';

const NAME = 'validation/cel';

/** When an expression runs: before the next stage, after it, or on the token (endpoint level). */
export type CelPhase = 'pre' | 'post' | 'jwt';

export interface CelCheck {
  expr: string;
  phase: CelPhase;
}

export interface CelOptions {
  checks: CelCheck[];
}

/** Stable codes of the refusals. */
export const CEL_CODES = { rejected: 'CEL_REJECTED', token: 'CEL_TOKEN_REJECTED' } as const;

const REQ_VARS = ['req_method', 'req_path', 'req_params', 'req_headers', 'req_querystring'] as const;
const RESP_VARS = ['resp_completed', 'resp_metadata_status', 'resp_metadata_headers', 'resp_data'] as const;
type VarName = (typeof REQ_VARS)[number] | (typeof RESP_VARS)[number] | 'JWT' | 'now';

/** The variables and their types, as krakend-cel declares them. */
const DECLARATIONS: Readonly<Record<VarName, string>> = {
  req_method: 'string',
  req_path: 'string',
  req_params: 'map<string, string>',
  req_headers: 'map<string, list<string>>',
  req_querystring: 'map<string, list<string>>',
  resp_completed: 'bool',
  resp_metadata_status: 'int',
  resp_metadata_headers: 'map<string, list<string>>',
  resp_data: 'map<string, dyn>',
  JWT: 'map<string, dyn>',
  now: 'string',
};

const celLibrary = lazyRequire<typeof import('@marcbachmann/cel-js')>('@marcbachmann/cel-js');
let shared: Environment | undefined;
/**
 * One environment for every expression (building one is the costly part);
 * nothing is registered after. cel-js is loaded on first use: a gateway
 * without CEL checks does not carry it.
 */
function environment(): Environment {
  if (shared) return shared;
  const env = new (celLibrary().Environment)();
  for (const [name, type] of Object.entries(DECLARATIONS)) env.registerVariable(name, type);
  shared = env;
  return env;
}

const RULES: ObjectRules = { check_expr: 'string', mod_expr: 'string' };
const MACROS = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);

export const validationCel: Namespace<CelOptions> = {
  name: NAME,
  scopes: ['endpoint', 'backend'],
  order: 610,
  policy: true,
  parse(raw, path, c, ctx) {
    if (!Array.isArray(raw)) {
      c.invalid(path, 'a list of checks such as [{"check_expr": "req_method == \'GET\'"}]', raw);
      return undefined;
    }
    const before = c.errors.length;
    const checks: CelCheck[] = [];
    raw.forEach((item, i) => {
      const at = [...path, i];
      if (!expectObject(c, item, at, 'an object {"check_expr": "..."}')) return;
      const valid = checkFields(c, item, at, RULES, `a "${NAME}" check`);
      if (valid.has('mod_expr')) c.warning([...at, 'mod_expr'], 'only "check_expr"', '"mod_expr", which KrakenD CE does not use either: ignored');
      if (!('check_expr' in item)) {
        c.missing([...at, 'check_expr'], 'a CEL expression that is true for the requests to serve');
        return;
      }
      if (!valid.has('check_expr')) return;
      const expr = item.check_expr as string;
      if (expr.trim() === '') {
        c.warning([...at, 'check_expr'], 'a CEL expression', '"" (an empty expression checks nothing: ignored, as in KrakenD)');
        return;
      }
      const check = checkExpression(c, expr, [...at, 'check_expr'], ctx.scope === 'endpoint');
      if (check) checks.push(check);
    });
    if (c.errors.length > before) return undefined;
    if (checks.length === 0) c.warning(path, 'at least one check', 'no expression: the namespace checks nothing');
    return { checks };
  },
  compile(o, ctx) {
    if (o.checks.length === 0) return undefined;
    return { middleware: celMiddleware(o, ctx.endpoint!, ctx.backend) };
  },
};

/** Parse and type-check one expression; report what is wrong with it; undefined when unusable. */
function checkExpression(c: IssueCollector, expr: string, at: JsonPath, endpointLevel: boolean): CelCheck | undefined {
  let parsed: ParseResult;
  try {
    parsed = environment().parse(expr);
  } catch (err) {
    c.error(at, 'a CEL expression (see the CEL language definition)', `${c.found(at, expr)}: ${celMessage(err)}`);
    return undefined;
  }
  const typed = parsed.check();
  if (!typed.valid) {
    c.error(at, `a CEL expression over ${Object.keys(DECLARATIONS).join(', ')}`, `${c.found(at, expr)}: ${celMessage(typed.error)}`);
    return undefined;
  }
  if (typed.type !== 'bool' && typed.type !== 'dyn') {
    c.error(at, 'a CEL expression that is a bool', `${c.found(at, expr)}, which is a ${typed.type} (it would abort every request)`);
    return undefined;
  }
  const facts = inspect(parsed.ast);
  let ok = true;
  for (const p of facts.patterns) {
    if (p === undefined) {
      c.error(at, 'matches() with a string literal pattern', `${c.found(at, expr)}: a pattern taken from request or response data (a client could send one that takes exponential time)`);
      ok = false;
      continue;
    }
    const t = translateRe2(p);
    if (!t.ok) {
      c.error(at, 'matches() patterns in Go RE2 syntax (what KrakenD accepts)', `${JSON.stringify(p)}: ${t.reason}`);
      ok = false;
      continue;
    }
    try {
      new RegExp(p);
    } catch {
      c.error(at, 'matches() patterns JavaScript can also compile (Portico\'s CEL runs them as RegExp)', `${JSON.stringify(p)}: valid RE2, but not a JavaScript regular expression (write it without RE2-only syntax such as (?i))`);
      ok = false;
      continue;
    }
    if (t.source !== p || t.flags !== 'u') {
      c.warning(at, 'matches() patterns that RE2 and JavaScript read alike', `${JSON.stringify(p)}: RE2 and JavaScript may read it differently (Portico's CEL matches with JavaScript's RegExp)`);
    }
    if (NESTED_QUANTIFIER.test(p)) {
      c.warning(at, 'matches() patterns without nested repetition', `${JSON.stringify(p)}: a repeated group that repeats inside can take exponential time on crafted input (Go's RE2 cannot; JavaScript's RegExp can)`);
    }
  }
  if (facts.nestedMacro) {
    c.warning(at, 'no comprehension (all, exists, map, filter...) inside another', `${c.found(at, expr)}: its cost grows with the square of the data it walks, which clients and backends choose`);
  }
  if (!ok) return undefined;
  const phase: CelPhase = facts.vars.some((v) => v.startsWith('resp_')) ? 'post' : facts.vars.some((v) => v.startsWith('req_')) ? 'pre' : facts.vars.includes('JWT') && endpointLevel ? 'jwt' : 'pre';
  return { expr, phase };
}

function celMessage(err: unknown): string {
  const e = err as { summary?: string; message?: string; range?: { start: number } } | undefined;
  const text = e?.summary ?? e?.message?.split('\n')[0] ?? String(err);
  return e?.range ? `${text} (at character ${e.range.start + 1})` : text;
}

interface AstFacts {
  /** The declared variables used. */
  vars: VarName[];
  /** matches() patterns: the literal, or undefined when not a literal. */
  patterns: (string | undefined)[];
  /** A comprehension inside another's body. */
  nestedMacro: boolean;
}

interface AstLike {
  op: string;
  args: unknown;
}

const isNode = (v: unknown): v is AstLike => typeof v === 'object' && v !== null && 'op' in v && 'args' in v;

/** What an expression uses, from its parse tree. */
function inspect(root: unknown): AstFacts {
  const vars = new Set<VarName>();
  const patterns: (string | undefined)[] = [];
  let nestedMacro = false;
  const walk = (v: unknown, inMacro: boolean): void => {
    if (Array.isArray(v)) {
      for (const x of v) walk(x, inMacro);
      return;
    }
    if (!isNode(v)) return;
    if (v.op === 'id' && typeof v.args === 'string' && v.args in DECLARATIONS) vars.add(v.args as VarName);
    if (v.op === 'rcall' && Array.isArray(v.args)) {
      const [name, receiver, args] = v.args as [string, unknown, unknown[]];
      if (name === 'matches') {
        const p = args[0];
        patterns.push(isNode(p) && p.op === 'value' && typeof p.args === 'string' ? p.args : undefined);
      }
      if (MACROS.has(name)) {
        if (inMacro) nestedMacro = true;
        walk(receiver, inMacro);
        walk(args, true);
        return;
      }
    }
    walk(v.args, inMacro);
  };
  walk(root, false);
  return { vars: [...vars], patterns, nestedMacro };
}

type Activation = Partial<Record<VarName, unknown>>;
type Evaluator = { run: ParseResult; refusal: PolicyError };

/** The middleware of one namespace use (exported for tests). */
export function celMiddleware(o: CelOptions, ep: EndpointConfig, backend: BackendConfig | undefined) {
  const env = environment();
  const where = backend ? `backend ${backend.urlPattern}` : `endpoint ${ep.endpoint}`;
  const byPhase = (phase: CelPhase): Evaluator[] =>
    o.checks
      .filter((c) => c.phase === phase)
      .map((c, i) => {
        const run = env.parse(c.expr);
        run.check(); // typed once: evaluations skip the type checker
        // KrakenD numbers the evaluators of each phase from 0; built once (an Error captures a stack).
        const refusal =
          phase === 'jwt'
            ? new PolicyError(401, CEL_CODES.token, NAME, `${where}: token rejected by evaluator #${i}`)
            : new PolicyError(500, CEL_CODES.rejected, NAME, `${where}: request aborted by evaluator #${i} (${phase === 'pre' ? 'before' : 'after'} the backend${backend ? '' : 's'})`, undefined, `request aborted by evaluator #${i}`);
        return { run, refusal };
      });
  const jwt = byPhase('jwt');
  const pre = byPhase('pre');
  const post = byPhase('post');
  const used = new Set(o.checks.flatMap((c) => inspect(env.parse(c.expr).ast).vars));
  const reqVars = compileRequestVars(used, ep, backend);

  const passes = (list: Evaluator[], act: Activation): PolicyError | undefined => {
    for (const e of list) {
      let ok: unknown;
      try {
        ok = e.run(act);
      } catch {
        ok = false; // a missing key, a type mismatch, a stack overflow: the check fails, as in KrakenD
      }
      if (ok !== true) return e.refusal;
    }
    return undefined;
  };

  return (next: Proxy): Proxy =>
    (req) => {
      const act = reqVars(req);
      const refused = passes(jwt, act) ?? passes(pre, act);
      if (refused) return Promise.reject(refused);
      if (post.length === 0) return next(req);
      return next(req).then((r) => {
        setResponseVars(act, r, used);
        const refusedAfter = passes(post, act);
        if (refusedAfter) {
          r.passthrough?.discard();
          throw refusedAfter;
        }
        return r;
      });
    };
}

/** Builds the req_*, JWT and now variables an expression set uses (and only those). */
function compileRequestVars(used: ReadonlySet<VarName>, ep: EndpointConfig, backend: BackendConfig | undefined): (req: ProxyRequest) => Activation {
  // The headers and query strings the backend gets, as KrakenD's request carries only those.
  const headers = used.has('req_headers') ? compileHeaderForwarder(ep.inputHeaders, backend?.inputHeaders, USER_AGENT) : undefined;
  const query = used.has('req_querystring') ? compileQueryFilter(ep.inputQueryStrings, backend?.inputQueryStrings) : undefined;
  const method = used.has('req_method');
  const path = used.has('req_path');
  const params = used.has('req_params');
  const claims = used.has('JWT');
  const now = used.has('now');
  return (req) => {
    const act: Activation = {};
    if (method) act.req_method = req.method;
    if (path) act.req_path = decodePath(req.path);
    if (params) act.req_params = capitalizedParams(req);
    if (headers) act.req_headers = headerLists(headers(req));
    if (query) act.req_querystring = Object.fromEntries(parseQuery(query(req.rawQuery)));
    if (claims) act.JWT = req.claims ?? {};
    if (now) act.now = rfc3339Now();
    return act;
  };
}

function setResponseVars(act: Activation, r: ProxyResponse, used: ReadonlySet<VarName>): void {
  const pt = r.passthrough;
  act.resp_completed = r.complete;
  act.resp_data = r.data;
  // KrakenD fills the metadata for no-op answers only; others have status 0 and no headers.
  act.resp_metadata_status = BigInt(pt ? pt.status : 0);
  if (used.has('resp_metadata_headers')) act.resp_metadata_headers = pt ? rawHeaderLists(pt.headers) : {};
}

/** Lura's parameters: the first letter upper-cased (`{id_user}` is `Id_user`), sequential `resp0_x` ones too. */
function capitalizedParams(req: ProxyRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k in req.params) out[capitalize(k)] = req.params[k];
  const extra = req.extraParams;
  if (extra) for (const k in extra) out[capitalize(k)] = extra[k];
  return out;
}

const capitalize = (s: string): string => (s === '' ? s : s[0].toUpperCase() + s.slice(1));

/** Go's http.Header shape: canonical names, every value a list. */
function headerLists(h: Record<string, string | string[]>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const name in h) {
    const v = h[name];
    out[canonicalHeaderKey(name)] = Array.isArray(v) ? v : [v];
  }
  return out;
}

function rawHeaderLists(raw: RawHeaders): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = canonicalHeaderKey(String(raw[i]));
    const v = raw[i + 1];
    (out[name] ??= []).push(...(Array.isArray(v) ? v : [v]));
  }
  return out;
}

/** Go's time.RFC3339 (seconds), as KrakenD passes `now`. */
function rfc3339Now(): string {
  return new Date().toISOString().slice(0, 19) + 'Z';
}
