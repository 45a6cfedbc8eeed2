// `modifier/jmespath` (endpoint and backend; Enterprise in KrakenD): the
// answer's data replaced by the result of one JMESPath expression,
// `{"expr": "students[?age > `18`].name"}`. At endpoint level the expression
// reads the merged data of every backend (after proxy.static and flatmap); at
// backend level the data of that backend after its own manipulations (target,
// allow, deny, mapping, group). A collection backend's array is under
// `collection`, as everywhere in KrakenD.
//
// The result becomes the new data as KrakenD wraps content: an object as it
// is, an array under `collection` (so output_encoding "json-collection" gives
// the array itself), anything else (string, number, boolean, null) under
// `content`.
//
// A syntax error, an unknown function, a wrong number of arguments or a
// misplaced &expression is a config error at `expr`. An expression that fails
// on the data (a function given the wrong type) fails closed: the endpoint
// answers 500 (the error text with router.return_error_msg), or that backend
// fails and the endpoint answers partially; the data is never served
// untransformed. A no-op answer is streamed untouched, so it is refused.
//
// The jmespath package is loaded on first use: a gateway without the
// namespace does not carry it. It has no evaluator for a parsed tree (only
// search(data, text)), so each request parses the expression again (about a
// microsecond); the expression is checked once, when the configuration loads.

import { createRequire } from 'node:module';
import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import { suggest, type IssueCollector } from '../config/issues.ts';
import type { JsonPath } from '../config/json-path.ts';
import { GatewayError } from '../proxy/errors.ts';
import type { Data, Proxy } from '../proxy/types.ts';
import type { Middleware, Namespace } from './namespace.ts';

const NAME = 'modifier/jmespath';

export interface JmespathOptions {
  expr: string;
}

/** Stable code of an expression that failed on a request's data. */
export const JMESPATH_FAILED = 'JMESPATH_FAILED';

/** A node of the tree jmespath's compile() returns. */
interface AstNode {
  type: string;
  name?: string;
  value?: unknown;
  children?: (AstNode | null | number)[];
}

interface JmespathLibrary {
  compile(expression: string): AstNode;
  search(data: unknown, expression: string): unknown;
}

let library: JmespathLibrary | undefined;
function jmespath(): JmespathLibrary {
  library ??= createRequire(import.meta.url)('jmespath') as JmespathLibrary;
  return library;
}

/**
 * The functions of the JMESPath specification, as jmespath implements them:
 * how many arguments each takes (at least that many when variadic) and which
 * are &expressions. Written out because the package does not export its
 * function table, and checking calls here turns its runtime errors into
 * config errors.
 */
const FUNCTIONS: Readonly<Record<string, { args: number; variadic?: true; exprefs?: readonly number[] }>> = {
  abs: { args: 1 }, avg: { args: 1 }, ceil: { args: 1 }, contains: { args: 2 }, ends_with: { args: 2 },
  floor: { args: 1 }, join: { args: 2 }, keys: { args: 1 }, length: { args: 1 },
  map: { args: 2, exprefs: [0] }, max: { args: 1 }, max_by: { args: 2, exprefs: [1] },
  merge: { args: 1, variadic: true }, min: { args: 1 }, min_by: { args: 2, exprefs: [1] },
  not_null: { args: 1, variadic: true }, reverse: { args: 1 }, sort: { args: 1 },
  sort_by: { args: 2, exprefs: [1] }, starts_with: { args: 2 }, sum: { args: 1 }, to_array: { args: 1 },
  to_number: { args: 1 }, to_string: { args: 1 }, type: { args: 1 }, values: { args: 1 },
};
const FUNCTION_NAMES = Object.keys(FUNCTIONS);
const EXPREF_FUNCTIONS = FUNCTION_NAMES.filter((f) => FUNCTIONS[f].exprefs !== undefined);

const RULES: ObjectRules = { expr: 'string' };
const EXPECTED = 'a JMESPath expression (https://jmespath.org/specification.html)';

