// Checks for the extra_config namespaces Portico implements: service `router`
// and `portico/server`, endpoint `proxy`, backend `proxy` and `backend/http`.
// Every other namespace fails closed (namespace-support.ts): an error when it
// enforces a policy, a warning when it only observes.

import { isIP } from 'node:net';
import { checkFields, checkValue, expectObject, quoteList, type ObjectRules } from './fields.ts';
import { isPlainObject, type JsonPath } from './json-path.ts';
import type { IssueCollector } from './issues.ts';
import { reportUnsupportedNamespace, type NamespaceScope } from './namespace-support.ts';

export const ROUTER_NS = 'router';
export const PROXY_NS = 'proxy';
export const BACKEND_HTTP_NS = 'backend/http';
export const PORTICO_SERVER_NS = 'portico/server';

const ROUTER_RULES: ObjectRules = {
  return_error_msg: 'boolean',
  health_path: 'custom',
  disable_health: 'boolean',
  error_body: 'custom',
  auto_options: 'boolean',
  remove_extra_slash: 'boolean',
  disable_redirect_trailing_slash: 'boolean',
  disable_redirect_fixed_path: 'boolean',
  forwarded_by_client_ip: 'boolean',
  remote_ip_headers: 'string[]',
  trusted_proxies: 'custom',
  disable_access_log: 'boolean',
  logger_skip_paths: 'string[]',
  // Known to KrakenD; accepted so they are not reported as unknown.
  app_engine: 'boolean',
  decompress_gzip: { kind: 'integer', min: 0 },
  disable_gzip: 'boolean',
  disable_handle_method_not_allowed: 'boolean',
  disable_path_decoding: 'boolean',
  hide_version_header: 'boolean',
  max_multipart_memory: { kind: 'integer', min: 0 },
  max_payload: { kind: 'integer', min: 0 },
};

const PORTICO_SERVER_RULES: ObjectRules = {
  max_body_bytes: { kind: 'integer', min: 1 },
  max_backend_body_bytes: { kind: 'integer', min: 1 },
};

const ENDPOINT_PROXY_RULES: ObjectRules = {
  sequential: 'boolean',
  sequential_propagated_params: 'string[]',
  combiner: 'string',
  static: 'custom',
  flatmap_filter: 'custom',
};

const BACKEND_PROXY_RULES: ObjectRules = {
  shadow: 'boolean',
  flatmap_filter: 'custom',
};

const BACKEND_HTTP_RULES: ObjectRules = {
  return_error_details: 'string',
  return_error_code: 'boolean',
};

export const STATIC_STRATEGIES = ['always', 'success', 'errored', 'complete', 'incomplete'] as const;
const FLATMAP_ARGS: Readonly<Record<string, number>> = { move: 2, append: 2, del: 1 };

/** The namespaces this build implements, by scope. */
const IMPLEMENTED: Readonly<Record<NamespaceScope, readonly string[]>> = {
  service: [ROUTER_NS, PORTICO_SERVER_NS],
  endpoint: [PROXY_NS],
  backend: [PROXY_NS, BACKEND_HTTP_NS],
};

/** Fail closed: every key of `extra` that no implemented namespace handles at this scope is reported. */
export function checkUnsupportedNamespaces(c: IssueCollector, extra: Record<string, unknown>, path: JsonPath, scope: NamespaceScope): void {
  const implemented = IMPLEMENTED[scope];
  for (const name of Object.keys(extra)) {
    if (implemented.includes(name)) continue;
    const elsewhere = (Object.keys(IMPLEMENTED) as NamespaceScope[]).filter((s) => IMPLEMENTED[s].includes(name));
    reportUnsupportedNamespace(c, name, [...path, name], scope, implemented, elsewhere);
  }
}

/** Service-level extra_config. */
export function checkServiceNamespaces(c: IssueCollector, extra: Record<string, unknown>, path: JsonPath): void {
  checkUnsupportedNamespaces(c, extra, path, 'service');
  if (ROUTER_NS in extra) checkRouter(c, extra[ROUTER_NS], [...path, ROUTER_NS]);
  const server = extra[PORTICO_SERVER_NS];
  const serverPath = [...path, PORTICO_SERVER_NS];
  if (PORTICO_SERVER_NS in extra && expectObject(c, server, serverPath, 'an object')) {
    checkFields(c, server, serverPath, PORTICO_SERVER_RULES, `the "${PORTICO_SERVER_NS}" namespace`);
  }
}

