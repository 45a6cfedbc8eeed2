// `proxy` (endpoint and backend): KrakenD's proxy options. At endpoint level
// `sequential` shapes how the core composes the backends (proxy/endpoint.ts)
// and this module wraps the composed answer with `flatmap_filter` and
// `static`; at backend level `shadow` and `flatmap_filter` are read by the
// backend call and its transform.

import { checkFields, expectObject, quoteList, type ObjectRules } from '../config/fields.ts';
import type { IssueCollector } from '../config/issues.ts';
import { isPlainObject, type JsonPath } from '../config/json-path.ts';
import { bool, obj, str, strings } from '../config/read.ts';
import type { EndpointProxyOptions, FlatmapOperation } from '../config/types.ts';
import type { Proxy, ProxyResponse } from '../proxy/types.ts';
import { mergeInto } from '../transform/data.ts';
import { compileFlatmap } from '../transform/manipulate.ts';
import type { Namespace } from './namespace.ts';
import { combineMiddlewares } from './stack.ts';

export interface BackendProxyOptions {
  shadow: boolean;
  flatmapFilter?: FlatmapOperation[];
}

export type ProxyOptions = EndpointProxyOptions | BackendProxyOptions;

const ENDPOINT_RULES: ObjectRules = {
  sequential: 'boolean',
  sequential_propagated_params: 'string[]',
  combiner: 'string',
  static: 'custom',
  flatmap_filter: 'custom',
};

const BACKEND_RULES: ObjectRules = {
  shadow: 'boolean',
  flatmap_filter: 'custom',
};

export const STATIC_STRATEGIES = ['always', 'success', 'errored', 'complete', 'incomplete'] as const;
const FLATMAP_ARGS: Readonly<Record<string, number>> = { move: 2, append: 2, del: 1 };

export const proxy: Namespace<ProxyOptions> = {
  name: 'proxy',
  scopes: ['endpoint', 'backend'],
  // Innermost: flatmap and static shape the composed answer before any policy sees it.
  order: 900,
  policy: false,
  parse(raw, path, c, ctx) {
    if (ctx.scope === 'backend') {
      if (!expectObject(c, raw, path, 'an object with backend proxy options')) return undefined;
      checkFields(c, raw, path, BACKEND_RULES, 'the backend "proxy" namespace');
      if ('flatmap_filter' in raw) checkFlatmap(c, raw.flatmap_filter, [...path, 'flatmap_filter']);
      const options: BackendProxyOptions = { shadow: bool(raw.shadow) };
      const ops = flatmap(raw.flatmap_filter);
      if (ops) options.flatmapFilter = ops;
      return options;
    }
    if (!expectObject(c, raw, path, 'an object with proxy options')) return undefined;
    checkFields(c, raw, path, ENDPOINT_RULES, 'the endpoint "proxy" namespace');
    if ('static' in raw) checkStatic(c, raw.static, [...path, 'static']);
    if ('flatmap_filter' in raw) checkFlatmap(c, raw.flatmap_filter, [...path, 'flatmap_filter']);
    return endpointOptions(raw);
  },
  compile(options, ctx) {
    if (ctx.scope !== 'endpoint') return undefined;
    const o = options as EndpointProxyOptions;
    const apply = o.flatmapFilter?.length ? compileFlatmap(o.flatmapFilter) : undefined;
    // flatmap applies to the merged answer first, static data is merged after it.
    const middleware = combineMiddlewares([
      o.static ? (next: Proxy) => withStatic(next, o.static!) : undefined,
      apply ? (next: Proxy) => withFlatmap(next, apply) : undefined,
    ]);
    return middleware ? { middleware } : undefined;
  },
};

function endpointOptions(p: Record<string, unknown>): EndpointProxyOptions {
  const options: EndpointProxyOptions = { sequential: bool(p.sequential) };
  if (isPlainObject(p.static)) {
    const strategy = (str(p.static.strategy) ?? 'always') as NonNullable<EndpointProxyOptions['static']>['strategy'];
    options.static = { strategy, data: obj(p.static.data) };
  }
  const ops = flatmap(p.flatmap_filter);
  if (ops) options.flatmapFilter = ops;
  return options;
}

function flatmap(value: unknown): FlatmapOperation[] | undefined {
  if (!Array.isArray(value)) return undefined;
  return value.map((op) => ({ type: obj(op).type as FlatmapOperation['type'], args: strings(obj(op).args) ?? [] }));
}

function checkStatic(c: IssueCollector, value: unknown, path: JsonPath): void {
  if (!expectObject(c, value, path, 'an object {"strategy": ..., "data": {...}}')) return;
  checkFields(c, value, path, { strategy: { kind: 'string', oneOf: STATIC_STRATEGIES }, data: 'object' }, 'proxy.static');
  if (!('data' in value)) c.missing([...path, 'data'], 'an object to merge into the response');
}

function checkFlatmap(c: IssueCollector, value: unknown, path: JsonPath): void {
  if (!Array.isArray(value)) {
    c.invalid(path, 'an array of operations such as {"type": "move", "args": ["a", "b"]}', value);
    return;
  }
  value.forEach((op, i) => {
    const opPath = [...path, i];
    if (!expectObject(c, op, opPath, 'an operation object {"type": ..., "args": [...]}')) return;
    const valid = checkFields(c, op, opPath, { type: { kind: 'string', oneOf: Object.keys(FLATMAP_ARGS) }, args: 'string[]' }, 'a flatmap operation');
    if (!('type' in op)) c.missing([...opPath, 'type'], `one of ${quoteList(Object.keys(FLATMAP_ARGS))}`);
    if (!('args' in op)) c.missing([...opPath, 'args'], 'an array of dot paths');
    if (valid.has('type') && valid.has('args')) {
      const want = FLATMAP_ARGS[op.type as string] as number;
      const args = op.args as string[];
      if (args.length !== want) {
        c.error([...opPath, 'args'], `exactly ${want} argument${want > 1 ? 's' : ''} for a "${String(op.type)}" operation`, `${args.length} (${JSON.stringify(args)})`);
      }
    }
  });
}

function withFlatmap(next: Proxy, apply: (d: Record<string, unknown>) => Record<string, unknown>): Proxy {
  return async (req) => {
    const r = await next(req);
    return r.passthrough ? r : { ...r, data: apply(r.data) };
  };
}

type StaticOptions = NonNullable<EndpointProxyOptions['static']>;

/** proxy.static: merge fixed data into the answer when the strategy matches (lura's semantics). */
function withStatic(next: Proxy, opts: StaticOptions): Proxy {
  const { strategy, data } = opts;
  const matches = (r: ProxyResponse | undefined, err: unknown): boolean => {
    const failed = err !== undefined || (r?.errors?.length ?? 0) > 0;
    switch (strategy) {
      case 'always': return true;
      case 'success': return !failed;
      case 'errored': return failed;
      case 'complete': return err === undefined && r !== undefined && r.complete;
      case 'incomplete': return r === undefined || !r.complete;
    }
  };
  return async (req) => {
    let r: ProxyResponse | undefined;
    let err: unknown;
    try {
      r = await next(req);
    } catch (e) {
      err = e;
    }
    if (!matches(r, err)) {
      if (err !== undefined) throw err;
      return r!;
    }
    // Static values are shared by every request: they are only ever assigned, never mutated.
    const merged = r ? r.data : {};
    mergeInto(merged, data);
    const errors = err !== undefined ? [err as Error] : r?.errors;
    return { data: merged, complete: r ? r.complete : false, ...(errors ? { errors } : {}) };
  };
}
