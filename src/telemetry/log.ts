// Structured logs: one JSON object per line on stderr. Kept dependency-free
// and tiny until the telemetry work brings pino and its async destination.

export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

let threshold = ORDER[(process.env.PORTICO_LOG_LEVEL as Level) ?? 'info'] ?? ORDER.info;

export function setLogLevel(level: Level): void {
  threshold = ORDER[level];
}

export function logLevel(): Level {
  return (Object.keys(ORDER) as Level[]).find((l) => ORDER[l] === threshold) ?? 'info';
}

export function log(level: Level, msg: string, fields?: Record<string, unknown>): void {
  if (ORDER[level] < threshold) return;
  const line = JSON.stringify({ level, time: new Date().toISOString(), msg, ...fields });
  process.stderr.write(line + '\n');
}

/** Lines of one throttle key logged one by one per second; the rest are counted. */
export const THROTTLED_LINES_PER_SECOND = 20;
/** Keys are a fixed set chosen by the code (error codes), never client input. */
const budgets = new Map<string, { windowStart: number; logged: number; suppressed: number }>();

/**
 * log(), but at most THROTTLED_LINES_PER_SECOND lines per second for `key`
 * (a flood of bad tokens must not flood the log): past the budget lines are
 * only counted, and the count is logged with the first line of that key in a
 * later second.
 */
export function throttledLog(key: string, level: Level, msg: string, fields?: Record<string, unknown>): void {
  if (ORDER[level] < threshold) return;
  const now = Date.now();
  let b = budgets.get(key);
  if (b === undefined) budgets.set(key, (b = { windowStart: now, logged: 0, suppressed: 0 }));
  if (now - b.windowStart >= 1000) {
    if (b.suppressed > 0) log(level, `${b.suppressed} more lines like the next one were not logged (${key})`, { key, suppressed: b.suppressed });
    b.windowStart = now;
    b.logged = 0;
    b.suppressed = 0;
  }
  if (++b.logged > THROTTLED_LINES_PER_SECOND) {
    b.suppressed++;
    return;
  }
  log(level, msg, fields);
}

/** Start every throttle budget afresh (tests that read the lines they cause). */
export function resetLogThrottle(): void {
  budgets.clear();
}
