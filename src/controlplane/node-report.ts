// Checking what nodes send (POST /v1/nodes/{id}/report) and what the stores
// read back, field by field, so a bad report is a clear 400 and never stored.

import type { NodeRecord, NodeReport, NodeStatus } from './protocol.ts';

const STATUSES: readonly NodeStatus[] = ['ok', 'degraded', 'rejected', 'starting'];
const HASH = /^[0-9a-f]{64}$/;
/** Longer rejection messages are cut (with a note) rather than refused. */
export const MAX_ERROR_CHARS = 16 * 1024;

export type Checked<T> = { ok: true; value: T } | { ok: false; errors: string[] };

export function checkNodeReport(body: unknown): Checked<NodeReport> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return { ok: false, errors: ['expected a JSON object {applied_version, hash, status, rejected_version, error}'] };
  }
  const b = body as Record<string, unknown>;
  const errors: string[] = [];
  const version = (key: string) => {
    const v = b[key];
    if (v === null || (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0)) return v as number | null;
    errors.push(`${key}: expected a version (an integer >= 0) or null, found ${describe(v)}`);
    return null;
  };
  const applied_version = version('applied_version');
  const rejected_version = version('rejected_version');
  if (!(b.hash === null || (typeof b.hash === 'string' && HASH.test(b.hash)))) {
    errors.push(`hash: expected a sha256 hex digest or null, found ${describe(b.hash)}`);
  }
  if (!STATUSES.includes(b.status as NodeStatus)) {
    errors.push(`status: expected one of ${STATUSES.join(', ')}, found ${describe(b.status)}`);
  }
  let error = b.error;
  if (error !== null && typeof error !== 'string') errors.push(`error: expected a string or null, found ${describe(error)}`);
  if (typeof error === 'string' && error.length > MAX_ERROR_CHARS) {
    error = `${error.slice(0, MAX_ERROR_CHARS)}... (${error.length - MAX_ERROR_CHARS} more characters cut)`;
  }
  if (errors.length) return { ok: false, errors };
  return {
    ok: true,
    value: { applied_version, hash: b.hash as string | null, status: b.status as NodeStatus, rejected_version, error: error as string | null },
  };
}

/** A stored NodeRecord, or undefined when the text is not one. */
export function parseNodeRecord(text: string): NodeRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const checked = checkNodeReport(v);
  if (!checked.ok) return undefined;
  const r = v as Record<string, unknown>;
  if (typeof r.node !== 'string' || typeof r.last_seen !== 'string') return undefined;
  return { node: r.node, ...checked.value, last_seen: r.last_seen };
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing (the key is missing)';
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 60)}...` : s;
}
