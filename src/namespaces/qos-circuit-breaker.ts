// `qos/circuit-breaker` (backend): a state machine around one backend call,
// with the semantics KrakenD gets from krakend-circuitbreaker over
// sony/gobreaker (one trial request in half-open state):
//
//   closed     calls go through; consecutive failures are counted in windows
//              of `interval` seconds (the count restarts with each window, 0 =
//              one endless window); a success resets the count. More than
//              `max_errors` consecutive failures open the breaker.
//   open       the backend is not called: it fails at once with
//              BREAKER_OPEN. After `timeout` seconds the next call finds the
//              breaker half-open.
//   half-open  one trial call goes through (the others fail at once with
//              BREAKER_TOO_MANY_REQUESTS); its success closes the breaker,
//              its failure opens it again for `timeout` seconds.
//
// A failure is any backend error (connection, endpoint timeout, a status that
// is not a success for the encoding, a decode error, return_error_details
// answers). A request whose client went away (CLIENT_CLOSED) counts neither
// way: a leaving client says nothing about the backend. Results of calls that
// started under an earlier state (gobreaker's generation) are ignored.
//
// The breaker lives in PolicyState, keyed by its options and the backend's
// identity, so a reload that leaves it unchanged keeps its state; it reports
// its state to /__health (PolicyState.report()).
//
// The shared machinery (parsing the common fields, the Breaker, the
// middleware) is exported for `qos/circuit-breaker/http`, which only changes
// what counts as a failure.

import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import type { IssueCollector } from '../config/issues.ts';
import type { JsonPath } from '../config/json-path.ts';
import { GatewayError } from '../proxy/errors.ts';
import type { Proxy, ProxyRequest, ProxyResponse } from '../proxy/types.ts';
import { log } from '../telemetry/log.ts';
import type { CompileContext, Compiled, Namespace } from './namespace.ts';
import { stateKey, type HealthReporter } from './state.ts';

const NAME = 'qos/circuit-breaker';

