// `portico/shadow-compare` (backend, on a shadow backend only): the shadow's
// answer is compared with the live one (the endpoint's backends as composed,
// before endpoint-level stages) once both have settled, off the request path
// (proxy/shadow.ts): status, chosen response headers, the JSON body (missing,
// extra and changed fields, ignored paths, a numeric tolerance) and latency.
// Results and kinds are counted per endpoint and shadow backend
// (telemetry/shadow-metrics.ts); comparisons that differ are kept as examples
// in a small ring shown in /__stats and logged, sampled and rate-limited.
// Memory is bounded: bodies over max_body_bytes are not compared (the shadow
// call reads no more), and at most max_pending comparisons wait at once.

import { parseDuration } from '../config/duration.ts';
import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import { isPlainObject } from '../config/json-path.ts';
import { HTTP_TOKEN } from '../proxy/headers.ts';
import type { ShadowComparer, ShadowRequestInfo, ShadowSide } from '../proxy/shadow.ts';
import type { ResponseHeaders } from '../proxy/types.ts';
import { log, throttledLog } from '../telemetry/log.ts';
import {
  addShadowRing,
  removeShadowRing,
  shadowComparisons,
  shadowDiffs,
  type ShadowExample,
  type ShadowExampleDiff,
  type ShadowExampleRing,
} from '../telemetry/shadow-metrics.ts';
import { diffJson, parsePathPattern, TooDeepError, type PathPattern } from '../transform/json-diff.ts';
import type { Namespace } from './namespace.ts';
import { stateKey } from './state.ts';

const NAME = 'portico/shadow-compare';

export interface ShadowCompareOptions {
  /** Response headers compared, lower-case. */
  headers: string[];
  /** Paths not compared, as written (checked by parse, compiled by compile). */
  ignore: string[];
  numericTolerance: number;
  latencyMarginMs: number;
  maxBodyBytes: number;
  maxPending: number;
  /** Examples kept per shadow backend (0: none). */
  examples: number;
  logSampleRate: number;
  logPerMinute: number;
  showValues: boolean;
}

const DEFAULTS = {
  numericTolerance: 0,
  latencyMarginMs: 100,
  maxBodyBytes: 1024 * 1024,
  maxPending: 32,
  examples: 10,
  logSampleRate: 1,
  logPerMinute: 10,
} as const;

/** Differences listed in one example (the rest are counted in its `more`). */
const MAX_LISTED = 20;

const RULES: ObjectRules = {
  headers: 'string[]',
  ignore: 'string[]',
  numeric_tolerance: 'custom',
  latency_margin: 'duration',
  max_body_bytes: { kind: 'integer', min: 1 },
  max_pending: { kind: 'integer', min: 1, max: 100_000 },
  examples: { kind: 'integer', min: 0, max: 100 },
  log_sample_rate: 'custom',
  log_per_minute: { kind: 'integer', min: 0, max: 10_000 },
  show_values: 'boolean',
};

