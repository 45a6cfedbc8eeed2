// Structured logs through pino: one JSON object per line. Application lines
// go to stderr, access lines (access-log.ts) to stdout, unless the
// `telemetry/logging` namespace says otherwise (configureLog: level, prefix,
// logstash format, stdout, syslog).
//
// pino formats the lines; console-stream.ts writes them off the caller's
// path, in writes of whole lines of at most 4096 bytes, so the lines of
// `--workers N` processes sharing stdout and stderr never interleave.
// flushLog() waits for what is queued (worker exit, shutdown); what is left
// at process exit is written synchronously.

import pino, { type Logger } from 'pino';
import { ConsoleStream } from './console-stream.ts';
import { SyslogSender, type SyslogTarget } from './syslog.ts';

export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Where and how application lines are written (from `telemetry/logging`; defaults without it). */
export interface LogSettings {
  level: Level;
  /** Added to every application line as a "prefix" field. */
  prefix?: string;
  /** "json": level, time, msg, fields. "logstash": level (upper case), @timestamp, @version, message, fields. */
  format: 'json' | 'logstash';
  /** The console stream of application lines; "none" when they go to syslog only. */
  console: 'stderr' | 'stdout' | 'none';
  syslog?: SyslogTarget;
}

/** PORTICO_LOG_LEVEL, else info: the level when no configuration sets one. */
export function defaultLogLevel(): Level {
  const env = process.env.PORTICO_LOG_LEVEL as Level | undefined;
  return env !== undefined && env in ORDER ? env : 'info';
}

export function defaultLogSettings(): LogSettings {
  return { level: defaultLogLevel(), format: 'json', console: 'stderr' };
}

/** Tests: when set, every application line is handed here instead of being written. */
let redirect: ((line: string) => void) | undefined;

const consoles: Partial<Record<1 | 2, ConsoleStream>> = {};
function consoleStream(fd: 1 | 2): ConsoleStream {
  let c = consoles[fd];
  if (c === undefined) {
    c = consoles[fd] = new ConsoleStream(fd);
    c.onDropped = (n) => log('warn', `${n} log lines were dropped: the reader of ${fd === 1 ? 'stdout' : 'stderr'} stopped reading`, { dropped: n });
  }
  return c;
}

const NEEDS_METADATA: unique symbol = Symbol.for('pino.metadata');

/** What pino writes application lines to: the console stream and/or syslog. */
class AppOutput {
  readonly [NEEDS_METADATA] = true;
  /** Set by pino before each write: the line's level number. */
  lastLevel = 30;
  readonly console: ConsoleStream | undefined;
  readonly syslog: SyslogSender | undefined;

  constructor(console: ConsoleStream | undefined, syslog: SyslogSender | undefined) {
    this.console = console;
    this.syslog = syslog;
  }

  write(line: string): void {
    if (redirect) return redirect(line);
    this.console?.write(line);
    this.syslog?.send(this.lastLevel, line);
  }
}

const LOGSTASH_LEVEL: Record<string, string> = { debug: 'DEBUG', info: 'INFO', warn: 'WARNING', error: 'ERROR' };
const jsonLevel = (label: string) => ({ level: label });
const logstashLevel = (label: string) => ({ level: LOGSTASH_LEVEL[label] ?? label.toUpperCase() });
const isoTime = () => `,"time":"${new Date().toISOString()}"`;
const logstashTime = () => `,"@timestamp":"${new Date().toISOString()}","@version":1`;

function buildLogger(s: LogSettings, output: AppOutput): Logger {
  const logstash = s.format === 'logstash';
  return pino(
    {
      level: 'debug', // filtered by log() itself
      base: s.prefix === undefined ? null : { prefix: s.prefix },
      timestamp: logstash ? logstashTime : isoTime,
      formatters: { level: logstash ? logstashLevel : jsonLevel },
    },
    output,
  );
}

const defaults = defaultLogSettings();
let settingsKey = JSON.stringify(defaults);
let threshold = ORDER[defaults.level];
let messageKey = 'msg';
let output = new AppOutput(consoleStream(2), undefined);
let app = buildLogger(defaults, output);

/**
 * Apply `next` (undefined: the defaults) to this process's application
 * lines. Called when a plan starts serving, so a reload changes the settings
 * and one without `telemetry/logging` goes back to the defaults; the same
 * settings again change nothing (a level set with setLogLevel stays).
 */
export function configureLog(next: LogSettings | undefined): void {
  const s = next ?? defaultLogSettings();
  const key = JSON.stringify(s);
  if (key === settingsKey) return;
  const previous = output;
  settingsKey = key;
  threshold = ORDER[s.level];
  messageKey = s.format === 'logstash' ? 'message' : 'msg';
  const syslog = s.syslog ? new SyslogSender(s.syslog, (message) => consoleLog('warn', message)) : undefined;
  const console = s.console === 'none' ? undefined : consoleStream(s.console === 'stdout' ? 1 : 2);
  output = new AppOutput(console, syslog);
  app = buildLogger(s, output);
  previous.syslog?.close();
}

/** A line on stderr only (problems of the syslog sender itself must not loop back into it). */
function consoleLog(level: Level, msg: string): void {
  const line = JSON.stringify({ level, time: new Date().toISOString(), msg }) + '\n';
  if (redirect) redirect(line);
  else consoleStream(2).write(line);
}

export function setLogLevel(level: Level): void {
  threshold = ORDER[level];
}

export function logLevel(): Level {
  return (Object.keys(ORDER) as Level[]).find((l) => ORDER[l] === threshold) ?? 'info';
}

export function log(level: Level, msg: string, fields?: Record<string, unknown>): void {
  if (ORDER[level] < threshold) return;
  // The message right after level and time, then the fields (pino would put a message argument last).
  app[level]({ [messageKey]: msg, ...fields });
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

/**
 * Where access lines go: stdout, whatever `telemetry/logging` says (KrakenD
 * keeps its access log on stdout, in its own format). It is the console
 * stream application lines share with `stdout: true`, so their lines never
 * mix either.
 */
export function accessOutput(): { write(line: string): void } {
  return consoleStream(1);
}

/**
 * Wait (at most `timeoutMs`) until every line logged so far was written to
 * its console stream and handed to syslog: before a worker exits, and at the
 * end of a shutdown.
 */
export async function flushLog(timeoutMs = 5_000): Promise<void> {
  const waits = [consoles[1]?.idle(), consoles[2]?.idle(), output.syslog?.idle()];
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
    timer.unref();
  });
  await Promise.race([Promise.all(waits), deadline]);
  clearTimeout(timer);
}

/**
 * Tests: hand every application line to `sink` instead of writing it, until
 * called again with undefined.
 */
export function redirectLog(sink: ((line: string) => void) | undefined): void {
  redirect = sink;
}
