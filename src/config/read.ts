// Reading values that validation already checked: each reader returns the
// value when it has the expected type, else undefined (or the neutral value).
// Used by normalize.ts and by each namespace's parse().

import { parseDuration } from './duration.ts';
import { isPlainObject } from './json-path.ts';

export type Raw = Record<string, unknown>;

export function obj(value: unknown): Raw {
  return isPlainObject(value) ? value : {};
}
export function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
export function strings(value: unknown): string[] | undefined {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : undefined;
}
export function bool(value: unknown): boolean {
  return value === true;
}
export function int(value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined;
}
/** Duration in ms; unset, invalid and zero all give 0. */
export function ms(value: unknown): number {
  return (typeof value === 'string' ? parseDuration(value) : undefined) ?? 0;
}
/** Cache-Control max-age is whole seconds (Go truncates the same way). */
export function seconds(value: unknown): number {
  return Math.floor(ms(value) / 1000);
}