export const porticoShadowCompare: Namespace<ShadowCompareOptions> = {
  name: NAME,
  scopes: ['backend'],
  // Read by the core (the shadow call), like the backend kinds.
  order: 0,
  policy: false,
  parse(raw, path, c, ctx) {
    if (!expectObject(c, raw, path, 'an object with shadow comparison options ({} for the defaults)')) return undefined;
    const before = c.errors.length;
    const valid = checkFields(c, raw, path, RULES, `the "${NAME}" namespace`);
    const extra = ctx.backend?.extra_config;
    const proxy = isPlainObject(extra) ? extra.proxy : undefined;
    if (!isPlainObject(proxy) || proxy.shadow !== true) {
      c.add('error', path, 'a shadow backend ("proxy": {"shadow": true} in the same extra_config)', 'a live backend: only a shadow backend is compared with the live answer', 'key');
    } else if (ctx.streamed) {
      c.add('error', path, 'a backend whose answer is decoded (not "no-op")', 'a streamed no-op answer, which cannot be compared', 'key');
    }
    const headers = valid.has('headers') ? (raw.headers as string[]) : [];
    headers.forEach((h, i) => {
      if (!HTTP_TOKEN.test(h)) c.invalid([...path, 'headers', i], 'a header name such as "Content-Type" or "Cache-Control"', h);
    });
    const ignore = valid.has('ignore') ? (raw.ignore as string[]) : [];
    ignore.forEach((p, i) => {
      const parsed = parsePathPattern(p);
      if (typeof parsed === 'string') c.error([...path, 'ignore', i], 'a JSON path such as "$.updated_at", "$.items[*].id" or "$.**.etag"', `${JSON.stringify(p)}: ${parsed}`);
    });
    const tolerance = raw.numeric_tolerance;
    if (tolerance !== undefined && (typeof tolerance !== 'number' || !Number.isFinite(tolerance) || tolerance < 0)) {
      c.invalid([...path, 'numeric_tolerance'], 'a number >= 0 (numbers at most this far apart are equal)', tolerance);
    }
    const rate = raw.log_sample_rate;
    if (rate !== undefined && (typeof rate !== 'number' || !(rate >= 0 && rate <= 1))) {
      c.invalid([...path, 'log_sample_rate'], 'a number from 0 to 1 (the share of differing comparisons that may be logged)', rate);
    }
    if (c.errors.length > before) return undefined;
    const int = (key: string, fallback: number) => (valid.has(key) ? (raw[key] as number) : fallback);
    return {
      headers: [...new Set(headers.map((h) => h.toLowerCase()))],
      ignore,
      numericTolerance: (tolerance as number | undefined) ?? DEFAULTS.numericTolerance,
      latencyMarginMs: valid.has('latency_margin') ? parseDuration(raw.latency_margin as string)! : DEFAULTS.latencyMarginMs,
      maxBodyBytes: int('max_body_bytes', DEFAULTS.maxBodyBytes),
      maxPending: int('max_pending', DEFAULTS.maxPending),
      examples: int('examples', DEFAULTS.examples),
      logSampleRate: (rate as number | undefined) ?? DEFAULTS.logSampleRate,
      logPerMinute: int('log_per_minute', DEFAULTS.logPerMinute),
      showValues: raw.show_values === true,
    };
  },
  shadowCompare(o, ctx) {
    const ep = ctx.endpoint!;
    const b = ctx.backend!;
    const index = ep.backends.indexOf(b);
    const record = ctx.state.get(
      stateKey(NAME, ep.method, ep.endpoint, index, b.host, b.urlPattern, o),
      () => new ShadowRecord(ep.endpoint, b.urlPattern, o.examples),
      (r) => r.dispose(),
    );
    return new Comparer(o, record);
  },
};

/** What outlives a plan (kept across reloads that leave the options unchanged): the pending count, the examples, the log budget. */
class ShadowRecord {
  pending = 0;
  readonly ring: ShadowExampleRing;
  #windowStart = 0;
  #logged = 0;

  constructor(endpoint: string, backend: string, size: number) {
    this.ring = { endpoint, backend, size, examples: [] };
    if (size > 0) addShadowRing(this.ring);
  }

  keep(example: ShadowExample): void {
    if (this.ring.size === 0) return;
    this.ring.examples.push(example);
    if (this.ring.examples.length > this.ring.size) this.ring.examples.shift();
  }

  /** One more log line this minute, if the budget allows. */
  mayLog(perMinute: number): boolean {
    const now = Date.now();
    if (now - this.#windowStart >= 60_000) {
      this.#windowStart = now;
      this.#logged = 0;
    }
    if (this.#logged >= perMinute) return false;
    this.#logged++;
    return true;
  }

  dispose(): void {
    removeShadowRing(this.ring);
  }
}

type Result = 'equal' | 'different' | 'live_error' | 'skipped_too_large' | 'skipped_busy' | 'skipped_streamed';

interface Judgement {
  result: Result;
  diffs: ShadowExampleDiff[];
  kinds: Set<string>;
  more: number;
}

class Comparer implements ShadowComparer {
  readonly maxBodyBytes: number;
  readonly #o: ShadowCompareOptions;
  readonly #ignore: PathPattern[];
  readonly #record: ShadowRecord;

  constructor(o: ShadowCompareOptions, record: ShadowRecord) {
    this.#o = o;
    this.maxBodyBytes = o.maxBodyBytes;
    this.#ignore = o.ignore.map((p) => parsePathPattern(p) as PathPattern);
    this.#record = record;
  }

