// The request handler: refuse what a gateway must refuse, route, run the
// endpoint pipeline, render. It reads the current Plan once per request, so a
// swapped plan never changes a request half-way.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { EarlyAnswer, Guard } from '../namespaces/namespace.ts';
import type { CompiledEndpoint, Plan } from '../plan/plan.ts';
import { Deadline, type CancelSignal } from '../proxy/abort.ts';
import { asGatewayError, GatewayError, PolicyError, timeoutError } from '../proxy/errors.ts';
import { requestIdOf } from '../proxy/headers.ts';
import { movedPermanentlyHtml } from '../proxy/redirect.ts';
import type { ProxyRequest } from '../proxy/types.ts';
import { log, throttledLog } from '../telemetry/log.ts';
import { NO_ENDPOINT, policyRejections, requestDuration, requestsInFlight, requestsTotal } from '../telemetry/metrics.ts';
import type { RequestTrace } from '../telemetry/tracing.ts';
import { serveDebug, serveEcho, serveHealth, type HealthInfo } from './builtins.ts';
import { hasBody, readRequestBody } from './request-body.ts';
import { COMPLETED, sendError, sendJson, sendResult, sendText } from './respond.ts';
import { parseTarget, type Target } from './target.ts';

export interface PlanHolder {
  readonly plan: Plan;
}

export interface HandlerOptions {
  health: HealthInfo;
  /** Whether /__ready answers 200 (a real config applied, not draining) or 503. */
  ready: () => boolean;
  /** -d on the command line: /__debug even when the config does not enable it. */
  forceDebug: boolean;
}

export function createHandler(holder: PlanHolder, opts: HandlerOptions) {
  return function handle(req: IncomingMessage, res: ServerResponse): void {
    const plan = holder.plan;
    plan.onResponse?.(res);
    if (plan.accessLog) logAccess(plan, req, res);
    if (plan.requestMetrics) countRequest(req, res as MeasuredResponse);
    const refusal = refuse(req);
    if (refusal) return badRequest(res, refusal);

    const target = parseTarget(req.url ?? '/', req.headers.host, plan.config.router.removeExtraSlash);
    if (!target.ok) return badRequest(res, target.message, target.status);
    const trace = plan.tracing?.startRequest(req, res, target.path);
    if (plan.guard === undefined) return route(plan, opts, req, res, target, undefined, trace);
    // Service-level policies run for every request, before routing (as KrakenD's global middlewares do).
    const preq = newRequest(plan, req, target.path, target.rawQuery, NEVER, trace);
    guarded(plan.guard, preq, req, res, undefined, () => route(plan, opts, req, res, target, preq, trace));
  };
}

type RoutedTarget = Extract<Target, { ok: true }>;

function route(
  plan: Plan,
  opts: HandlerOptions,
  req: IncomingMessage,
  res: ServerResponse,
  target: RoutedTarget,
  preq: ProxyRequest | undefined,
  trace: RequestTrace | undefined,
): void {
  const cfg = plan.config;
  const { path, rawQuery } = target;
  const method = req.method ?? 'GET';

  if (!cfg.router.disableHealth && path === cfg.router.healthPath && method === 'GET') return serveHealth(res, opts.health);
  if (path.startsWith('/__')) {
    if (path === '/__ready' && (method === 'GET' || method === 'HEAD')) {
      return opts.ready() ? sendJson(res, 200, { ready: true }) : sendJson(res, 503, { ready: false });
    }
    if ((cfg.debugEndpoint || opts.forceDebug) && (path === '/__debug' || path.startsWith('/__debug/'))) {
      return void withBody(req, res, cfg.maxBodyBytes, (body) => serveDebug(req, res, body));
    }
    if (cfg.echoEndpoint && (path === '/__echo' || path.startsWith('/__echo/'))) {
      return void withBody(req, res, cfg.maxBodyBytes, (body) => serveEcho(req, res, path, rawQuery, body));
    }
  }

  const found = plan.router.find(method, target.segments, target.rawSegments);
  switch (found.kind) {
    case 'found':
      return void serveEndpoint(plan, found.value, found.params, req, res, preq ?? newRequest(plan, req, path, rawQuery, NEVER, trace));
    case 'redirect': {
      const location = found.path + (rawQuery ? '?' + rawQuery : '');
      const status = method === 'GET' ? 301 : 307;
      res.setHeader('location', location);
      if (method === 'GET') return sendText(res, status, movedPermanentlyHtml(location), undefined, 'text/html; charset=utf-8');
      res.writeHead(status, { 'content-length': 0 });
      return void res.end();
    }
    case 'method-not-allowed':
      if (method === 'OPTIONS' && cfg.router.autoOptions) {
        res.writeHead(200, { allow: [...found.allow, 'OPTIONS'].join(', '), 'content-length': 0 });
        return void res.end();
      }
      return notAllowed(res, cfg.router.errorBody?.methodNotAllowed, found.allow);
    case 'not-found':
      return notFound(res, cfg.router.errorBody?.notFound);
  }
}

