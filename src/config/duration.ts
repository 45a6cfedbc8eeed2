// Go duration strings (time.ParseDuration) converted to milliseconds.
// KrakenD writes every timeout and TTL this way: "300ms", "2s", "1m30s", "1.5h".

/** The `expected` text used by validation for any duration field. */
export const DURATION_EXPECTED = 'a Go duration such as "2s", "500ms" or "1m30s"';

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3, // U+00B5 micro sign
  'μs': 1e-3, // U+03BC greek mu
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const COMPONENT = /^(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/;

/**
 * Parses a Go duration ("1m30s", "1.5s", "500us") into milliseconds, possibly
 * fractional. Returns undefined for anything Go would reject, and also for
 * negative durations: no KrakenD setting Portico implements means anything
 * with a negative value. "0" alone is accepted, as in Go.
 */
export function parseDuration(text: string): number | undefined {
  let rest = text;
  if (rest.startsWith('+')) rest = rest.slice(1);
  if (rest === '0') return 0;
  if (rest === '') return undefined;
  let total = 0;
  while (rest !== '') {
    const m = COMPONENT.exec(rest);
    if (!m) return undefined;
    const whole = m[1] ?? '';
    const frac = m[2] ?? '';
    if (whole === '' && frac === '') return undefined; // ".s" or a bare unit
    const value = Number(`${whole || '0'}.${frac || '0'}`);
    total += value * (UNIT_MS[m[3] as string] as number);
    rest = rest.slice(m[0].length);
  }
  return Number.isFinite(total) ? total : undefined;
}