  acquire(): boolean {
    if (this.#record.pending >= this.#o.maxPending) {
      this.#count('skipped_busy');
      return false;
    }
    this.#record.pending++;
    return true;
  }

  settle(req: ShadowRequestInfo, live: ShadowSide, shadow: ShadowSide): void {
    this.#record.pending--;
    try {
      const j = this.#judge(live, shadow);
      this.#count(j.result);
      const ring = this.#record.ring;
      for (const kind of j.kinds) shadowDiffs.labels(ring.endpoint, ring.backend, kind).inc();
      if (j.result === 'different') this.#example(req, live, shadow, j);
    } catch (err) {
      // Runs off the request path: nothing here may take the process down.
      throttledLog('shadow-compare-failed', 'warn', 'shadow comparison failed', { endpoint: this.#record.ring.endpoint, error: String(err) });
    }
  }

  #count(result: Result): void {
    shadowComparisons.labels(this.#record.ring.endpoint, this.#record.ring.backend, result).inc();
  }

  #judge(live: ShadowSide, shadow: ShadowSide): Judgement {
    const o = this.#o;
    const j: Judgement = { result: 'equal', diffs: [], kinds: new Set(), more: 0 };
    const found = (d: ShadowExampleDiff) => {
      j.kinds.add(d.kind);
      if (j.diffs.length < MAX_LISTED) j.diffs.push(d);
      else j.more++;
    };
    if (live.streamed) return { ...j, result: 'skipped_streamed' };
    if (live.status === undefined) return { ...j, result: 'live_error' };
    if (live.tooLarge || live.bytes > o.maxBodyBytes || shadow.error === 'BACKEND_BODY_TOO_LARGE' || shadow.bytes > o.maxBodyBytes) {
      return { ...j, result: 'skipped_too_large' };
    }
    if (shadow.status === undefined) {
      found({ kind: shadow.error === 'TIMEOUT' ? 'shadow_timeout' : 'shadow_error', code: shadow.error });
    } else {
      if (live.status !== shadow.status) found({ kind: 'status', live: live.status, shadow: shadow.status });
      else if (live.data !== undefined && shadow.data !== undefined) {
        if (live.headers !== undefined && shadow.headers !== undefined) {
          // Names only: header values may be credentials or cookies.
          for (const h of o.headers) if (headerText(live.headers, h) !== headerText(shadow.headers, h)) found({ kind: 'header', header: h });
        }
        try {
          const d = diffJson(live.data, shadow.data, { ignore: this.#ignore, numericTolerance: o.numericTolerance, maxListed: MAX_LISTED - j.diffs.length, values: o.showValues });
          for (const k of d.kinds) j.kinds.add(k);
          j.diffs.push(...d.listed);
          j.more += d.more;
        } catch (err) {
          if (err instanceof TooDeepError) return { ...j, result: 'skipped_too_large', diffs: [], kinds: new Set(), more: 0 };
          throw err;
        }
      }
      if (shadow.ms - live.ms > o.latencyMarginMs) found({ kind: 'latency_regression', live_ms: round(live.ms), shadow_ms: round(shadow.ms) });
    }
    if (j.kinds.size > 0) j.result = 'different';
    return j;
  }

  #example(req: ShadowRequestInfo, live: ShadowSide, shadow: ShadowSide, j: Judgement): void {
    const example: ShadowExample = {
      at: new Date().toISOString(),
      method: req.method,
      path: req.path,
      request_id: req.requestId,
      live: summary(live),
      shadow: summary(shadow),
      diffs: j.diffs,
      more: j.more,
    };
    this.#record.keep(example);
    const o = this.#o;
    if (o.logPerMinute > 0 && o.logSampleRate > 0 && (o.logSampleRate >= 1 || Math.random() < o.logSampleRate) && this.#record.mayLog(o.logPerMinute)) {
      log('info', 'shadow answer differs', { endpoint: this.#record.ring.endpoint, backend: this.#record.ring.backend, ...example });
    }
  }
}

function headerText(headers: ResponseHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

function summary(s: ShadowSide): ShadowExample['live'] {
  return s.status === undefined ? { error: s.error, ms: round(s.ms) } : { status: s.status, ms: round(s.ms) };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
