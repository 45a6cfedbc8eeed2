// `telemetry/logging` (service): the level, prefix, format and destinations
// of the application log. It has no compile step: the serving side applies it
// (applyLogging) when a plan starts serving, so `portico check` never changes
// the process's logger, and a reload without it goes back to the defaults.

import { checkFields, expectObject, quoteList, type ObjectRules } from '../config/fields.ts';
import type { IssueCollector } from '../config/issues.ts';
import type { JsonPath } from '../config/json-path.ts';
import { parseHostPort } from '../config/host-port.ts';
import { bool, str } from '../config/read.ts';
import type { ServiceConfig } from '../config/types.ts';
import { configureLog, defaultLogLevel, type Level, type LogSettings } from '../telemetry/log.ts';
import { headerField } from '../telemetry/syslog.ts';
import { optionsOf, type Namespace } from './namespace.ts';

export interface LoggingOptions {
  /** Unset: PORTICO_LOG_LEVEL, else info. */
  level?: Level;
  prefix?: string;
  format: 'json' | 'logstash';
  stdout: boolean;
  syslog?: { host: string; port: number; facility: number };
}

/** KrakenD's levels (go-logging names, matched case-insensitively as it does). */
const LEVELS: Record<string, Level> = { DEBUG: 'debug', INFO: 'info', WARNING: 'warn', ERROR: 'error', CRITICAL: 'error' };
/** RFC 5424 facility codes. */
const FACILITIES: Record<string, number> = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9, authpriv: 10, ftp: 11,
  local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
};
const DEFAULT_FACILITY = 'local3';
const DEFAULT_SYSLOG_PORT = 514;
const DEFAULT_SYSLOG_HOST = '127.0.0.1';
const ADDRESS_EXPECTED = 'a syslog address "host:port" or "host" (port 514), e.g. "127.0.0.1:514" or "[::1]:514"';

const RULES: ObjectRules = {
  level: 'custom',
  prefix: 'string',
  stdout: 'boolean',
  syslog: 'boolean',
  syslog_facility: { kind: 'string', oneOf: Object.keys(FACILITIES) },
  syslog_address: 'custom',
  format: { kind: 'string', oneOf: ['default', 'logstash', 'custom'] },
  custom_format: 'string',
};

export const telemetryLogging: Namespace<LoggingOptions> = {
  name: 'telemetry/logging',
  scopes: ['service'],
  order: 0,
  policy: false,
  parse(raw, path, c) {
    if (!expectObject(c, raw, path, 'an object')) return undefined;
    const valid = checkFields(c, raw, path, RULES, 'the "telemetry/logging" namespace');
    let level: Level | undefined;
    if (raw.level !== undefined) {
      level = typeof raw.level === 'string' ? LEVELS[raw.level.toUpperCase()] : undefined;
      if (level === undefined) c.invalid([...path, 'level'], `one of ${quoteList(Object.keys(LEVELS))}`, raw.level);
    }
    const syslog = bool(raw.syslog);
    const address = raw.syslog_address === undefined ? { host: DEFAULT_SYSLOG_HOST, port: DEFAULT_SYSLOG_PORT } : syslogAddress(c, raw.syslog_address, [...path, 'syslog_address']);
    for (const key of ['syslog_facility', 'syslog_address']) {
      if (!syslog && raw[key] !== undefined) c.warning([...path, key], '"syslog": true for it to be used', `${key} without syslog: ignored`);
    }
    const format = str(raw.format);
    if (format === 'custom') {
      c.warning([...path, 'format'], '"default" or "logstash"', '"custom": custom_format patterns are not supported; lines are written as JSON (format "default")');
    } else if (raw.custom_format !== undefined) {
      c.warning([...path, 'custom_format'], '"format": "custom" for it to be used (and custom patterns are not supported)', 'custom_format without format "custom": ignored');
    }
    if (level === undefined && raw.level !== undefined) return undefined;
    if (address === undefined) return undefined;
    if (!valid.has('syslog_facility') && raw.syslog_facility !== undefined) return undefined;
    return {
      ...(level !== undefined ? { level } : {}),
      ...(valid.has('prefix') ? { prefix: raw.prefix as string } : {}),
      format: format === 'logstash' ? 'logstash' : 'json',
      stdout: bool(raw.stdout),
      ...(syslog ? { syslog: { ...address, facility: FACILITIES[str(raw.syslog_facility) ?? DEFAULT_FACILITY] } } : {}),
    };
  },
};

/** "host:port", "[v6]:port" or "host"; undefined (reported) when unusable. */
function syslogAddress(c: IssueCollector, value: unknown, at: JsonPath): { host: string; port: number } | undefined {
  if (typeof value !== 'string') {
    c.invalid(at, ADDRESS_EXPECTED, value);
    return undefined;
  }
  const address = parseHostPort(value, { defaultPort: DEFAULT_SYSLOG_PORT });
  if (!address) c.invalid(at, ADDRESS_EXPECTED, value);
  return address;
}

/** What the options mean for this process's logger (undefined options: the defaults). */
export function logSettings(o: LoggingOptions | undefined): LogSettings | undefined {
  if (o === undefined) return undefined;
  return {
    level: o.level ?? defaultLogLevel(),
    ...(o.prefix !== undefined ? { prefix: o.prefix } : {}),
    format: o.format,
    // KrakenD writes application lines only where stdout/syslog say; without
    // either, Portico keeps them on stderr rather than writing them nowhere.
    console: o.stdout ? 'stdout' : o.syslog ? 'none' : 'stderr',
    ...(o.syslog ? { syslog: { ...o.syslog, appName: o.prefix === undefined ? 'portico' : headerField(o.prefix, 48) } } : {}),
  };
}

/** Apply the logging settings of `config` to this process (a plan of it starts serving). */
export function applyLogging(config: ServiceConfig): void {
  configureLog(logSettings(optionsOf(config.namespaces, telemetryLogging)));
}
