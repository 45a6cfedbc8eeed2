// The namespace registry: every namespace Portico implements, and the one
// place that decides the order they run in. `order` ranges (lower = guard
// runs earlier, middleware wraps further out):
//
//     0  core namespaces the gateway reads directly (router, portico/server, backend/http;
//        backend/graphql and modifier/martian, which act inside the backend call at HTTP level;
//        the backend kinds with a transport: backend/amqp/*, backend/pubsub/*, backend/lambda;
//        portico/traffic-split, which picks the side of the backends that answers;
//        portico/shadow-compare, which the shadow call reads)
//    50  CORS: outermost, as KrakenD wraps its whole router in it (a preflight is
//        answered before any other rule; refusals by later policies carry CORS headers)
//   100  host and transport rules (security/http: allowed hosts, SSL redirect, headers)
//   300  bot detection
//   400  authentication and authorization (API keys, basic auth, JWT), token signing
//   500  traffic policies: endpoint rate limits (after authentication, so limits
//        may key on who the client is); at backend level the HTTP cache (505: a
//        hit spends no backend token and passes an open breaker), the backend
//        rate limit (510), the circuit breaker (520: it counts only real calls)
//   600  scripts and validation after the body is read, in KrakenD's order (its proxy
//        stack wraps lua around cel around jsonschema): modifier/lua-endpoint (600),
//        lua-proxy (602), validation/cel (610), validation/json-schema (615); at backend
//        level, inside the cache, limit and breaker, lua-backend (605) around cel (610).
//        modifier/jmespath (601, both levels) wraps lua-proxy/lua-backend and cel: KrakenD
//        runs the Lua pre and post scripts before it, so the expression shapes the answer
//        last (and cel's resp_data sees the data before it)
//   900  proxy: static data and flatmap around the composed backends
//
// At backend level middlewares wrap the single backend call in the same order.

import type { IssueCollector } from '../config/issues.ts';
import type { JsonPath } from '../config/json-path.ts';
import { authApiKeys } from './auth-api-keys.ts';
import { authBasic } from './auth-basic.ts';
import { authClientCredentials } from './auth-client-credentials.ts';
import { authSigner } from './auth-signer.ts';
import { authValidator } from './auth-validator.ts';
import { backendAmqpConsumer, backendAmqpProducer } from './backend-amqp.ts';
import { backendGraphql } from './backend-graphql.ts';
import { backendHttp } from './backend-http.ts';
import { backendPubsubPublisher, backendPubsubSubscriber } from './backend-pubsub.ts';
import { backendLambda } from './backend-lambda.ts';
import { reportUnsupportedNamespace } from './fail-closed.ts';
import type { Namespace, NamespaceScope, NamespaceUse, ParseContext } from './namespace.ts';
import { porticoServer } from './portico-server.ts';
import { porticoShadowCompare } from './portico-shadow-compare.ts';
import { porticoTrafficSplit } from './portico-traffic-split.ts';
import { proxy } from './proxy.ts';
import { qosCircuitBreaker } from './qos-circuit-breaker.ts';
import { qosCircuitBreakerHttp } from './qos-circuit-breaker-http.ts';
import { qosHttpCache } from './qos-http-cache.ts';
import { qosRatelimitProxy } from './qos-ratelimit-proxy.ts';
import { qosRatelimitRouter } from './qos-ratelimit-router.ts';
import { qosRatelimitRouterRedis, qosRatelimitServiceRedis } from './qos-ratelimit-router-redis.ts';
import { qosRatelimitService } from './qos-ratelimit-service.ts';
import { qosRatelimitTiered } from './qos-ratelimit-tiered.ts';
import { redis } from './redis.ts';
import { router } from './router.ts';
import { securityBotDetector } from './security-bot-detector.ts';
import { securityCors } from './security-cors.ts';
import { securityHttp } from './security-http.ts';
import { telemetryLogging } from './telemetry-logging.ts';
import { modifierJmespath } from './modifier-jmespath.ts';
import { modifierLuaBackend, modifierLuaEndpoint, modifierLuaProxy } from './modifier-lua.ts';
import { modifierMartian } from './modifier-martian.ts';
import { modifierResponseHeaders } from './modifier-response-headers.ts';
import { telemetryMetrics } from './telemetry-metrics.ts';
import { telemetryOpentelemetry } from './telemetry-opentelemetry.ts';
import { validationCel } from './validation-cel.ts';
import { validationJsonSchema } from './validation-json-schema.ts';

