// `portico/traffic-split` (endpoint and backend): percentage rollouts. The
// backends marked {"side": "candidate"} form the candidate side, the others
// the stable side; each side is composed as an endpoint's backends are
// (proxy/endpoint.ts hands us `compose`), and each request goes to one side:
// `percent` of them to the candidate, sticky by a header, a cookie, a
// verified JWT claim or the client IP when asked. Per-side metrics, and an
// optional rollback guard that takes the candidate out (share 0) when its
// error rate or p99 is worse than the stable side's by a margin over a window,
// until a configuration changes the split. The guard lives in the policy state
// registry (kept across reloads that leave the split alone) and judges the
// traffic of its own process.

import sketches from '@datadog/sketches-js';
import { DURATION_EXPECTED, parseDuration } from '../config/duration.ts';
import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import type { IssueCollector } from '../config/issues.ts';
import { isPlainObject, type JsonPath } from '../config/json-path.ts';
import { SEQUENTIAL_PLACEHOLDER, urlPatternPlaceholders } from '../config/routes.ts';
import type { BackendConfig, EndpointConfig } from '../config/types.ts';
import { claimText, lookupClaim } from '../proxy/claims.ts';
import { GatewayError } from '../proxy/errors.ts';
import type { Proxy, ProxyRequest, ProxyResponse } from '../proxy/types.ts';
import { log } from '../telemetry/log.ts';
import { setGuardSource, splitDuration, splitRequests } from '../telemetry/traffic-split-metrics.ts';
import { cookieValue, headerValue, sha256, sha256Hex } from './credentials.ts';
import { optionsOf, type CompileContext, type Namespace, type ParseContext } from './namespace.ts';
import { stateKey, type HealthReporter } from './state.ts';

const { DDSketch } = sketches;
type Sketch = InstanceType<typeof DDSketch>;

const NAME = 'portico/traffic-split';

export type StickyKind = 'header' | 'cookie' | 'claim' | 'client_ip';

export interface StickyOptions {
  kind: StickyKind;
  /** Header name (lower-case), cookie name or claim name; '' for client_ip. */
  name: string;
  /** A request without the key: the stable side, or a random pick. */
  missingKey: 'stable' | 'random';
  /** What the key is hashed with: sticky.group, else "METHOD /path" of the endpoint. */
  group: string | undefined;
}

export interface RollbackOptions {
  windowMs: number;
  minRequests: number;
  /** Percentage points the candidate's error rate may exceed the stable side's by. */
  errorRateMargin: number | undefined;
  /** Milliseconds the candidate's p99 may exceed the stable side's by. */
  p99MarginMs: number | undefined;
}

/** At endpoint level. */
export interface SplitOptions {
  percent: number;
  sticky: StickyOptions | undefined;
  rollback: RollbackOptions | undefined;
}

/** At backend level. */
export interface SideOptions {
  side: 'candidate' | 'stable';
}

export type TrafficSplitOptions = SplitOptions | SideOptions;

/** Keys are hashed into this many buckets: `percent` has a resolution of 0.01. */
export const BUCKETS = 10_000;
const DEFAULT_WINDOW_MS = 30_000;
const MIN_WINDOW_MS = 1_000;
const DEFAULT_MIN_REQUESTS = 20;
/** The window is kept as this many slots; the oldest slot drops out as time goes on. */
const SLOTS = 10;
const STICKY_KINDS: readonly StickyKind[] = ['header', 'cookie', 'claim', 'client_ip'];

const SPLIT_RULES: ObjectRules = {
  percent: { kind: 'number' },
  sticky: 'object',
  rollback: 'object',
};

const STICKY_RULES: ObjectRules = {
  header: 'string',
  cookie: 'string',
  claim: 'string',
  client_ip: 'boolean',
  missing_key: { kind: 'string', oneOf: ['stable', 'random'] },
  group: 'string',
};

const ROLLBACK_RULES: ObjectRules = {
  window: 'duration',
  min_requests: { kind: 'integer', min: 1 },
  error_rate_margin: { kind: 'number' },
  p99_margin: 'duration',
};

const SIDE_RULES: ObjectRules = {
  side: { kind: 'string', oneOf: ['candidate', 'stable'] },
};

