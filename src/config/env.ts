// Environment overrides of top-level keys, as KrakenD does with KRAKEND_<KEY>:
// PORTICO_PORT=9090 sets "port": 9090. Both prefixes work; PORTICO_ wins.
// Only scalar and list keys can be overridden (not endpoints or extra_config).
// Like KrakenD (viper), an empty variable counts as unset.

import { SERVICE_RULES } from './validate.ts';

export const ENV_PREFIXES = ['PORTICO_', 'KRAKEND_'] as const;

type EnvKind = 'string' | 'integer' | 'boolean' | 'list';

/**
 * Top-level keys that can come from the environment, and how their text is read:
 * every scalar key of the service schema, plus `host` as a list.
 */
export const ENV_KEYS: Readonly<Record<string, EnvKind>> = Object.fromEntries(
  Object.entries(SERVICE_RULES).flatMap(([key, rule]): [string, EnvKind][] => {
    if (key === 'host') return [[key, 'list']];
    const kind = typeof rule === 'string' ? rule : rule.kind;
    if (kind === 'string' || kind === 'duration') return [[key, 'string']];
    if (kind === 'integer' || kind === 'boolean') return [[key, kind]];
    return [];
  }),
);

export type Env = Readonly<Record<string, string | undefined>>;

export interface EnvOverrides {
  /** A shallow copy of the input with the overridden keys replaced. */
  value: Record<string, unknown>;
  /** Overridden key -> the variable it came from, e.g. port -> PORTICO_PORT. */
  sources: Map<string, string>;
}

// Go's strconv.ParseBool spellings, which KrakenD accepts.
const TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/**
 * Text that does not read as its key's type is kept as a string, so that
 * validation reports it (naming the variable) instead of it being dropped.
 */
export function readEnvValue(kind: EnvKind, text: string): unknown {
  switch (kind) {
    case 'string':
      return text;
    case 'integer':
      return /^[+-]?\d+$/.test(text.trim()) ? Number(text.trim()) : text;
    case 'boolean':
      return TRUE.has(text.trim()) ? true : FALSE.has(text.trim()) ? false : text;
    case 'list': {
      const trimmed = text.trim();
      if (trimmed.startsWith('[')) {
        try {
          return JSON.parse(trimmed) as unknown;
        } catch {
          return text;
        }
      }
      return trimmed.split(',').map((s) => s.trim()).filter((s) => s !== '');
    }
  }
}

export function applyEnvOverrides(raw: Record<string, unknown>, env: Env = process.env): EnvOverrides {
  const value: Record<string, unknown> = { ...raw };
  const sources = new Map<string, string>();
  for (const [key, kind] of Object.entries(ENV_KEYS)) {
    for (const prefix of ENV_PREFIXES) {
      const name = prefix + key.toUpperCase();
      const text = env[name];
      if (text === undefined || text === '') continue;
      value[key] = readEnvValue(kind, text);
      sources.set(key, name);
      break; // the first prefix (PORTICO_) wins
    }
  }
  return { value, sources };
}