export const NAMESPACES: readonly Namespace[] = [
  router,
  porticoServer,
  porticoShadowCompare,
  porticoTrafficSplit,
  proxy,
  backendHttp,
  backendGraphql,
  backendPubsubPublisher,
  backendPubsubSubscriber,
  backendAmqpConsumer,
  backendAmqpProducer,
  backendLambda,
  modifierMartian,
  telemetryOpentelemetry,
  telemetryMetrics,
  telemetryLogging,
  securityHttp,
  securityCors,
  securityBotDetector,
  authClientCredentials,
  authApiKeys,
  authBasic,
  authValidator,
  authSigner,
  qosRatelimitRouter,
  qosRatelimitTiered,
  redis,
  qosRatelimitService,
  qosRatelimitServiceRedis,
  qosRatelimitRouterRedis,
  qosHttpCache,
  qosRatelimitProxy,
  qosCircuitBreaker,
  qosCircuitBreakerHttp,
  validationJsonSchema,
  validationCel,
  modifierLuaEndpoint,
  modifierLuaProxy,
  modifierLuaBackend,
  modifierJmespath,
  modifierResponseHeaders,
];

const BY_NAME = new Map(NAMESPACES.map((ns) => [ns.name, ns]));

/** The module implementing `name`, if this build has one. */
export function findNamespace(name: string): Namespace | undefined {
  return BY_NAME.get(name);
}

/** The backend transport a backend's namespaces name (AMQP, Lambda, pub/sub), if any: see Namespace.transport. */
export function transportUse(uses: readonly NamespaceUse[], resolve: (name: string) => Namespace = namespaceNamed): NamespaceUse | undefined {
  return uses.find((u) => resolve(u.name).transport !== undefined);
}

/** The module of a parsed namespace (uses only name namespaces of this registry). */
export function namespaceNamed(name: string): Namespace {
  const ns = BY_NAME.get(name);
  if (!ns) throw new Error(`no namespace module named ${JSON.stringify(name)}`);
  return ns;
}

const IMPLEMENTED: Readonly<Record<NamespaceScope, readonly string[]>> = {
  service: NAMESPACES.filter((n) => n.scopes.includes('service')).map((n) => n.name),
  endpoint: NAMESPACES.filter((n) => n.scopes.includes('endpoint')).map((n) => n.name),
  backend: NAMESPACES.filter((n) => n.scopes.includes('backend')).map((n) => n.name),
};

/**
 * Parse every namespace of one extra_config object. Implemented ones check
 * their own fields; the rest fail closed (fail-closed.ts). Returns the uses in
 * stack order.
 */
export function parseNamespaces(
  c: IssueCollector,
  extra: Record<string, unknown>,
  path: JsonPath,
  ctx: ParseContext,
  onParsed?: (name: string, options: unknown) => void,
): NamespaceUse[] {
  const uses: { use: NamespaceUse; order: number }[] = [];
  let transport: string | undefined;
  // In stack order, so a namespace can read the ones it builds on (redis before the limits that use its pools).
  const names = Object.keys(extra).sort((a, b) => (BY_NAME.get(a)?.order ?? Infinity) - (BY_NAME.get(b)?.order ?? Infinity));
  for (const name of names) {
    const at = [...path, name];
    const ns = BY_NAME.get(name);
    if (!ns) {
      reportUnsupportedNamespace(c, name, at, ctx.scope, IMPLEMENTED[ctx.scope]);
      continue;
    }
    if (!ns.scopes.includes(ctx.scope)) {
      reportUnsupportedNamespace(c, name, at, ctx.scope, IMPLEMENTED[ctx.scope], { scopes: ns.scopes, policy: ns.policy, transport: ns.transport !== undefined });
      continue;
    }
    if (ns.transport !== undefined) {
      if (transport !== undefined) {
        c.error(at, `one backend kind per backend (this backend is already "${transport}")`, `"${name}" as well`);
        continue;
      }
      transport = name;
    }
    const options = ns.parse(extra[name], at, c, ctx);
    if (options === undefined) continue;
    uses.push({ use: { name, options }, order: ns.order });
    onParsed?.(name, options);
  }
  return uses.sort((a, b) => a.order - b.order).map((u) => u.use);
}
