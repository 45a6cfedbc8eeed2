// `portico status`: a running instance's /__health, readable.

interface Health {
  status?: string;
  ready?: boolean;
  portico_version?: string;
  config?: { version: number; hash: string; source: string; applied_at: string; endpoints: number } | null;
  sync?: { state: string; last_success_seconds_ago: number | null; last_error: string | null; stale_after_seconds: number };
  rejected?: { version: number | null; hash: string | null; source: string; label: string; errors: string[]; at: string } | null;
}

/** Exit 0 when ok, 1 when degraded or not ready, 2 when unreachable. */
export async function status(url: string, asJson: boolean): Promise<number> {
  const base = url.replace(/\/+$/, '');
  const target = /\/__[a-z]+$/.test(base) ? base : `${base}/__health`;
  let h: Health;
  try {
    const res = await fetch(target, { signal: AbortSignal.timeout(5000) });
    h = (await res.json()) as Health;
  } catch (err) {
    process.stderr.write(`portico: cannot reach ${target}: ${(err as Error).message}\n`);
    return 2;
  }
  if (asJson) process.stdout.write(JSON.stringify(h, null, 2) + '\n');
  else process.stdout.write(render(base, h));
  return h.status === 'ok' && h.ready !== false ? 0 : 1;
}

function ago(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

function render(base: string, h: Health): string {
  const lines = [`Portico ${h.portico_version ?? '?'} at ${base}: ${h.status ?? '?'}${h.ready === false ? ' (not ready)' : h.ready ? ' (ready)' : ''}`];
  const c = h.config;
  if (c) lines.push(`  config    version ${c.version}, hash ${c.hash.slice(0, 12)}, from ${c.source}, applied ${ago(c.applied_at)}, ${c.endpoints} endpoint(s)`);
  const s = h.sync;
  if (s) {
    const last = s.last_success_seconds_ago === null ? 'never reached' : `last reached ${s.last_success_seconds_ago}s ago`;
    lines.push(`  sync      ${s.state}${s.state === 'disabled' ? '' : `, ${last}`}${s.last_error ? `, last error: ${s.last_error}` : ''}`);
  }
  const r = h.rejected;
  if (r) {
    lines.push(`  rejected  ${r.version !== null ? `version ${r.version} ` : ''}from ${r.source} (${r.label}) ${ago(r.at)}:`);
    for (const e of r.errors.slice(0, 10)) lines.push(`            ${e}`);
    if (r.errors.length > 10) lines.push(`            ... and ${r.errors.length - 10} more`);
  }
  return lines.join('\n') + '\n';
}