/** The signal of a request before it reaches an endpoint (service-level guards): nothing aborts it. */
const NEVER: CancelSignal = { aborted: false, reason: undefined, onAbort() {}, offAbort() {} };

function newRequest(plan: Plan, req: IncomingMessage, path: string, rawQuery: string, signal: CancelSignal, trace: RequestTrace | undefined): ProxyRequest {
  const peer = req.socket.remoteAddress ?? '';
  return {
    method: req.method ?? 'GET',
    path,
    params: NO_PARAMS,
    rawQuery,
    query: undefined,
    headers: req.headers,
    body: undefined,
    forwardedFor: plan.addressing.forwardedFor(peer, req.headers),
    host: req.headers.host ?? '',
    requestId: requestIdOf(req.headers['x-request-id']),
    peer,
    secure: (req.socket as TLSSocket).encrypted === true,
    signal,
    extraParams: undefined,
    claims: undefined,
    responseHeaders: undefined,
    upstreamHeaders: undefined,
    trace,
  };
}

const NO_PARAMS: Record<string, string> = Object.freeze({}) as Record<string, string>;

/**
 * Run a guard: go on with `then` when it lets the request through, answer
 * when it answers, render the error when it throws. Headers the guard added
 * are set on the response in every case.
 */
function guarded(guard: Guard, preq: ProxyRequest, req: IncomingMessage, res: ServerResponse, ep: CompiledEndpoint | undefined, then: () => void): void {
  let outcome: ReturnType<Guard>;
  try {
    outcome = guard(preq);
  } catch (err) {
    return refused(req, res, preq, ep, err);
  }
  if (outcome === undefined) {
    applyPolicyHeaders(res, preq);
    return then();
  }
  if (outcome instanceof Promise) {
    outcome.then(
      (a) => {
        if (a === undefined) {
          applyPolicyHeaders(res, preq);
          then();
        } else answer(req, res, preq, a);
      },
      (err: unknown) => refused(req, res, preq, ep, err),
    );
    return;
  }
  answer(req, res, preq, outcome);
}

/** The guard answered the request itself (a CORS preflight, an SSL redirect). */
function answer(req: IncomingMessage, res: ServerResponse, preq: ProxyRequest, a: EarlyAnswer): void {
  applyPolicyHeaders(res, preq);
  closeIfUnread(req, res);
  if (a.headers) for (let i = 0; i < a.headers.length; i += 2) res.appendHeader(a.headers[i] as string, a.headers[i + 1]);
  const body = a.body ?? '';
  if (body !== '') res.setHeader('content-type', a.contentType ?? 'text/plain; charset=utf-8');
  // RFC 9110 8.6: no Content-Length on a 204 (or a 304).
  if (a.status !== 204 && a.status !== 304) res.setHeader('content-length', Buffer.byteLength(body));
  res.writeHead(a.status);
  res.end(body);
}

function refused(req: IncomingMessage, res: ServerResponse, preq: ProxyRequest, ep: CompiledEndpoint | undefined, err: unknown): void {
  applyPolicyHeaders(res, preq);
  closeIfUnread(req, res);
  const e = asGatewayError(err);
  const fields = { code: e.code, status: e.status, path: preq.path, request_id: preq.requestId, ...(ep ? { endpoint: ep.config.endpoint } : {}), ...(e instanceof PolicyError ? { namespace: e.namespace } : {}) };
  // A policy refusing a client is not a gateway failure, whatever its status: info, and throttled.
  // One flooding code never hides the refusals of another: the budget is per code.
  if (e instanceof PolicyError) {
    throttledLog(e.code, 'info', `request refused: ${e.message}`, fields);
    policyRejections.inc({ namespace: e.namespace, status: String(e.status), code: e.code });
  } else log('error', e.message, fields);
  sendError(res, e, ep?.returnErrorMsg ?? false);
}

/** A request answered before its body was read: close the connection rather than read and discard the body. */
function closeIfUnread(req: IncomingMessage, res: ServerResponse): void {
  if (hasBody(req) && !req.readableEnded) res.setHeader('connection', 'close');
}

const kApplied = Symbol('portico.appliedHeaders');
type HeaderTracked = ProxyRequest & { [kApplied]?: number };

/** Set the headers policies added so far (each once) on the response. */
function applyPolicyHeaders(res: ServerResponse, preq: HeaderTracked): void {
  const list = preq.responseHeaders;
  if (!list) return;
  const from = preq[kApplied] ?? 0;
  for (let i = from; i < list.length; i += 2) res.appendHeader(list[i] as string, list[i + 1]);
  preq[kApplied] = list.length;
}

const kStarted = Symbol('portico.started');
const kEndpoint = Symbol('portico.endpoint');
type MeasuredResponse = ServerResponse & { [kStarted]: number; [kEndpoint]: string };

/** Request metrics: counted in flight now, recorded when the response closes (one shared listener, no closure). */
function countRequest(req: IncomingMessage, res: MeasuredResponse): void {
  res[kStarted] = performance.now();
  res[kEndpoint] = NO_ENDPOINT;
  requestsInFlight.inc();
  res.on('close', recordRequest);
}

