// `redis` (service): KrakenD Enterprise's named Redis connection pools, used
// by the cluster-wide rate limits (`qos/ratelimit/router/redis`). Each entry
// of `connection_pools` is checked here; a rate limit refers to it by name
// (`connection_name`, or the deprecated `connection_pool`).
//
// The client is ioredis, one per pool and process, kept in PolicyState keyed
// by the pool's options (the password as a digest), so a reload that leaves a
// pool unchanged keeps its connection; disconnected when no plan holds it.
// It fails fast: no offline queue (a command while disconnected is refused at
// once), reconnection in the background with KrakenD's backoff bounds, and
// automatic pipelining (concurrent decisions share one write).
//
// Pool sizing fields (`pool_size`, `max_idle_conns`...) are go-redis tuning:
// ioredis multiplexes every command on one pipelined connection, so they are
// checked and reported as having no effect. `clusters` and `tls` are refused
// ("not supported by this version").

import type { Redis } from 'ioredis';
import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import { parseDuration } from '../config/duration.ts';
import { parseHostPort } from '../config/host-port.ts';
import type { IssueCollector } from '../config/issues.ts';
import type { JsonPath } from '../config/json-path.ts';
import { lazyRequire } from '../shared/lazy-require.ts';
import { log } from '../telemetry/log.ts';
import { sha256Hex } from './credentials.ts';
import type { Namespace } from './namespace.ts';
import { stateKey, type StateScope } from './state.ts';

const NAME = 'redis';

export interface RedisPoolOptions {
  name: string;
  host: string;
  port: number;
  db: number;
  username: string | undefined;
  password: string | undefined;
  clientName: string | undefined;
  /** dial_timeout (default 5s). */
  dialTimeoutMs: number;
  /** max_retries (default 3; -1: never retry). */
  maxRetries: number;
  /** min_retry_backoff / max_retry_backoff (defaults 8ms / 512ms): reconnection backoff bounds. */
  minRetryBackoffMs: number;
  maxRetryBackoffMs: number;
}

export interface RedisOptions {
  pools: RedisPoolOptions[];
}

const SERVICE_RULES: ObjectRules = { connection_pools: 'array', clusters: 'custom' };

/** go-redis pool tuning that has no counterpart with one pipelined ioredis connection. */
const NO_EFFECT = ['pool_size', 'max_active_conns', 'max_idle_conns', 'min_idle_conns', 'conn_max_idle_time', 'conn_max_life_time', 'pool_timeout', 'opentelemetry'] as const;

const POOL_RULES: ObjectRules = {
  name: 'string',
  address: 'string',
  db: { kind: 'integer', min: 0 },
  user_name: 'string',
  password: 'string',
  client_name: 'string',
  dial_timeout: 'duration',
  max_retries: { kind: 'integer', min: -1 },
  min_retry_backoff: 'duration',
  max_retry_backoff: 'duration',
  pool_size: { kind: 'integer', min: 0 },
  max_active_conns: { kind: 'integer', min: 0 },
  max_idle_conns: { kind: 'integer', min: 0 },
  min_idle_conns: { kind: 'integer', min: 0 },
  conn_max_idle_time: 'duration',
  conn_max_life_time: 'duration',
  pool_timeout: 'duration',
  opentelemetry: 'object',
  tls: 'custom',
};

export const redis: Namespace<RedisOptions> = {
  name: NAME,
  scopes: ['service'],
  order: 501,
  // Configures connections only; the rate limits using a pool are the policies.
  policy: false,
  parse(raw, path, c) {
    if (!expectObject(c, raw, path, 'an object with "connection_pools"')) return undefined;
    const before = c.errors.length;
    const valid = checkFields(c, raw, path, SERVICE_RULES, 'the "redis" namespace');
    if ('clusters' in raw) c.error([...path, 'clusters'], 'connection_pools (Redis clusters are not supported by this version)', 'clusters');
    const pools: RedisPoolOptions[] = [];
    const seen = new Set<string>();
    if (valid.has('connection_pools')) {
      (raw.connection_pools as unknown[]).forEach((entry, i) => {
        const at = [...path, 'connection_pools', i];
        const pool = parsePool(c, entry, at);
        if (!pool) return;
        if (seen.has(pool.name)) c.error([...at, 'name'], 'a pool name used once', `${JSON.stringify(pool.name)} (already used)`);
        seen.add(pool.name);
        pools.push(pool);
      });
    }
    return c.errors.length > before ? undefined : { pools };
  },
};