const CANDIDATE_MARK = `{"${NAME}": {"side": "candidate"}}`;

export const porticoTrafficSplit: Namespace<TrafficSplitOptions> = {
  name: NAME,
  scopes: ['endpoint', 'backend'],
  // Read by the core: plan/compile.ts hands compileTrafficSplit to the endpoint composition.
  order: 0,
  // Not a policy family (registry.test.ts); a split misplaced at service level still fails
  // the config through its candidate backends, which need it on their endpoint.
  policy: false,
  parse(raw, path, c, ctx) {
    return ctx.scope === 'backend' ? parseSide(raw, path, c, ctx) : parseSplit(raw, path, c, ctx);
  },
};

function parseSide(raw: unknown, path: JsonPath, c: IssueCollector, ctx: ParseContext): SideOptions | undefined {
  if (!expectObject(c, raw, path, `an object such as {"side": "candidate"}`)) return undefined;
  const valid = checkFields(c, raw, path, SIDE_RULES, `the backend "${NAME}" namespace`);
  if (!('side' in raw)) c.missing([...path, 'side'], '"candidate" (or "stable")');
  if (!valid.has('side')) return undefined;
  const side = raw.side as SideOptions['side'];
  const extra = ctx.backend?.extra_config;
  if (isPlainObject(extra) && isPlainObject(extra.proxy) && extra.proxy.shadow === true) {
    c.error(path, 'no side on a shadow backend (a shadow runs beside whichever side answers, and its answer is discarded)', `"side": "${side}" on a backend with "proxy": {"shadow": true}`);
    return undefined;
  }
  const endpointExtra = ctx.endpoint?.extra_config;
  if (!isPlainObject(endpointExtra) || !(NAME in endpointExtra)) {
    const expected = `"${NAME}" on the endpoint as well (it says which share of the requests the candidate side gets)`;
    if (side === 'candidate') c.error(path, expected, 'a candidate backend on an endpoint without a split');
    else c.warning(path, expected, '"side": "stable" on an endpoint without a split (it has no effect)');
  }
  return { side };
}

function parseSplit(raw: unknown, path: JsonPath, c: IssueCollector, ctx: ParseContext): SplitOptions | undefined {
  if (!expectObject(c, raw, path, 'an object such as {"percent": 10, "sticky": {"header": "X-User-Id"}}')) return undefined;
  const valid = checkFields(c, raw, path, SPLIT_RULES, `the "${NAME}" namespace`);
  let ok = true;
  if (!('percent' in raw)) {
    c.missing([...path, 'percent'], 'the share of requests for the candidate side, a number from 0 to 100');
    ok = false;
  } else if (!valid.has('percent')) ok = false;
  else if ((raw.percent as number) < 0 || (raw.percent as number) > 100) {
    c.invalid([...path, 'percent'], 'a number from 0 to 100 (the share of requests for the candidate side)', raw.percent);
    ok = false;
  }
  if ('sticky' in raw && !valid.has('sticky')) ok = false;
  if ('rollback' in raw && !valid.has('rollback')) ok = false;
  const sticky = valid.has('sticky') ? parseSticky(raw.sticky as Record<string, unknown>, [...path, 'sticky'], c, ctx) : undefined;
  const rollback = valid.has('rollback') ? parseRollback(raw.rollback as Record<string, unknown>, [...path, 'rollback'], c) : undefined;
  if (valid.has('sticky') && sticky === undefined) ok = false;
  if (valid.has('rollback') && rollback === undefined) ok = false;
  if (!checkSides(c, path, ctx)) ok = false;
  return ok ? { percent: raw.percent as number, sticky, rollback } : undefined;
}