export interface CircuitBreakerOptions {
  /** `interval`: seconds of one closed-state counting window; 0 = the count never restarts. */
  intervalS: number;
  /** `timeout`: seconds the breaker stays open; 0 means gobreaker's default, 60. */
  timeoutS: number;
  /** `max_errors`: the breaker opens after more than this many consecutive failures. */
  maxErrors: number;
  /** `name`, when given (logs and /__health); else one is derived from the backend. */
  name: string | undefined;
  /** `log_status_change`: log each state change at warn. */
  logStatusChange: boolean;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

/** Stable codes of a call the breaker refused. */
export const BREAKER_ERROR_CODES = {
  open: 'BREAKER_OPEN',
  tooManyRequests: 'BREAKER_TOO_MANY_REQUESTS',
} as const;

/** gobreaker's timeout when Settings.Timeout is 0. */
export const DEFAULT_OPEN_TIMEOUT_S = 60;
/** gobreaker's MaxRequests as krakend-circuitbreaker leaves it (0, read as 1): trial calls in half-open state. */
export const HALF_OPEN_MAX_REQUESTS = 1;
/** The message of a state change log line. */
export const STATE_CHANGE_MSG = 'circuit breaker state changed';

const COMMON_RULES: ObjectRules = {
  interval: { kind: 'integer', min: 0 },
  timeout: { kind: 'integer', min: 0 },
  max_errors: { kind: 'integer', min: 0 },
  name: 'string',
  log_status_change: 'boolean',
};

/**
 * Check the fields both breakers share (plus `extra` rules the caller checks
 * itself). Returns undefined when any required field is missing or invalid.
 */
export function parseBreakerFields(
  ns: string,
  raw: unknown,
  path: JsonPath,
  c: IssueCollector,
  extra: ObjectRules = {},
): { options: CircuitBreakerOptions; raw: Record<string, unknown> } | undefined {
  if (!expectObject(c, raw, path, 'an object with "interval", "timeout" and "max_errors"')) return undefined;
  const before = c.errors.length;
  const valid = checkFields(c, raw, path, { ...COMMON_RULES, ...extra }, `the "${ns}" namespace`);
  for (const key of ['interval', 'timeout', 'max_errors']) {
    // Required by KrakenD's schema: a breaker with no threshold would trip on the first failure.
    if (!(key in raw)) c.missing([...path, key], key === 'max_errors' ? 'an integer >= 0 (consecutive errors tolerated)' : 'an integer >= 0 (seconds)');
  }
  if (c.errors.length > before) return undefined;
  return {
    raw,
    options: {
      intervalS: raw.interval as number,
      timeoutS: raw.timeout as number,
      maxErrors: raw.max_errors as number,
      name: valid.has('name') && raw.name !== '' ? (raw.name as string) : undefined,
      logStatusChange: valid.has('log_status_change') && raw.log_status_change === true,
    },
  };
}

/**
 * How a finished call counts: true = success, false = failure, undefined = not
 * at all. Called with the answer or with the error (then `res` is undefined).
 */
export type Outcome = (req: ProxyRequest, res: ProxyResponse | undefined, err: unknown) => boolean | undefined;

/** The client went away: the call says nothing about the backend. */
export function clientClosed(req: ProxyRequest, err: unknown): boolean {
  if (err instanceof GatewayError && err.code === 'CLIENT_CLOSED') return true;
  const r = req.signal.aborted ? req.signal.reason : undefined;
  return r instanceof GatewayError && r.code === 'CLIENT_CLOSED';
}

/** qos/circuit-breaker: every backend error fails; a no-op answer succeeds whatever its status. */
const ceOutcome: Outcome = (req, res, err) => {
  if (res !== undefined) return res.passthrough !== undefined || res.complete;
  return clientClosed(req, err) ? undefined : false;
};

/** A name for the breaker of this backend when `name` is not set. */
function defaultName(ctx: CompileContext): string {
  const ep = ctx.endpoint;
  const b = ctx.backend!;
  const index = ep ? ep.backends.indexOf(b) : 0;
  return `${ep?.method ?? ''} ${ep?.endpoint ?? ''} backend ${index} (${b.method} ${b.urlPattern})`.trim();
}

/**
 * Compile a breaker middleware: `ns` namespaces the state key (two breakers
 * on one backend are separate machines, as in KrakenD), `outcome` classifies
 * the results.
 */
export function compileBreaker(ns: string, o: CircuitBreakerOptions, ctx: CompileContext, outcome: Outcome, extraKey: unknown = null): Compiled {
  const ep = ctx.endpoint;
  const b = ctx.backend!;
  const name = o.name ?? defaultName(ctx);
  const identity = { endpoint: ep?.endpoint, method: ep?.method, backend: ep ? ep.backends.indexOf(b) : 0, host: b.host, urlPattern: b.urlPattern };
  const key = stateKey(ns, 'breaker', o, extraKey, identity, name);
  const breaker = ctx.state.get(key, () => new Breaker(ns, name, o, ep?.endpoint ?? ''));
  return {
    middleware: (next: Proxy): Proxy =>
      (req) => {
        // Refusals and synchronous throws become rejections: a Proxy fails by its promise,
        // so the other backends of the endpoint still run (partial answer).
        let gen: number;
        try {
          gen = breaker.before();
        } catch (err) {
          return Promise.reject(err);
        }
        let p: Promise<ProxyResponse>;
        try {
          p = next(req);
        } catch (err) {
          breaker.after(gen, outcome(req, undefined, err));
          return Promise.reject(err);
        }
        return p.then(
          (res) => {
            breaker.after(gen, outcome(req, res, undefined));
            return res;
          },
          (err: unknown) => {
            breaker.after(gen, outcome(req, undefined, err));
            throw err;
          },
        );
      },
  };
}

/** The state machine of one backend's breaker (gobreaker semantics, see the header). */
export class Breaker implements HealthReporter {
  readonly name: string;
  readonly #ns: string;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #maxErrors: number;
  readonly #logChanges: boolean;
  readonly #where: string;
  #state: BreakerState = 'closed';
  /** Bumped at each state change and each new closed window: results of older calls are ignored. */
  #generation = 0;
  /** Closed: end of the counting window (0 = none). Open: when it turns half-open. */
  #expiry = 0;
  #consecutiveFailures = 0;
  /** Half-open: trial calls let through in this generation. */
  #trials = 0;
  #consecutiveSuccesses = 0;

