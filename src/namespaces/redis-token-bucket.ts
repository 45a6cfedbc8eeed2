// Token buckets kept in Redis, decided by one server-side Lua script per
// request (one round trip: ioredis defineCommand runs EVALSHA and falls back
// to EVAL when the server does not know the script, after a restart).
//
// A bucket is a hash {n: tokens, t: last update in ms} under its key. The
// script reads Redis's own clock (TIME), so gateway clocks never matter, and
// refills continuously at `rate` tokens per ms up to `capacity`. Buckets are
// taken in order (the endpoint bucket, then the client one): the first that
// has less than one token refuses and the script stops there; a bucket that
// gives a token is written back with a TTL of the time it needs to refill
// completely (plus 1 s), so idle keys expire by themselves.
//
// Each decision is bounded by a timer: no answer in time is a failure, which
// the caller turns into its configured failure mode.

import type { Redis } from 'ioredis';

const SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  local cap = tonumber(ARGV[2 * i])
  local s = redis.call('HMGET', KEYS[i], 'n', 't')
  local n = cap
  if s[1] and s[2] then
    local elapsed = now - tonumber(s[2])
    if elapsed < 0 then elapsed = 0 end
    n = math.min(cap, tonumber(s[1]) + elapsed * rate)
  end
  if n < 1 then
    return {i, math.ceil((1 - n) / rate)}
  end
  redis.call('HSET', KEYS[i], 'n', string.format('%.17g', n - 1), 't', string.format('%.3f', now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(cap / rate) + 1000)
end
return {0, 0}
`;

const COMMAND = 'porticoTokenBuckets';

/** One bucket of a decision: its Redis key, refill rate (tokens per ms) and capacity. */
export interface RedisBucket {
  key: string;
  ratePerMs: number;
  capacity: number;
}

/** The outcome: `refused` is the index of the bucket that refused (-1: allowed); `waitMs` until it has a token. */
export interface RedisDecision {
  refused: number;
  waitMs: number;
}

type ScriptClient = Redis & { [COMMAND](n: number, ...args: (string | number)[]): Promise<[number, number]> };

const defined = new WeakSet<Redis>();

/** Why a decision failed (the reason is logged, never shown). */
export class RedisDecisionError extends Error {}

function ensureDefined(client: Redis): ScriptClient {
  if (!defined.has(client)) {
    client.defineCommand(COMMAND, { lua: SCRIPT });
    defined.add(client);
  }
  return client as ScriptClient;
}

const readyWaits = new WeakMap<Redis, Promise<void>>();

/** Resolves when `client` is connected (one shared listener, however many decisions wait). */
function whenReady(client: Redis): Promise<void> {
  let p = readyWaits.get(client);
  if (!p) {
    p = new Promise((resolve) => {
      client.once('ready', () => {
        readyWaits.delete(client);
        resolve();
      });
    });
    readyWaits.set(client, p);
  }
  return p;
}

/**
 * Take one token from each bucket in order, in one round trip; rejects with a
 * RedisDecisionError when Redis does not answer within `timeoutMs` or fails.
 * A dead Redis fails fast: while the client is reconnecting the decision
 * fails at once; only a connection attempt in progress is waited for, within
 * the same bound. A command lost with its connection is sent again, at most
 * `retries` times, while time remains. Nothing is sent after the deadline (a
 * late decision must not take a token for a request already answered).
 */
export function takeTokens(client: Redis, buckets: readonly RedisBucket[], timeoutMs: number, retries = 0): Promise<RedisDecision> {
  const c = ensureDefined(client);
  const args: (string | number)[] = [];
  for (const b of buckets) args.push(b.key);
  for (const b of buckets) args.push(b.ratePerMs, b.capacity);
  return new Promise((resolve, reject) => {
    let done = false;
    let left = retries;
    const fail = (reason: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new RedisDecisionError(reason));
    };
    const timer = setTimeout(() => fail(`no answer from Redis within ${timeoutMs} ms (connection ${client.status})`), timeoutMs);
    const attempt = (): void => {
      if (done) return;
      const status = client.status;
      if (status === 'connecting' || status === 'connect') {
        void whenReady(client).then(attempt);
        return;
      }
      if (status !== 'ready') return fail(`Redis connection ${status}`);
      c[COMMAND](buckets.length, ...args).then(
        (r) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          resolve({ refused: Number(r[0]) - 1, waitMs: Number(r[1]) });
        },
        (err: unknown) => {
          if (client.status !== 'ready' && left-- > 0) return attempt();
          fail(err instanceof Error ? err.message : String(err));
        },
      );
    };
    attempt();
  });
}