function parseSticky(raw: Record<string, unknown>, path: JsonPath, c: IssueCollector, ctx: ParseContext): StickyOptions | undefined {
  const valid = checkFields(c, raw, path, STICKY_RULES, `"${NAME}".sticky`);
  const kinds = STICKY_KINDS.filter((k) => k in raw);
  if (kinds.length !== 1) {
    c.error(path, `exactly one sticky key: "header", "cookie", "claim" or "client_ip"`, kinds.length === 0 ? c.found(path, raw) : `${kinds.map((k) => `"${k}"`).join(' and ')} together`);
    return undefined;
  }
  const kind = kinds[0];
  const at = [...path, kind];
  if (!valid.has(kind)) return undefined;
  let ok = valid.size === Object.keys(raw).filter((k) => Object.hasOwn(STICKY_RULES, k)).length;
  let name = '';
  if (kind === 'client_ip') {
    if (raw.client_ip !== true) {
      c.invalid(at, 'true (the client IP as router.forwarded_by_client_ip and trusted_proxies give it)', raw.client_ip);
      ok = false;
    }
  } else {
    name = (raw[kind] as string).trim();
    if (name === '') {
      c.invalid(at, `the ${kind} name to stick by`, raw[kind]);
      ok = false;
    }
    if (kind === 'header') name = name.toLowerCase();
    if (kind === 'claim') {
      const extra = ctx.endpoint?.extra_config;
      if (!isPlainObject(extra) || !('auth/validator' in extra)) {
        c.error(at, '"auth/validator" on this endpoint (only verified token claims are used)', `a claim without "auth/validator": every request would go to the stable side`);
        ok = false;
      }
    }
  }
  if (valid.has('group') && (raw.group as string) === '') {
    c.invalid([...path, 'group'], 'a non-empty name shared by the endpoints that should put a key on the same side', raw.group);
    ok = false;
  }
  if (!ok) return undefined;
  return {
    kind,
    name,
    missingKey: raw.missing_key === 'random' ? 'random' : 'stable',
    group: valid.has('group') ? (raw.group as string) : undefined,
  };
}

function parseRollback(raw: Record<string, unknown>, path: JsonPath, c: IssueCollector): RollbackOptions | undefined {
  const valid = checkFields(c, raw, path, ROLLBACK_RULES, `"${NAME}".rollback`);
  let ok = valid.size === Object.keys(raw).filter((k) => Object.hasOwn(ROLLBACK_RULES, k)).length;
  const windowMs = valid.has('window') ? parseDuration(raw.window as string)! : DEFAULT_WINDOW_MS;
  if (valid.has('window') && windowMs < MIN_WINDOW_MS) {
    c.invalid([...path, 'window'], `${DURATION_EXPECTED}, at least "1s"`, raw.window);
    ok = false;
  }
  const margin = raw.error_rate_margin as number;
  if (valid.has('error_rate_margin') && (margin < 0 || margin > 100)) {
    c.invalid([...path, 'error_rate_margin'], 'percentage points from 0 to 100 (the candidate error rate may exceed the stable one by this much)', margin);
    ok = false;
  }
  if (!('error_rate_margin' in raw) && !('p99_margin' in raw)) {
    c.error(path, '"error_rate_margin", "p99_margin" or both (what makes the guard roll the candidate back)', c.found(path, raw));
    ok = false;
  }
  if (!ok) return undefined;
  return {
    windowMs,
    minRequests: valid.has('min_requests') ? (raw.min_requests as number) : DEFAULT_MIN_REQUESTS,
    errorRateMargin: valid.has('error_rate_margin') ? margin : undefined,
    p99MarginMs: valid.has('p99_margin') ? parseDuration(raw.p99_margin as string) : undefined,
  };
}

type RawSide = 'stable' | 'candidate' | 'shadow';

/** A backend as written: which side it is on (a shadow is on neither). */
function rawSide(backend: unknown): RawSide {
  const extra = isPlainObject(backend) ? backend.extra_config : undefined;
  if (!isPlainObject(extra)) return 'stable';
  if (isPlainObject(extra.proxy) && extra.proxy.shadow === true) return 'shadow';
  const mark = extra[NAME];
  return isPlainObject(mark) && mark.side === 'candidate' ? 'candidate' : 'stable';
}