  constructor(ns: string, name: string, o: CircuitBreakerOptions, where: string) {
    this.#ns = ns;
    this.name = name;
    this.#intervalMs = o.intervalS * 1000;
    this.#timeoutMs = (o.timeoutS > 0 ? o.timeoutS : DEFAULT_OPEN_TIMEOUT_S) * 1000;
    this.#maxErrors = o.maxErrors;
    this.#logChanges = o.logStatusChange;
    this.#where = where;
    this.#newGeneration(performance.now());
  }

  /** The current state (an open breaker whose timeout passed turns half-open now). */
  state(now = performance.now()): BreakerState {
    if (this.#state === 'closed') {
      if (this.#expiry !== 0 && this.#expiry <= now) this.#newGeneration(now);
    } else if (this.#state === 'open' && this.#expiry <= now) {
      this.#set('half-open', now);
    }
    return this.#state;
  }

  /** Admit a call: its generation, or a thrown GatewayError when the breaker refuses it. */
  before(): number {
    const state = this.state();
    if (state === 'open') {
      throw new GatewayError(500, `circuit breaker "${this.name}" is open`, { code: BREAKER_ERROR_CODES.open });
    }
    if (state === 'half-open') {
      if (this.#trials >= HALF_OPEN_MAX_REQUESTS) {
        throw new GatewayError(500, `circuit breaker "${this.name}" is half-open and its trial call is running`, { code: BREAKER_ERROR_CODES.tooManyRequests });
      }
      this.#trials++;
    }
    return this.#generation;
  }

  /** Record the result of a call admitted in generation `gen`. */
  after(gen: number, ok: boolean | undefined): void {
    const now = performance.now();
    const state = this.state(now);
    if (gen !== this.#generation) return;
    if (ok === undefined) {
      // Not counted: give the trial slot back so that another call may probe.
      if (state === 'half-open') this.#trials--;
      return;
    }
    if (ok) {
      if (state === 'closed') this.#consecutiveFailures = 0;
      else if (state === 'half-open' && ++this.#consecutiveSuccesses >= HALF_OPEN_MAX_REQUESTS) this.#set('closed', now);
      return;
    }
    if (state === 'closed') {
      this.#consecutiveSuccesses = 0;
      if (++this.#consecutiveFailures > this.#maxErrors) this.#set('open', now);
    } else if (state === 'half-open') {
      this.#set('open', now);
    }
  }

  reportHealth(): { section: string; name: string; value: unknown } {
    return { section: 'breakers', name: this.name, value: this.state() };
  }

  #set(to: BreakerState, now: number): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    this.#newGeneration(now);
    if (this.#logChanges) log('warn', STATE_CHANGE_MSG, { namespace: this.#ns, name: this.name, endpoint: this.#where, from, to });
  }

  #newGeneration(now: number): void {
    this.#generation++;
    this.#consecutiveFailures = 0;
    this.#consecutiveSuccesses = 0;
    this.#trials = 0;
    if (this.#state === 'closed') this.#expiry = this.#intervalMs > 0 ? now + this.#intervalMs : 0;
    else if (this.#state === 'open') this.#expiry = now + this.#timeoutMs;
    else this.#expiry = 0;
  }
}

export const qosCircuitBreaker: Namespace<CircuitBreakerOptions> = {
  name: NAME,
  scopes: ['backend'],
  order: 520,
  policy: true,
  parse(raw, path, c) {
    return parseBreakerFields(NAME, raw, path, c)?.options;
  },
  compile(o, ctx) {
    return compileBreaker(NAME, o, ctx, ceOutcome);
  },
};
