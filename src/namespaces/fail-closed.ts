// Fail closed: every extra_config namespace this build does not implement is
// classified here. A namespace that enforces a policy or changes how requests
// are served is an error (serving without it would silently drop a JWT check,
// a rate limit, a CORS rule...); one that only observes (telemetry,
// documentation) is a warning; anything else is reported as unknown.

import { suggest, type IssueCollector } from '../config/issues.ts';
import type { JsonPath } from '../config/json-path.ts';
import type { Namespace, NamespaceScope } from './namespace.ts';

/** KrakenD's policy namespaces (CONFIG-V3 "Fail closed"), by prefix or exact name. */
const POLICY_PREFIXES = ['auth/', 'security/', 'qos/', 'validation/', 'modifier/', 'governance/'];
const POLICY_NAMES = new Set(['websocket', 'grpc']);
/** Namespaces that replace how a request is served (other backend kinds, plugins, server features). */
const BEHAVIOUR_PREFIXES = ['backend/', 'plugin/', 'server/', 'ai/', 'async/'];
const BEHAVIOUR_NAMES = new Set(['redis']);
/** Namespaces that only observe: dropping them loses telemetry, never protection. */
const OBSERVING_PREFIXES = ['telemetry/', 'documentation/'];

export type NamespaceKind = 'policy' | 'behaviour' | 'observing' | 'legacy' | 'unknown';

export function namespaceKind(name: string): NamespaceKind {
  if (POLICY_NAMES.has(name) || POLICY_PREFIXES.some((p) => name.startsWith(p))) return 'policy';
  if (BEHAVIOUR_NAMES.has(name) || BEHAVIOUR_PREFIXES.some((p) => name.startsWith(p))) return 'behaviour';
  if (OBSERVING_PREFIXES.some((p) => name.startsWith(p))) return 'observing';
  // KrakenD 1.x/2.0 namespace names (github_com/devopsfaith/krakend-jose/validator, ...): v3 renamed them all.
  if (name.startsWith('github_com/') || name.startsWith('github.com/')) return 'legacy';
  return 'unknown';
}

/**
 * Reports `name` at `path` (the namespace key), which no implemented namespace
 * handles at this scope. `implemented` lists what this scope does support, for
 * the message and for did-you-mean hints. `elsewhere` is set when Portico
 * implements the namespace at other scopes (`policy`: whether it enforces one;
 * `transport`: whether it is a backend kind).
 */
export function reportUnsupportedNamespace(
  c: IssueCollector,
  name: string,
  path: JsonPath,
  scope: NamespaceScope,
  implemented: readonly string[],
  elsewhere?: { scopes: readonly NamespaceScope[]; policy: boolean; transport?: boolean },
): void {
  const known = implemented.length > 0 ? implemented.map((n) => JSON.stringify(n)).join(', ') : 'none';
  const expected = `a namespace this version of Portico implements at ${scope} level (${known})`;
  const quoted = JSON.stringify(name);
  if (elsewhere) {
    const text = `${quoted} at ${scope} level, where it is not supported by this version (it belongs at ${elsewhere.scopes.join(' or ')} level)`;
    if (elsewhere.policy) c.add('error', path, expected, `${text}: it would not be enforced here`, 'key');
    // A backend kind (AMQP, Lambda, ...) out of place: the backend meant to be a queue or a function would be called over HTTP.
    else if (elsewhere.transport) c.add('error', path, expected, `${text}: it would not apply here`, 'key');
    else c.add('warning', path, expected, `${text}: ignored`, 'key');
    return;
  }
  switch (namespaceKind(name)) {
    case 'policy':
      c.add('error', path, expected, `${quoted}, a policy namespace not supported by this version (serving without it would leave the policy unenforced)`, 'key');
      return;
    case 'behaviour':
      c.add('error', path, expected, `${quoted}, a namespace not supported by this version (it changes how requests are served)`, 'key');
      return;
    case 'legacy':
      c.add('error', path, expected, `${quoted}, a KrakenD 1.x/2.0 namespace name not supported by this version (the v3 format renamed it; see KrakenD's migration guide)`, 'key');
      return;
    case 'observing':
      c.add('warning', path, expected, `${quoted}, an observability namespace not supported by this version: ignored`, 'key');
      return;
    case 'unknown': {
      const hint = suggest(name, implemented);
      const found = hint ? `unknown namespace ${quoted} (did you mean ${JSON.stringify(hint)}?): ignored` : `unknown namespace ${quoted}: ignored`;
      c.add('warning', path, expected, found, 'key');
    }
  }
}

/**
 * A namespace that has its place in the registry but whose module is still
 * being written: it stays refused, exactly as if it were unknown.
 */
export function pendingNamespace(name: string, scopes: readonly NamespaceScope[], order: number): Namespace {
  return {
    name,
    scopes,
    order,
    policy: true,
    parse(_raw, path, c, ctx) {
      reportUnsupportedNamespace(c, name, path, ctx.scope, []);
      return undefined;
    },
  };
}