/** The endpoint's backends as written: both sides present, one backend each under no-op, {respN_} within a side. */
function checkSides(c: IssueCollector, path: JsonPath, ctx: ParseContext): boolean {
  const backends = Array.isArray(ctx.endpoint?.backend) ? (ctx.endpoint.backend as unknown[]) : [];
  if (backends.length === 0) return true; // the endpoint checks report it
  const sides = backends.map(rawSide);
  const count = (s: RawSide) => sides.filter((x) => x === s).length;
  if (count('candidate') === 0) {
    c.error(path, `at least one backend marked ${CANDIDATE_MARK} (the side that gets "percent")`, 'no candidate backend on this endpoint');
    return false;
  }
  if (count('stable') === 0) {
    c.error(path, 'at least one backend that is not a candidate (the stable side, which gets the rest)', 'every backend is a candidate (or a shadow)');
    return false;
  }
  if (ctx.streamed && (backends.length !== 2 || count('candidate') !== 1)) {
    c.error(path, 'exactly one stable and one candidate backend, because the output_encoding is "no-op" (each side passes its backend\'s response through)', `${count('stable')} stable, ${count('candidate')} candidate and ${count('shadow')} shadow backends`);
    return false;
  }
  const extra = ctx.endpoint?.extra_config;
  const sequential = isPlainObject(extra) && isPlainObject(extra.proxy) && extra.proxy.sequential === true;
  if (!sequential) return true;
  // Each side runs as its own chain: {respN_...} names the N-th backend of the same side.
  let ok = true;
  const endpointPath = path.slice(0, -2);
  for (const side of ['stable', 'candidate'] as const) {
    let position = 0;
    backends.forEach((b, j) => {
      if (sides[j] !== side) return;
      const pattern = isPlainObject(b) ? b.url_pattern : undefined;
      if (typeof pattern === 'string') {
        for (const name of urlPatternPlaceholders(pattern)) {
          const m = SEQUENTIAL_PLACEHOLDER.exec(name);
          // N >= j: the endpoint checks report it already.
          if (m && Number(m[1]) >= position && Number(m[1]) < j) {
            c.error([...endpointPath, 'backend', j, 'url_pattern'], `a {respN_...} placeholder naming an earlier backend of the ${side} side (N < ${position}: in a split endpoint each side is its own sequence)`, `{${name}} in backend ${position} of the ${side} side`);
            ok = false;
          }
        }
      }
      position++;
    });
  }
  return ok;
}

// ---- serving ----

const STABLE = 0;
const CANDIDATE = 1;
const SIDE_NAMES = ['stable', 'candidate'] as const;
type Outcome = 'ok' | 'error' | 'client_error';

/** The bucket of a sticky key (0..BUCKETS-1): a hash of the group and the key, the same in every process and run. */
export function bucketOf(group: string, key: string): number {
  return sha256(`${group}\n${key}`).readUInt32BE(0) % BUCKETS;
}

/** The sticky key of a request, or undefined when it has none. */
function stickyKey(sticky: StickyOptions, clientIp: (req: ProxyRequest) => string): (req: ProxyRequest) => string | undefined {
  switch (sticky.kind) {
    case 'header':
      return (req) => headerValue(req.headers[sticky.name]) || undefined;
    case 'cookie':
      return (req) => cookieValue(req.headers.cookie, sticky.name) || undefined;
    case 'claim':
      return (req) => {
        const v = req.claims === undefined ? undefined : lookupClaim(req.claims, sticky.name, true);
        return v === undefined || v === null ? undefined : claimText(v) || undefined;
      };
    case 'client_ip':
      return (req) => clientIp(req) || undefined;
  }
}

interface Tally {
  requests: number;
  errors: number;
  /** Latencies in ms. */
  latency: Sketch;
}

const tally = (): Tally => ({ requests: 0, errors: 0, latency: new DDSketch({ relativeAccuracy: 0.01 }) });

interface Slot {
  /** floor(time / slot length) of what it holds. */
  epoch: number;
  sides: [Tally, Tally];
}

/** What a side did over the window, as /__health shows it. */
interface SideFigures {
  requests: number;
  errors: number;
  error_rate_percent: number;
  p99_ms: number;
}

interface Trip {
  condition: 'error_rate' | 'p99';
  since: string;
  reason: string;
  window_seconds: number;
  margin: number;
  candidate: SideFigures;
  stable: SideFigures;
}

const live = new Set<SplitState>();
setGuardSource(() => [...live].filter((s) => s.rollback !== undefined).map((s) => ({ endpoint: s.endpoint, method: s.method, rolledBack: s.trip !== undefined })));

