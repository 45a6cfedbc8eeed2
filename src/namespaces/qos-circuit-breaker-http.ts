// `qos/circuit-breaker/http` (backend, KrakenD Enterprise): the circuit
// breaker of qos-circuit-breaker.ts with the same fields, plus the required
// `valid_status_codes`: the backend statuses that are NOT failures. Any other
// status is a failure, and so are errors without a status (connection,
// endpoint timeout, decode). Unlike `qos/circuit-breaker` it reads the status
// of no-op answers too. A client that went away counts neither way.
//
// It is a breaker of its own (its own state, key and log lines), as in
// KrakenD; KrakenD advises against putting both on one backend, and Portico
// logs a warning when a plan does.

import type { IssueCollector } from '../config/issues.ts';
import { isPlainObject, type JsonPath } from '../config/json-path.ts';
import { BackendStatusError, GatewayError } from '../proxy/errors.ts';
import type { ProxyResponse } from '../proxy/types.ts';
import { log } from '../telemetry/log.ts';
import { optionsOf, type Namespace } from './namespace.ts';
import { clientClosed, compileBreaker, parseBreakerFields, qosCircuitBreaker, type CircuitBreakerOptions, type Outcome } from './qos-circuit-breaker.ts';

const NAME = 'qos/circuit-breaker/http';

export interface HttpCircuitBreakerOptions extends CircuitBreakerOptions {
  /** `valid_status_codes`, sorted and without duplicates. */
  validStatusCodes: number[];
}

const VALID_EXPECTED = 'an array of HTTP status codes (integers from 100 to 599), such as [200, 201, 404]';

function checkStatusCodes(c: IssueCollector, value: unknown, at: JsonPath): number[] | undefined {
  if (!Array.isArray(value)) {
    c.invalid(at, VALID_EXPECTED, value);
    return undefined;
  }
  let ok = true;
  value.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 100 || v > 599) {
      c.invalid([...at, i], 'an HTTP status code (an integer from 100 to 599)', v);
      ok = false;
    }
  });
  if (!ok) return undefined;
  if (value.length === 0) c.warning(at, `${VALID_EXPECTED} (with none, every answer counts as a failure)`, 'an empty array');
  return [...new Set(value as number[])].sort((a, b) => a - b);
}

/** The status a backend answered with, when the result carries one. */
function statusOf(res: ProxyResponse | undefined, err: unknown, errorDetailsKey: string | undefined): number | undefined {
  if (res !== undefined) {
    if (res.passthrough) return res.passthrough.status;
    if (!res.complete && errorDetailsKey !== undefined) {
      const d = res.data[errorDetailsKey] as { http_status_code?: unknown } | undefined;
      if (typeof d?.http_status_code === 'number') return d.http_status_code;
    }
    return undefined;
  }
  if (err instanceof BackendStatusError) return err.backendStatus;
  // backend/http return_error_code: the backend's status is the error's own.
  if (err instanceof GatewayError && err.code === 'BACKEND_STATUS') return err.status;
  return undefined;
}

export const qosCircuitBreakerHttp: Namespace<HttpCircuitBreakerOptions> = {
  name: NAME,
  scopes: ['backend'],
  order: 521,
  policy: true,
  parse(raw, path, c) {
    const parsed = parseBreakerFields(NAME, raw, path, c, { valid_status_codes: 'custom' });
    if (!isPlainObject(raw)) return undefined;
    const at = [...path, 'valid_status_codes'];
    let codes: number[] | undefined;
    if (!('valid_status_codes' in raw)) c.missing(at, VALID_EXPECTED);
    else codes = checkStatusCodes(c, raw.valid_status_codes, at);
    if (parsed === undefined || codes === undefined) return undefined;
    return { ...parsed.options, validStatusCodes: codes };
  },
  compile(o, ctx) {
    const b = ctx.backend!;
    if (optionsOf(b.namespaces, qosCircuitBreaker) !== undefined) {
      log('warn', 'qos/circuit-breaker and qos/circuit-breaker/http on the same backend: two breakers compete (KrakenD advises against it)', {
        endpoint: ctx.endpoint?.endpoint,
        backend: b.urlPattern,
      });
    }
    const valid = new Set(o.validStatusCodes);
    const errorDetailsKey = b.returnErrorDetails ? `error_${b.returnErrorDetails}` : undefined;
    const outcome: Outcome = (req, res, err) => {
      const status = statusOf(res, err, errorDetailsKey);
      if (status !== undefined) return valid.has(status);
      // A decoded answer: the status was a success for its encoding (200 or 201).
      if (res !== undefined) return true;
      return clientClosed(req, err) ? undefined : false;
    };
    return compileBreaker(NAME, o, ctx, outcome);
  },
};
