// Shadow backends (backend `proxy.shadow: true`) get the same request as the
// live backends; their answers and failures never reach the client. A shadow
// with a comparer (portico/shadow-compare) has its answer compared with the
// live one once both have settled, off the request path (setImmediate, after
// the live answer went on). The live answer is copied, within a size budget,
// the moment it arrives: endpoint-level stages (proxy.static, flatmap, ...)
// change it in place afterwards, and the client's answer is never touched.

import { Deadline } from './abort.ts';
import type { BackendDeps } from './backend.ts';
import { BackendStatusError, GatewayError } from './errors.ts';
import { MAX_DEPTH } from '../transform/json-diff.ts';
import type { Data, Proxy, ProxyRequest, ProxyResponse, ResponseHeaders } from './types.ts';

/** One side of a comparison, as it settled. */
export interface ShadowSide {
  /** Milliseconds from the start of the request until this side settled. */
  ms: number;
  /** The backend's status: of a decoded answer, or the one it failed with. Undefined when it failed without one. */
  status: number | undefined;
  /** Response headers (the live side's only when one backend answered it). */
  headers: ResponseHeaders | undefined;
  /** The decoded body (the live side's: a copy). */
  data: Data | undefined;
  /** Approximate size of the body's JSON text (the live side's is estimated while copying). */
  bytes: number;
  /** The error code when it failed without a status (TIMEOUT, BACKEND_UNREACHABLE, BACKEND_BODY_TOO_LARGE...). */
  error: string | undefined;
  /** Its body was not kept: larger than the budget or nested too deep. */
  tooLarge?: boolean;
  /** The live answer was streamed (no-op): nothing to compare. */
  streamed?: boolean;
}

/** The client request a comparison is about (what an example shows of it). */
export interface ShadowRequestInfo {
  method: string;
  path: string;
  requestId: string;
}

/** What compares one shadow backend with the live answer (compiled by portico/shadow-compare). */
export interface ShadowComparer {
  /** Most body bytes kept of either answer; the shadow call reads no more than this. */
  readonly maxBodyBytes: number;
  /** Takes a comparison slot; false (the comparer counts it) when too many are pending. */
  acquire(): boolean;
  /** Both sides settled: compare them (called off the request path) and give the slot back. */
  settle(req: ShadowRequestInfo, live: ShadowSide, shadow: ShadowSide): void;
}

interface Shadow {
  call: Proxy;
  comparer: ShadowComparer | undefined;
}

/**
 * The shadow backends' calls: `call(deps)` compiles one backend call; a
 * compared shadow reads its body up to the comparer's limit only.
 */
export function shadowCall(comparer: ShadowComparer | undefined, deps: BackendDeps, call: (d: BackendDeps) => Proxy): Shadow {
  if (comparer === undefined) return { call: call(deps), comparer };
  return { call: call({ ...deps, maxBackendBodyBytes: Math.min(deps.maxBackendBodyBytes, comparer.maxBodyBytes) }), comparer };
}

/**
 * `next` (the live composition) with the shadows beside it. `stripMeta`: the
 * live answer carries the backend's status and headers for the comparison
 * only; they are taken off before the endpoint's own stages see it.
 */
export function withShadows(next: Proxy, shadows: Shadow[], timeoutMs: number, stripMeta: boolean): Proxy {
  const compared = shadows.filter((s) => s.comparer !== undefined);
  if (compared.length === 0) {
    return (req) => {
      for (const s of shadows) fire(s.call, req, timeoutMs, undefined, 0);
      return next(req);
    };
  }
  const budget = Math.max(...compared.map((s) => s.comparer!.maxBodyBytes));
  return (req) => {
    const started = performance.now();
    let pairs: Pair[] | undefined;
    for (const s of shadows) {
      const pair = s.comparer?.acquire() ? new Pair(s.comparer, req) : undefined;
      if (pair) (pairs ??= []).push(pair);
      fire(s.call, req, timeoutMs, pair, started);
    }
    if (pairs === undefined) return stripMeta ? next(req).then(withoutMeta) : next(req);
    const settled = pairs;
    return next(req).then(
      (r) => {
        let live: ShadowSide;
        try {
          live = liveSide(r, started, budget);
        } catch {
          // Nothing about the comparison may fail the client's answer.
          live = { ms: 0, status: 0, headers: undefined, data: undefined, bytes: 0, error: undefined, tooLarge: true };
        }
        for (const p of settled) p.live(live);
        return stripMeta ? withoutMeta(r) : r;
      },
      (err: unknown) => {
        const live = failedSide(err, started);
        for (const p of settled) p.live(live);
        throw err;
      },
    );
  };
}