/**
 * One split's state in the policy state registry: its rollback window and
 * whether the guard has tripped. Keyed by the split's options and its
 * candidate backends, so only a configuration that changes the split gets a
 * fresh one (and sends traffic to the candidate again).
 */
export class SplitState implements HealthReporter {
  readonly endpoint: string;
  readonly method: string;
  readonly percent: number;
  readonly rollback: RollbackOptions | undefined;
  trip: Trip | undefined;
  readonly #slotMs: number;
  readonly #slots: Slot[] = [];
  #nextJudge = 0;

  constructor(ep: EndpointConfig, o: SplitOptions) {
    this.endpoint = ep.endpoint;
    this.method = ep.method;
    this.percent = o.percent;
    this.rollback = o.rollback;
    this.#slotMs = (o.rollback?.windowMs ?? DEFAULT_WINDOW_MS) / SLOTS;
    live.add(this);
  }

  dispose(): void {
    live.delete(this);
  }

  /** Count one answer of a side; judge the window now and then. */
  record(side: number, ms: number, error: boolean, now: number): void {
    if (this.rollback === undefined || this.trip !== undefined) return;
    const epoch = Math.floor(now / this.#slotMs);
    const i = epoch % SLOTS;
    let slot = this.#slots[i];
    if (slot === undefined || slot.epoch !== epoch) slot = this.#slots[i] = { epoch, sides: [tally(), tally()] };
    const t = slot.sides[side];
    t.requests++;
    if (error) t.errors++;
    t.latency.accept(Math.max(ms, 0));
    if (now >= this.#nextJudge) {
      this.#nextJudge = now + this.#slotMs;
      this.#judge(epoch);
    }
  }

  #window(epoch: number): [Tally, Tally] {
    const sum: [Tally, Tally] = [tally(), tally()];
    for (const slot of this.#slots) {
      if (slot === undefined || slot.epoch <= epoch - SLOTS) continue;
      for (const s of [STABLE, CANDIDATE]) {
        sum[s].requests += slot.sides[s].requests;
        sum[s].errors += slot.sides[s].errors;
        sum[s].latency.merge(slot.sides[s].latency);
      }
    }
    return sum;
  }

  #judge(epoch: number): void {
    const r = this.rollback!;
    const [stable, candidate] = this.#window(epoch);
    if (stable.requests < r.minRequests || candidate.requests < r.minRequests) return;
    const s = figures(stable);
    const c = figures(candidate);
    const seconds = r.windowMs / 1000;
    if (r.errorRateMargin !== undefined && c.error_rate_percent - s.error_rate_percent > r.errorRateMargin) {
      this.#trip({
        condition: 'error_rate',
        reason: `the candidate's error rate (${c.error_rate_percent}%) exceeded the stable side's (${s.error_rate_percent}%) by more than ${r.errorRateMargin} percentage points over ${seconds}s`,
        margin: r.errorRateMargin,
        candidate: c,
        stable: s,
      });
    } else if (r.p99MarginMs !== undefined && c.p99_ms - s.p99_ms > r.p99MarginMs) {
      this.#trip({
        condition: 'p99',
        reason: `the candidate's p99 (${c.p99_ms} ms) exceeded the stable side's (${s.p99_ms} ms) by more than ${r.p99MarginMs} ms over ${seconds}s`,
        margin: r.p99MarginMs,
        candidate: c,
        stable: s,
      });
    }
  }

  #trip(t: Omit<Trip, 'since' | 'window_seconds'>): void {
    this.trip = { ...t, since: new Date().toISOString(), window_seconds: this.rollback!.windowMs / 1000 };
    this.#slots.length = 0;
    log('warn', 'traffic split rolled back: the candidate side gets no requests until a configuration changes this split', {
      namespace: NAME,
      endpoint: this.endpoint,
      method: this.method,
      condition: t.condition,
      reason: t.reason,
    });
  }

  reportHealth(): { section: string; name: string; value: unknown } {
    const guard = this.rollback === undefined ? 'off' : this.trip === undefined ? 'watching' : 'rolled_back';
    return {
      section: 'traffic_splits',
      name: `${this.method} ${this.endpoint}`,
      value: { percent: this.percent, serving_percent: this.trip === undefined ? this.percent : 0, guard, rolled_back: this.trip ?? null },
    };
  }
}

