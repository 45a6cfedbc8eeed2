// Declarative type checks for the keys of one configuration object. The same
// table lists the known keys, so anything else is reported as unknown.

import { DURATION_EXPECTED, parseDuration } from './duration.ts';
import { isPlainObject, type JsonPath } from './json-path.ts';
import type { IssueCollector } from './issues.ts';

export type FieldKind =
  | 'string'
  | 'boolean'
  | 'integer'
  | 'number'
  | 'duration'
  | 'object'
  | 'array'
  | 'string[]'
  | 'integer[]'
  | 'any'
  /** Known key whose checks the caller does itself. */
  | 'custom';

export interface FieldRule {
  kind: FieldKind;
  min?: number;
  max?: number;
  /** For strings: the accepted values, case-sensitive. */
  oneOf?: readonly string[];
}

export type ObjectRules = Readonly<Record<string, FieldKind | FieldRule>>;

export function quoteList(values: readonly string[]): string {
  const quoted = values.map((v) => JSON.stringify(v));
  return quoted.length <= 2 ? quoted.join(' or ') : `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}`;
}

function integerExpectation(rule: FieldRule): string {
  if (rule.min !== undefined && rule.max !== undefined) return `an integer from ${rule.min} to ${rule.max}`;
  if (rule.min === 1) return 'a positive integer';
  if (rule.min !== undefined) return `an integer >= ${rule.min}`;
  return 'an integer';
}

/**
 * Checks one value against its rule; reports and returns false when it does
 * not fit. Array elements are reported one by one with their own path.
 */
export function checkValue(c: IssueCollector, value: unknown, path: JsonPath, rule: FieldRule): boolean {
  switch (rule.kind) {
    case 'any':
    case 'custom':
      return true;
    case 'string':
      if (typeof value !== 'string') return fail(c, path, 'a string', value);
      if (rule.oneOf && !rule.oneOf.includes(value)) return fail(c, path, `one of ${quoteList(rule.oneOf)}`, value);
      return true;
    case 'boolean':
      return typeof value === 'boolean' || fail(c, path, 'true or false', value);
    case 'number':
      return (typeof value === 'number' && Number.isFinite(value)) || fail(c, path, 'a number', value);
    case 'integer': {
      const ok =
        typeof value === 'number' &&
        Number.isInteger(value) &&
        (rule.min === undefined || value >= rule.min) &&
        (rule.max === undefined || value <= rule.max);
      return ok || fail(c, path, integerExpectation(rule), value);
    }
    case 'duration':
      return (typeof value === 'string' && parseDuration(value) !== undefined) || fail(c, path, DURATION_EXPECTED, value);
    case 'object':
      return isPlainObject(value) || fail(c, path, 'an object', value);
    case 'array':
      return Array.isArray(value) || fail(c, path, 'an array', value);
    case 'string[]':
    case 'integer[]': {
      const itemKind = rule.kind === 'string[]' ? 'string' : 'integer';
      if (!Array.isArray(value)) return fail(c, path, `an array of ${itemKind}s`, value);
      let ok = true;
      value.forEach((item, i) => {
        if (!checkValue(c, item, [...path, i], { kind: itemKind })) ok = false;
      });
      return ok;
    }
  }
}

function fail(c: IssueCollector, path: JsonPath, expected: string, value: unknown): false {
  c.invalid(path, expected, value);
  return false;
}

export function ruleOf(rule: FieldKind | FieldRule): FieldRule {
  return typeof rule === 'string' ? { kind: rule } : rule;
}

/**
 * Type-checks every known key present in `obj` and reports unknown keys.
 * Returns the keys whose values passed, so callers run semantic checks only on
 * well-typed values.
 */
export function checkFields(
  c: IssueCollector,
  obj: Record<string, unknown>,
  path: JsonPath,
  rules: ObjectRules,
  where: string,
): Set<string> {
  const valid = new Set<string>();
  const known = Object.keys(rules);
  for (const [key, value] of Object.entries(obj)) {
    const rule = rules[key];
    if (rule === undefined) {
      c.unknownKey([...path, key], where, known);
      continue;
    }
    if (checkValue(c, value, [...path, key], ruleOf(rule))) valid.add(key);
  }
  return valid;
}

/** Reports `value` as invalid unless it is a plain object; used for nested objects. */
export function expectObject(c: IssueCollector, value: unknown, path: JsonPath, expected: string): value is Record<string, unknown> {
  if (isPlainObject(value)) return true;
  c.invalid(path, expected, value);
  return false;
}