function recordRequest(this: MeasuredResponse): void {
  requestsInFlight.dec();
  const labels = { endpoint: this[kEndpoint], method: this.req.method ?? 'GET', status: String(this.statusCode) };
  requestsTotal.inc(labels);
  requestDuration.observe(labels, (performance.now() - this[kStarted]) / 1000);
}

const kDeadline = Symbol('portico.deadline');
type TrackedResponse = ServerResponse & { [kDeadline]?: Deadline };

/** A client that goes away cancels its backend calls (one shared listener, no closure per request). */
function onResponseClose(this: TrackedResponse): void {
  if (!this.writableFinished) this[kDeadline]?.abort(new GatewayError(499, 'client closed the connection', { code: 'CLIENT_CLOSED' }));
}

async function serveEndpoint(
  plan: Plan,
  ep: CompiledEndpoint,
  params: Record<string, string>,
  req: IncomingMessage,
  res: TrackedResponse,
  preq: ProxyRequest,
): Promise<void> {
  const usage = plan.usage;
  usage.active++;
  (res as MeasuredResponse)[kEndpoint] = ep.config.endpoint;
  if (preq.trace !== undefined) plan.tracing!.routed(preq.trace, preq.method, ep.config.endpoint, preq.requestId);
  const d = new Deadline(undefined, ep.timeoutMs, timeoutError);
  res[kDeadline] = d;
  res.on('close', onResponseClose);
  preq.params = params;
  preq.signal = d;
  res.setHeader('x-request-id', preq.requestId);
  try {
    if (ep.guard) {
      // Endpoint policies run before the body is read: a refused request costs no body read and no backend call.
      const g = ep.guard(preq);
      const a = g instanceof Promise ? await g : g;
      if (a !== undefined) return answer(req, res, preq, a);
      applyPolicyHeaders(res, preq);
    }
    if (hasBody(req)) preq.body = await readRequestBody(req, plan.config.maxBodyBytes);
    const result = await ep.proxy(preq);
    if (result.errors) logErrors(ep, result.errors, preq.requestId);
    // Headers middlewares added (modifier/lua-* post scripts) go on the answer too.
    applyPolicyHeaders(res, preq);
    sendResult(res, ep, result, req.headers.accept);
  } catch (err) {
    const e = asGatewayError(err);
    if (e.status === 413) res.setHeader('connection', 'close');
    if (e instanceof PolicyError) return refused(req, res, preq, ep, e);
    applyPolicyHeaders(res, preq);
    if (e.status >= 500) log('error', e.message, { endpoint: ep.config.endpoint, code: e.code, request_id: preq.requestId });
    sendError(res, e, ep.returnErrorMsg || e.status === 413);
  } finally {
    d.dispose();
    if (--usage.active === 0 && usage.onIdle) usage.onIdle();
  }
}

function logAccess(plan: Plan, req: IncomingMessage, res: ServerResponse): void {
  const started = performance.now();
  const log = plan.accessLog!;
  res.once('finish', () => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const client = plan.addressing.clientIp(req.socket.remoteAddress ?? '', req.headers);
    const id = res.getHeader('x-request-id');
    log.record(req.method ?? '', q < 0 ? url : url.slice(0, q), res.statusCode, started, client, typeof id === 'string' ? id : undefined);
  });
}

function logErrors(ep: CompiledEndpoint, errors: Error[], requestId: string): void {
  for (const e of errors) log('warn', e.message, { endpoint: ep.config.endpoint, partial: true, code: e instanceof GatewayError ? e.code : undefined, request_id: requestId });
}

async function withBody(req: IncomingMessage, res: ServerResponse, limit: number, then: (body: Buffer | undefined) => void): Promise<void> {
  try {
    then(await readRequestBody(req, limit));
  } catch (err) {
    const e = asGatewayError(err);
    res.setHeader('connection', 'close');
    sendText(res, e.status, e.message);
  }
}

/** What node:http lets through but a gateway must not: returns the reason, or undefined. */
function refuse(req: IncomingMessage): string | undefined {
  const raw = req.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 4 && raw[i].toLowerCase() === 'host' && ++hosts > 1) return 'more than one Host header';
  }
  if (req.httpVersionMajor === 1 && req.httpVersionMinor === 0 && req.headers['transfer-encoding'] !== undefined) {
    return 'Transfer-Encoding is not allowed in HTTP/1.0';
  }
  return undefined;
}

function badRequest(res: ServerResponse, message: string, status = 400): void {
  res.setHeader('connection', 'close');
  sendText(res, status, `${status} ${message}`);
}

function notFound(res: ServerResponse, custom: unknown): void {
  if (custom !== undefined) return sendJson(res, 404, custom);
  sendText(res, 404, '404 page not found', undefined, 'text/plain');
}

function notAllowed(res: ServerResponse, custom: unknown, allow: string[]): void {
  // KrakenD's 405 carries its completed header set to false; Portico's does too.
  const headers = { allow: allow.join(', '), [COMPLETED]: 'false' };
  if (custom !== undefined) return sendJson(res, 405, custom, headers);
  sendText(res, 405, '405 method not allowed', headers, 'text/plain');
}
