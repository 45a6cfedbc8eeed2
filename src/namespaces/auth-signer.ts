// `auth/signer` (endpoint): token-issuing endpoints, as KrakenD's
// krakend-jose TokenSigner. A middleware around the endpoint's backends: each
// key of `keys_to_sign` whose value in the answer is an object is replaced by
// that object signed as a JWS (compact, or the flattened JSON serialization
// with `full`) with the key `kid` of the JWK set (jwk_url or jwk_local_path).
//
// As in KrakenD, a failed or partial backend answer makes the endpoint answer
// 400 with an empty body. Unlike KrakenD, which serves the payload unsigned
// when it could not load the key at start, Portico never answers unsigned: a
// key that cannot be had is a 500.

import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import { GatewayError } from '../proxy/errors.ts';
import type { CancelSignal } from '../proxy/abort.ts';
import type { Proxy, ProxyResponse } from '../proxy/types.ts';
import { log } from '../telemetry/log.ts';
import {
  ALGORITHMS,
  DEFAULT_CACHE_SECONDS,
  DEFAULT_COOLDOWN_MS,
  importKey,
  jose,
  JWK_SOURCE_RULES,
  keySourceFor,
  parseJwkSource,
  type Algorithm,
  type JwkSourceOptions,
  type KeySource,
} from './jwk-source.ts';
import type { Namespace } from './namespace.ts';

const NAME = 'auth/signer';

export interface SignerOptions {
  alg: Algorithm;
  kid: string;
  keysToSign: string[];
  full: boolean;
  source: JwkSourceOptions;
}

const RULES: ObjectRules = {
  alg: { kind: 'string', oneOf: ALGORITHMS },
  kid: 'string',
  keys_to_sign: 'string[]',
  full: 'boolean',
  leeway: 'duration',
  ...JWK_SOURCE_RULES,
};

export const authSigner: Namespace<SignerOptions> = {
  name: NAME,
  scopes: ['endpoint'],
  order: 440,
  policy: true,
  parse(raw, path, c, ctx) {
    if (!expectObject(c, raw, path, 'an object with the JWT signing settings')) return undefined;
    if (ctx.streamed) {
      c.error(path, 'an endpoint whose answer Portico decodes (a no-op answer is streamed and cannot be signed)', 'auth/signer on an endpoint with output_encoding "no-op"');
      return undefined;
    }
    const valid = checkFields(c, raw, path, RULES, 'the "auth/signer" namespace');
    let ok = true;
    const required: [string, string][] = [
      ['alg', `the signing algorithm, one of ${ALGORITHMS.join(', ')}`],
      ['kid', 'the kid of the key to sign with, as written in the JWK set'],
      ['keys_to_sign', 'the keys of the backend answer to sign, such as ["access_token", "refresh_token"]'],
    ];
    for (const [key, expected] of required) {
      if (!(key in raw)) {
        c.missing([...path, key], expected);
        ok = false;
      } else if (!valid.has(key)) ok = false;
    }
    if ('leeway' in raw) c.warning([...path, 'leeway'], 'no leeway for signing', 'leeway has no effect on signing (KrakenD ignores it too)');
    const source = parseJwkSource(
      raw,
      path,
      c,
      // The signer has no cache settings: its key set is refreshed as a cached validator's is.
      { maxAgeMs: DEFAULT_CACHE_SECONDS * 1000, cooldownMs: DEFAULT_COOLDOWN_MS },
    );
    if (!ok || !source) return undefined;
    return {
      alg: raw.alg as Algorithm,
      kid: raw.kid as string,
      keysToSign: raw.keys_to_sign as string[],
      full: raw.full === true,
      source,
    };
  },
  compile(o, ctx) {
    const endpoint = ctx.endpoint?.endpoint ?? '';
    if (ctx.endpoint?.outputEncoding === 'no-op') {
      throw new Error(`auth/signer on endpoint ${JSON.stringify(endpoint)}: a no-op (streamed) answer cannot be signed; use another output_encoding`);
    }
    const source = keySourceFor(o.source, ctx.state, NAME, { use: 'sign', kid: o.kid }, !ctx.checkOnly);
    return { middleware: (next) => signing(next, o, source, endpoint) };
  },
};

function signing(next: Proxy, o: SignerOptions, source: KeySource, endpoint: string): Proxy {
  const header = { alg: o.alg, kid: o.kid, typ: 'JWT' };
  const encoder = new TextEncoder();

  const signingKey = async (signal: CancelSignal): Promise<CryptoKey> => {
    try {
      const s = source.current(signal);
      const set = s instanceof Promise ? await s : s;
      let entry = set.find('kid', o.kid);
      if (!entry) {
        entry = (await source.refreshAfterMiss(signal))?.find('kid', o.kid);
        if (!entry) {
          source.missed();
          throw new Error(`no key with kid ${JSON.stringify(o.kid)} in the JWK set`);
        }
      }
      return await importKey(entry, o.alg, 'sign');
    } catch (err) {
      throw new GatewayError(500, `auth/signer: no key to sign with: ${(err as Error).message}`, { code: 'AUTH_SIGNER_KEY_UNAVAILABLE', body: '', cause: err });
    }
  };

  const sign = async (key: CryptoKey, value: Record<string, unknown>): Promise<string> => {
    const payload = encoder.encode(JSON.stringify(value));
    if (!o.full) return new (jose().CompactSign)(payload).setProtectedHeader(header).sign(key);
    const jws = await new (jose().FlattenedSign)(payload).setProtectedHeader(header).sign(key);
    // go-jose's FullSerialize: the flattened JSON form, as a string.
    return JSON.stringify({ payload: jws.payload, protected: jws.protected, signature: jws.signature });
  };

  return async (req) => {
    let r: ProxyResponse;
    try {
      r = await next(req);
    } catch (err) {
      throw backendFailed(endpoint, (err as Error)?.message ?? String(err), err);
    }
    if (r.passthrough) {
      r.passthrough.discard();
      throw new GatewayError(500, 'auth/signer: a streamed answer cannot be signed', { code: 'AUTH_SIGNER_PASSTHROUGH', body: '' });
    }
    if (r.errors?.length) throw backendFailed(endpoint, r.errors.map((e) => e.message).join('; '));
    const targets = o.keysToSign.filter((k) => isObject(r.data[k]));
    if (targets.length === 0) return r;
    const key = await signingKey(req.signal);
    const data = { ...r.data };
    try {
      for (const k of targets) data[k] = await sign(key, data[k] as Record<string, unknown>);
    } catch (err) {
      log('error', `auth/signer: signing failed: ${(err as Error).message}`, { endpoint });
      throw new GatewayError(400, 'auth/signer: signing failed', { code: 'AUTH_SIGNER_FAILED', body: '', cause: err });
    }
    return { ...r, data };
  };
}

/** KrakenD answers 400, empty, when the backends of a signing endpoint fail (even partly). */
function backendFailed(endpoint: string, message: string, cause?: unknown): GatewayError {
  log('warn', `auth/signer: the backend answer cannot be signed: ${message}`, { endpoint });
  return new GatewayError(400, `auth/signer: backend failed: ${message}`, { code: 'AUTH_SIGNER_BACKEND_FAILED', body: '', cause });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
