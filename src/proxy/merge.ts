// Composing several backends into one response: in parallel (all at once,
// within 85% of the endpoint timeout, merged key by key in declaration order)
// or in sequence (each may use {respN_field} from an earlier answer).

import { mergeInto } from '../transform/data.ts';
import { Deadline } from './abort.ts';
import { GatewayError, TimeoutError, timeoutError } from './errors.ts';
import type { Data, Proxy, ProxyRequest, ProxyResponse } from './types.ts';
import { parseRespPlaceholder, placeholderText } from './url-template.ts';

/** KrakenD gives the merge 85% of the endpoint timeout, leaving time to render. */
export function mergeTimeout(endpointTimeoutMs: number): number {
  return Math.floor(endpointTimeoutMs * 0.85);
}

export function parallelMerge(parts: Proxy[], timeoutMs: number): Proxy {
  return (req) => {
    const d = new Deadline(req.signal, timeoutMs, timeoutError);
    const child: ProxyRequest = { ...req, signal: d };
    const results: (ProxyResponse | Error | undefined)[] = new Array(parts.length);
    return new Promise<ProxyResponse>((resolve, reject) => {
      let pending = parts.length;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        d.dispose();
        try {
          resolve(combine(results));
        } catch (err) {
          reject(err);
        }
      };
      // The deadline settles the merge even if a part ignored its signal.
      d.onAbort(finish);
      for (let i = 0; i < parts.length; i++) {
        parts[i](child).then(
          (r) => { results[i] = r; if (--pending === 0) finish(); },
          (e: Error) => { results[i] = e; if (--pending === 0) finish(); },
        );
      }
    });
  };
}

function combine(results: (ProxyResponse | Error | undefined)[]): ProxyResponse {
  let data: Data | undefined;
  let complete = true;
  const errors: Error[] = [];
  for (const r of results) {
    if (r === undefined) {
      complete = false;
      errors.push(new TimeoutError());
    } else if (r instanceof Error) {
      complete = false;
      errors.push(r);
    } else {
      if (!r.complete) complete = false;
      if (r.errors) errors.push(...r.errors);
      if (data === undefined) data = r.data;
      else mergeInto(data, r.data);
    }
  }
  if (data === undefined) throw allFailed(errors);
  return errors.length ? { data, complete, errors } : { data, complete };
}

export function allFailed(errors: Error[]): GatewayError {
  if (errors.length === 1 && errors[0] instanceof GatewayError) return errors[0];
  const status = errors.every((e) => e instanceof GatewayError && e.status === (errors[0] as GatewayError).status)
    ? (errors[0] as GatewayError).status
    : 500;
  return new GatewayError(status, errors.map((e) => e.message).join('; '), { cause: errors, code: 'ALL_BACKENDS_FAILED' });
}

/**
 * Backends in order; placeholders {respN_a.b} in backend i's url_pattern are
 * filled from backend N's data. Backend 0 failing fails the request; a later
 * failure stops the chain and answers what arrived so far, marked partial.
 */
export function sequentialMerge(parts: Proxy[], placeholders: string[][], timeoutMs: number): Proxy {
  const lookups = placeholders.map((names) =>
    names.flatMap((name) => {
      const p = parseRespPlaceholder(name);
      return p ? [{ name, ...p }] : [];
    }),
  );
  return async (req) => {
    const d = new Deadline(req.signal, timeoutMs, timeoutError);
    const datas: Data[] = [];
    let merged: Data | undefined;
    let complete = true;
    const errors: Error[] = [];
    try {
      for (let i = 0; i < parts.length; i++) {
        let extraParams = req.extraParams;
        if (lookups[i].length) {
          extraParams = { ...extraParams };
          for (const l of lookups[i]) extraParams[l.name] = placeholderText(datas[l.index], l.path);
        }
        let r: ProxyResponse;
        try {
          r = await parts[i]({ ...req, signal: d, extraParams });
        } catch (err) {
          if (i === 0) throw err;
          complete = false;
          errors.push(err as Error);
          break;
        }
        datas[i] = r.data;
        if (!r.complete) complete = false;
        if (merged === undefined) merged = r.data;
        else mergeInto(merged, r.data);
      }
    } finally {
      d.dispose();
    }
    return errors.length ? { data: merged!, complete, errors } : { data: merged!, complete };
  };
}