function parsePool(c: IssueCollector, raw: unknown, at: JsonPath): RedisPoolOptions | undefined {
  if (!expectObject(c, raw, at, 'an object with "name" and "address"')) return undefined;
  const before = c.errors.length;
  const valid = checkFields(c, raw, at, POOL_RULES, 'a Redis connection pool');
  for (const key of ['name', 'address'] as const) {
    if (!(key in raw)) c.error([...at, key], `"${key}" (required)`, 'missing');
  }
  if (valid.has('name') && raw.name === '') c.invalid([...at, 'name'], 'a non-empty pool name', raw.name);
  let host = '';
  let port = 0;
  if (valid.has('address')) {
    const hp = parseHostPort(raw.address as string);
    if (!hp) c.invalid([...at, 'address'], 'host:port, such as "redis.example.com:6379"', raw.address);
    else ({ host, port } = hp);
  }
  if ('tls' in raw) c.error([...at, 'tls'], 'no "tls" (TLS to Redis is not supported by this version)', 'tls');
  for (const key of NO_EFFECT) {
    if (valid.has(key)) c.warning([...at, key], 'nothing (Portico multiplexes every Redis command on one pipelined connection per pool: this setting has no effect)', key);
  }
  const ms = (key: string, dflt: number) => (valid.has(key) ? (parseDuration(raw[key] as string) as number) : dflt);
  const minBackoff = ms('min_retry_backoff', 8);
  const maxBackoff = ms('max_retry_backoff', 512);
  if (valid.has('min_retry_backoff') && valid.has('max_retry_backoff') && minBackoff > maxBackoff) {
    c.invalid([...at, 'min_retry_backoff'], `at most max_retry_backoff (${raw.max_retry_backoff as string})`, raw.min_retry_backoff);
  }
  if (c.errors.length > before) return undefined;
  const str = (key: string) => (valid.has(key) ? (raw[key] as string) : undefined);
  return {
    name: raw.name as string,
    host,
    port,
    db: valid.has('db') ? (raw.db as number) : 0,
    username: str('user_name'),
    password: str('password'),
    clientName: str('client_name'),
    dialTimeoutMs: ms('dial_timeout', 5000) || 5000,
    maxRetries: valid.has('max_retries') ? (raw.max_retries as number) : 3,
    minRetryBackoffMs: minBackoff,
    maxRetryBackoffMs: maxBackoff,
  };
}

/** The pool named `name` in the service's `redis` namespace, if any. */
export function findPool(options: RedisOptions | undefined, name: string): RedisPoolOptions | undefined {
  return options?.pools.find((p) => p.name === name);
}

/** The shared client of `pool` for this process (created on first use, disconnected when no plan holds it). */
export function redisClient(state: StateScope, pool: RedisPoolOptions): Redis {
  const digest = pool.password === undefined ? undefined : sha256Hex(pool.password);
  const key = stateKey(NAME, 'client', { ...pool, password: digest });
  return state.get(key, () => createClient(pool), (client) => client.disconnect());
}

/** ioredis, loaded by the first configuration with a Redis pool (shared/lazy-require.ts). */
const ioredis = lazyRequire<typeof import('ioredis')>('ioredis');

function createClient(pool: RedisPoolOptions): Redis {
  const client = new (ioredis().Redis)({
    host: pool.host,
    port: pool.port,
    db: pool.db,
    username: pool.username,
    password: pool.password,
    connectionName: pool.clientName,
    connectTimeout: pool.dialTimeoutMs,
    // Fail fast: nothing waits for a connection; callers bound each command themselves.
    enableOfflineQueue: false,
    // No resend by ioredis after a reconnection: a late command would take a token for a
    // request already answered. takeTokens() retries within the decision's bound instead.
    maxRetriesPerRequest: 0,
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(pool.maxRetryBackoffMs, pool.minRetryBackoffMs * 2 ** Math.min(times, 20)),
  });
  let down = false;
  client.on('error', (err: Error) => {
    if (down) return;
    down = true;
    log('warn', 'redis connection failed', { pool: pool.name, address: `${pool.host}:${pool.port}`, error: err.message });
  });
  client.on('ready', () => {
    if (down) log('info', 'redis connection restored', { pool: pool.name });
    down = false;
  });
  return client;
}