export const modifierJmespath: Namespace<JmespathOptions> = {
  name: NAME,
  scopes: ['endpoint', 'backend'],
  order: 601,
  // It decides what clients see (often what they must not see): never silently ignored.
  policy: true,
  parse(raw, path, c, ctx) {
    if (!expectObject(c, raw, path, 'an object {"expr": "..."}')) return undefined;
    if (ctx.streamed) {
      const where = ctx.scope === 'endpoint' ? 'an endpoint' : 'a backend';
      c.error(path, `${where} whose answer Portico decodes (a no-op answer is streamed untouched: no expression can change it)`, `"${NAME}" on ${where} whose answer is "no-op"`);
      return undefined;
    }
    const valid = checkFields(c, raw, path, RULES, `the "${NAME}" namespace`);
    const at = [...path, 'expr'];
    if (!('expr' in raw)) {
      c.missing(at, 'a JMESPath expression such as "students[?age > `18`].name"');
      return undefined;
    }
    if (!valid.has('expr')) return undefined;
    const expr = raw.expr as string;
    return checkExpression(c, expr, at) ? { expr } : undefined;
  },
  compile(o, ctx) {
    const details = ctx.backend?.returnErrorDetails;
    return { middleware: jmespathMiddleware(o.expr, details ? `error_${details}` : undefined) };
  },
};

/** Parse `expr` and check its function calls; report what is wrong at `at`. */
function checkExpression(c: IssueCollector, expr: string, at: JsonPath): boolean {
  let ast: AstNode;
  try {
    ast = jmespath().compile(expr);
  } catch (err) {
    c.error(at, EXPECTED, `${c.found(at, expr)}: ${(err as Error).message}`);
    return false;
  }
  const problem = treeProblem(ast, false);
  if (problem === undefined) return true;
  c.error(at, EXPECTED, `${c.found(at, expr)}: ${problem}`);
  return false;
}

/** What jmespath's parser lets through but would fail (or misbehave) on every request. */
function treeProblem(node: AstNode, asArgument: boolean): string | undefined {
  // A slice's children are its numbers (null when omitted).
  if (node.type === 'Slice') return undefined;
  if (node.type === 'ExpressionReference' && !asArgument) {
    return `an &expression is only an argument of ${EXPREF_FUNCTIONS.join(', ')}`;
  }
  if (node.type === 'Function') {
    const problem = callProblem(node);
    if (problem !== undefined) return problem;
  }
  if (node.type === 'KeyValuePair') return treeProblem(node.value as AstNode, false);
  for (const child of node.children ?? []) {
    // jmespath parses "a." as "a" followed by nothing.
    if (child === null || typeof child !== 'object') return 'incomplete expression: a "." with nothing after it';
    const problem = treeProblem(child, node.type === 'Function');
    if (problem !== undefined) return problem;
  }
  return undefined;
}

function callProblem(node: AstNode): string | undefined {
  const name = node.name!;
  const f = FUNCTIONS[name];
  if (f === undefined) {
    const hint = suggest(name, FUNCTION_NAMES);
    return `unknown function ${name}()${hint ? ` (did you mean ${hint}()?)` : ''}; the functions are ${FUNCTION_NAMES.join(', ')}`;
  }
  const args = node.children ?? [];
  if (f.variadic ? args.length < f.args : args.length !== f.args) {
    const count = `${f.variadic ? 'at least ' : ''}${f.args} argument${f.args === 1 ? '' : 's'}`;
    return `${name}() takes ${count}, not ${args.length}`;
  }
  for (let i = 0; i < args.length; i++) {
    const isRef = (args[i] as AstNode | null)?.type === 'ExpressionReference';
    const wantsRef = f.exprefs?.includes(i) ?? false;
    if (wantsRef && !isRef) return `${name}() takes an &expression as argument ${i + 1} (such as &name)`;
    if (!wantsRef && isRef) return `${name}() takes a value, not an &expression, as argument ${i + 1}`;
  }
  return undefined;
}

/**
 * `detailsKey`: at backend level with backend/http return_error_details, the
 * key a failed call's details come under; such an answer is a failure, not
 * data, and passes untouched.
 */
function jmespathMiddleware(expr: string, detailsKey: string | undefined): Middleware {
  const { search } = jmespath();
  return (next: Proxy): Proxy => async (req) => {
    const r = await next(req);
    // A no-op backend of a decoded endpoint: nothing to read (it renders as {}).
    if (r.passthrough) return r;
    if (detailsKey !== undefined && !r.complete && Object.hasOwn(r.data, detailsKey)) return r;
    let result: unknown;
    try {
      result = search(r.data, expr);
    } catch (err) {
      throw new GatewayError(500, `${NAME}: ${(err as Error).message}`, { code: JMESPATH_FAILED, cause: err });
    }
    return { ...r, data: asData(result) };
  };
}

/** KrakenD's wrappers: an object is the data, an array goes under `collection`, anything else under `content`. */
export function asData(value: unknown): Data {
  if (Array.isArray(value)) return { collection: value };
  if (value !== null && typeof value === 'object') return value as Data;
  return { content: value };
}
