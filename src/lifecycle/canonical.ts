// The content hash of a configuration: sha256 of its canonical JSON (keys sorted
// at every level, no whitespace), so reformatting a file, reordering keys or
// switching JSON <-> YAML does not change it, and every producer (file, control
// plane, etcd) computes the same hash for the same content.

import { createHash } from 'node:crypto';

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return '[' + value.map(canonicalJson).join(',') + ']';
  const keys = Object.keys(value).sort();
  const parts: string[] = [];
  for (const k of keys) {
    const v = (value as Record<string, unknown>)[k];
    if (v === undefined) continue;
    parts.push(JSON.stringify(k) + ':' + canonicalJson(v));
  }
  return '{' + parts.join(',') + '}';
}

export function configHash(document: unknown): string {
  return createHash('sha256').update(canonicalJson(document)).digest('hex');
}
