// Default values applied when a configuration leaves a setting out. KrakenD's
// defaults unless noted.

export const DEFAULT_PORT = 8080;
export const DEFAULT_TIMEOUT_MS = 2000;
export const DEFAULT_CACHE_TTL_SECONDS = 0;
export const DEFAULT_OUTPUT_ENCODING = 'json';
export const DEFAULT_MAX_IDLE_CONNECTIONS_PER_HOST = 250;

/**
 * Portico's own default, not KrakenD's (which is unlimited): a client gets 10s
 * to send its request headers. Without a limit, slowloris clients that trickle
 * headers byte by byte can hold every connection open. Applied when
 * read_header_timeout is unset or "0s".
 */
export const DEFAULT_READ_HEADER_TIMEOUT_MS = 10_000;

/** read_timeout, write_timeout, idle_timeout: 0 means unlimited, as in KrakenD. */
export const UNLIMITED_MS = 0;

/** Portico's own limits (namespace portico/server). */
export const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;
export const DEFAULT_MAX_BACKEND_BODY_BYTES = 64 * 1024 * 1024;

export const DEFAULT_METHOD = 'GET';
/** KrakenD forwards only Content-Type unless input_headers says otherwise. */
export const DEFAULT_INPUT_HEADERS: readonly string[] = ['Content-Type'];
export const DEFAULT_CONCURRENT_CALLS = 1;
export const DEFAULT_BACKEND_ENCODING = 'json';
/** KrakenD's Go TLS defaults: both bounds are TLS 1.3 unless configured. */
export const DEFAULT_TLS_VERSION = 'TLSv1.3';