function figures(t: Tally): SideFigures {
  const rate = t.requests === 0 ? 0 : (t.errors / t.requests) * 100;
  return {
    requests: t.requests,
    errors: t.errors,
    error_rate_percent: Math.round(rate * 100) / 100,
    p99_ms: t.requests === 0 ? 0 : Math.round(t.latency.getValueAtQuantile(0.99) * 1000) / 1000,
  };
}

/** How a side's answer counts: a 5xx, a thrown failure or a partial answer (a backend failed) is an error. */
function outcomeOf(r: ProxyResponse): Outcome {
  if (r.passthrough) return r.passthrough.status >= 500 ? 'error' : r.passthrough.status >= 400 ? 'client_error' : 'ok';
  return r.errors !== undefined && r.errors.length > 0 ? 'error' : 'ok';
}

function failureOf(err: unknown): Outcome {
  const status = err instanceof GatewayError ? err.status : 500;
  return status >= 500 ? 'error' : 'client_error';
}

/**
 * The endpoint's proxy when it has a split (plan/compile.ts, through
 * EndpointDeps.splitTraffic), else undefined. `liveBackends` are its
 * backends without the shadows; `compose` builds one side from them.
 */
export function compileTrafficSplit(
  ep: EndpointConfig,
  liveBackends: BackendConfig[],
  compose: (backends: BackendConfig[]) => Proxy,
  ctx: CompileContext,
): Proxy | undefined {
  const o = optionsOf(ep.namespaces, porticoTrafficSplit) as SplitOptions | undefined;
  if (o === undefined) return undefined;
  const isCandidate = (b: BackendConfig) => (optionsOf(b.namespaces, porticoTrafficSplit) as SideOptions | undefined)?.side === 'candidate';
  const candidates = liveBackends.filter(isCandidate);
  const stable = liveBackends.filter((b) => !isCandidate(b));
  if (candidates.length === 0 || stable.length === 0) return undefined; // refused by parse
  // Candidate backends as a digest: a backend may hold secrets, and keys may be shown.
  const key = stateKey(NAME, ep.method, ep.endpoint, o, sha256Hex(JSON.stringify(candidates)));
  const state = ctx.state.get(key, () => new SplitState(ep, o), (s) => s.dispose());

  const sides = [compose(stable), compose(candidates)];
  const counts = SIDE_NAMES.map((side) => ({
    ok: splitRequests.labels(ep.endpoint, ep.method, side, 'ok'),
    error: splitRequests.labels(ep.endpoint, ep.method, side, 'error'),
    client_error: splitRequests.labels(ep.endpoint, ep.method, side, 'client_error'),
    duration: splitDuration.labels(ep.endpoint, ep.method, side),
  }));
  const done = (side: number, started: number, outcome: Outcome) => {
    const now = performance.now();
    const ms = now - started;
    const c = counts[side];
    c[outcome].inc();
    c.duration.observe(ms / 1000);
    state.record(side, ms, outcome === 'error', now);
  };

  const threshold = Math.round(o.percent * (BUCKETS / 100));
  const random = () => Math.floor(Math.random() * BUCKETS) < threshold;
  let pick: (req: ProxyRequest) => boolean;
  if (threshold <= 0) pick = () => false;
  else if (threshold >= BUCKETS) pick = () => true;
  else if (o.sticky === undefined) pick = random;
  else {
    const keyOf = stickyKey(o.sticky, (req) => ctx.clientIp(req));
    const group = o.sticky.group ?? `${ep.method} ${ep.endpoint}`;
    const missing = o.sticky.missingKey === 'random' ? random : () => false;
    pick = (req) => {
      const k = keyOf(req);
      return k === undefined ? missing() : bucketOf(group, k) < threshold;
    };
  }

  return (req) => {
    const side = state.trip === undefined && pick(req) ? CANDIDATE : STABLE;
    const started = performance.now();
    return sides[side](req).then(
      (r) => {
        done(side, started, outcomeOf(r));
        return r;
      },
      (err: unknown) => {
        done(side, started, failureOf(err));
        throw err;
      },
    );
  };
}