function withoutMeta(r: ProxyResponse): ProxyResponse {
  if (r.meta === undefined) return r;
  const { meta: _meta, ...rest } = r;
  return rest;
}

/** One shadow call, on its own deadline (the endpoint timeout): the client leaving does not cut it short. */
function fire(call: Proxy, req: ProxyRequest, timeoutMs: number, pair: Pair | undefined, started: number): void {
  const d = new Deadline(undefined, timeoutMs);
  call({ ...req, signal: d }).then(
    (r) => {
      d.dispose();
      r.passthrough?.discard();
      pair?.shadow(answeredSide(r, started));
    },
    (err: unknown) => {
      d.dispose();
      pair?.shadow(failedSide(err, started));
    },
  );
}

/** Waits for both sides, then hands them to the comparer off the request path. */
class Pair {
  readonly #comparer: ShadowComparer;
  readonly #req: ShadowRequestInfo;
  #live: ShadowSide | undefined;
  #shadow: ShadowSide | undefined;

  constructor(comparer: ShadowComparer, req: ProxyRequest) {
    this.#comparer = comparer;
    this.#req = { method: req.method, path: req.path, requestId: req.requestId };
  }

  live(side: ShadowSide): void {
    this.#live = side;
    if (this.#shadow !== undefined) this.#done();
  }

  shadow(side: ShadowSide): void {
    this.#shadow = side;
    if (this.#live !== undefined) this.#done();
  }

  #done(): void {
    const live = this.#live!;
    const shadow = this.#shadow!;
    setImmediate(() => this.#comparer.settle(this.#req, live, shadow));
  }
}

function answeredSide(r: ProxyResponse, started: number): ShadowSide {
  return { ms: performance.now() - started, status: r.meta?.status ?? 200, headers: r.meta?.headers, data: r.data, bytes: r.meta?.bodyBytes ?? 0, error: undefined };
}

/** The live answer as the backends composed it: copied within `budget`, as it will be changed later. */
function liveSide(r: ProxyResponse, started: number, budget: number): ShadowSide {
  const side = answeredSide(r, started);
  if (r.passthrough !== undefined) return { ...side, data: undefined, streamed: true };
  if (side.bytes > budget) return { ...side, data: undefined, tooLarge: true };
  const b = { left: budget };
  const copy = copyJson(r.data, b, 0);
  if (copy === OVER) return { ...side, data: undefined, tooLarge: true };
  return { ...side, data: copy as Data, bytes: Math.max(side.bytes, budget - b.left) };
}

function failedSide(err: unknown, started: number): ShadowSide {
  const ms = performance.now() - started;
  // A status the backend answered with: BackendStatusError, or return_error_code's GatewayError.
  if (err instanceof BackendStatusError) return { ms, status: err.backendStatus, headers: undefined, data: undefined, bytes: 0, error: undefined };
  if (err instanceof GatewayError && err.code === 'BACKEND_STATUS') return { ms, status: err.status, headers: undefined, data: undefined, bytes: 0, error: undefined };
  const code = err instanceof GatewayError ? err.code : 'ERROR';
  return { ms, status: undefined, headers: undefined, data: undefined, bytes: 0, error: code };
}

const OVER: unique symbol = Symbol('over budget');

/**
 * A deep copy of decoded data, counting the approximate size of its JSON text
 * against `b.left`; OVER as soon as the budget or MAX_DEPTH (the comparison's) is passed.
 * (structuredClone copies without a budget or a depth bound.)
 */
function copyJson(v: unknown, b: { left: number }, depth: number): unknown {
  if (typeof v === 'string') {
    b.left -= v.length + 3;
    return b.left < 0 ? OVER : v;
  }
  if (typeof v !== 'object' || v === null) {
    b.left -= 8;
    return b.left < 0 ? OVER : v;
  }
  if (depth >= MAX_DEPTH) return OVER;
  if (Array.isArray(v)) {
    const out = new Array(v.length);
    for (let i = 0; i < v.length; i++) {
      const c = copyJson(v[i], b, depth + 1);
      if (c === OVER) return OVER;
      out[i] = c;
    }
    b.left -= 2;
    return out;
  }
  // Values a decoder may give that are not plain JSON (a YAML date): kept as they are.
  if (Object.getPrototypeOf(v) !== Object.prototype && Object.getPrototypeOf(v) !== null) return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    b.left -= k.length + 4;
    const c = copyJson((v as Record<string, unknown>)[k], b, depth + 1);
    if (c === OVER) return OVER;
    // A "__proto__" key of parsed JSON is an own property: copied as one, never as the prototype.
    if (k === '__proto__') Object.defineProperty(out, k, { value: c, enumerable: true, writable: true, configurable: true });
    else out[k] = c;
  }
  return out;
}