function checkRouter(c: IssueCollector, router: unknown, path: JsonPath): void {
  if (!expectObject(c, router, path, 'an object with router options')) return;
  checkFields(c, router, path, ROUTER_RULES, 'the "router" namespace');
  if ('health_path' in router) {
    const hp = router.health_path;
    if (typeof hp !== 'string' || !hp.startsWith('/')) {
      c.invalid([...path, 'health_path'], 'a path starting with "/", such as "/__health"', hp);
    }
  }
  if ('error_body' in router) checkErrorBody(c, router.error_body, [...path, 'error_body']);
  if ('trusted_proxies' in router) checkTrustedProxies(c, router.trusted_proxies, [...path, 'trusted_proxies']);
}

function checkErrorBody(c: IssueCollector, body: unknown, path: JsonPath): void {
  if (!expectObject(c, body, path, 'an object such as {"404": {...}, "405": {...}}')) return;
  for (const [code, value] of Object.entries(body)) {
    if (code !== '404' && code !== '405') {
      c.warning([...path, code], 'a status code "404" or "405" (the only errors KrakenD lets you customize)', `unknown key ${JSON.stringify(code)}`, 'key');
    } else if (!isPlainObject(value)) {
      c.invalid([...path, code], 'a JSON object to use as the response body', value);
    }
  }
}

function checkTrustedProxies(c: IssueCollector, value: unknown, path: JsonPath): void {
  if (!checkValue(c, value, path, { kind: 'string[]' })) return;
  (value as string[]).forEach((entry, i) => {
    if (!isIpOrCidr(entry)) c.invalid([...path, i], 'an IP address or CIDR range such as "10.0.0.0/8"', entry);
  });
}

function isIpOrCidr(text: string): boolean {
  const [address, bits, ...rest] = text.split('/');
  const version = isIP(address ?? '');
  if (version === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  const max = version === 4 ? 32 : 128;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= max;
}

/** Endpoint `proxy`; returns whether the backends run sequentially. */
export function checkEndpointProxy(c: IssueCollector, proxy: unknown, path: JsonPath): { sequential: boolean } {
  if (!expectObject(c, proxy, path, 'an object with proxy options')) return { sequential: false };
  const valid = checkFields(c, proxy, path, ENDPOINT_PROXY_RULES, 'the endpoint "proxy" namespace');
  if ('static' in proxy) checkStatic(c, proxy.static, [...path, 'static']);
  if ('flatmap_filter' in proxy) checkFlatmap(c, proxy.flatmap_filter, [...path, 'flatmap_filter']);
  return { sequential: valid.has('sequential') && proxy.sequential === true };
}

function checkStatic(c: IssueCollector, value: unknown, path: JsonPath): void {
  if (!expectObject(c, value, path, 'an object {"strategy": ..., "data": {...}}')) return;
  checkFields(c, value, path, { strategy: { kind: 'string', oneOf: STATIC_STRATEGIES }, data: 'object' }, 'proxy.static');
  if (!('data' in value)) c.missing([...path, 'data'], 'an object to merge into the response');
}

export function checkFlatmap(c: IssueCollector, value: unknown, path: JsonPath): void {
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

export function checkBackendNamespaces(c: IssueCollector, extra: Record<string, unknown>, path: JsonPath): void {
  checkUnsupportedNamespaces(c, extra, path, 'backend');
  if (PROXY_NS in extra) {
    const proxyPath = [...path, PROXY_NS];
    const proxy = extra[PROXY_NS];
    if (expectObject(c, proxy, proxyPath, 'an object with backend proxy options')) {
      checkFields(c, proxy, proxyPath, BACKEND_PROXY_RULES, 'the backend "proxy" namespace');
      if ('flatmap_filter' in proxy) checkFlatmap(c, proxy.flatmap_filter, [...proxyPath, 'flatmap_filter']);
    }
  }
  if (BACKEND_HTTP_NS in extra) {
    const httpPath = [...path, BACKEND_HTTP_NS];
    const http = extra[BACKEND_HTTP_NS];
    if (expectObject(c, http, httpPath, 'an object with backend/http options')) {
      checkFields(c, http, httpPath, BACKEND_HTTP_RULES, `the "${BACKEND_HTTP_NS}" namespace`);
    }
  }
}
