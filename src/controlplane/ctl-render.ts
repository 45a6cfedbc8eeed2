// Readable output of `portico ctl`: tables and the diff summary.

import type { NodeView } from './admin-api.ts';
import type { ConfigMeta } from './protocol.ts';
import type { ConfigDiff } from './diff.ts';

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function renderHistory(latest: number, total: number, configs: ConfigMeta[]): string {
  if (!configs.length) return 'no configuration has been published yet\n';
  const rows = configs.map((c) => [
    `${c.version}${c.version === latest ? '*' : ''}`,
    c.created_at.replace(/\.\d+Z$/, 'Z'),
    c.hash.slice(0, 12),
    c.author ?? '',
    oneLine(c.message ?? ''),
  ]);
  const more = total > configs.length ? `(${total - configs.length} older version(s) not shown; --limit N)\n` : '';
  return table(['VERSION', 'CREATED', 'HASH', 'AUTHOR', 'MESSAGE'], rows) + more;
}

export function renderNodes(latest: number, nodes: NodeView[]): string {
  if (!nodes.length) return `no node has reported yet (latest version: ${latest || 'none'})\n`;
  const rows = nodes.map((n) => [
    n.node,
    n.status,
    n.applied_version === null ? '-' : String(n.applied_version),
    n.behind === null ? '-' : String(n.behind),
    n.hash ? n.hash.slice(0, 12) : '-',
    seconds(n.seconds_since_seen),
    n.rejected_version === null ? '-' : `v${n.rejected_version}: ${oneLine(n.error ?? '').slice(0, 80)}`,
  ]);
  return `latest version: ${latest || 'none'}\n` + table(['NODE', 'STATUS', 'APPLIED', 'BEHIND', 'HASH', 'LAST SEEN', 'REJECTED'], rows);
}

export function renderDiff(from: number, to: number, d: ConfigDiff): string {
  const lines = [`version ${from} -> ${to}: ${d.identical ? 'identical' : 'changed'}`];
  if (d.service.changed) lines.push(`  service: ${d.service.keys.join(', ')}`);
  for (const e of d.endpoints.added) lines.push(`+ ${e}`);
  for (const e of d.endpoints.removed) lines.push(`- ${e}`);
  for (const c of d.endpoints.changed) {
    lines.push(`~ ${c.endpoint}${c.keys.length ? `: ${c.keys.join(', ')}` : ''}`);
    for (const b of c.backends) {
      const what = b.change === 'changed' ? `changed (${(b.keys ?? []).join(', ')})` : b.change;
      lines.push(`    backend[${b.index}] ${b.url_pattern ?? '?'}: ${what}`);
    }
  }
  return lines.join('\n') + '\n';
}

function seconds(s: number): string {
  const n = Math.round(s);
  return n < 120 ? `${n}s ago` : n < 7200 ? `${Math.round(n / 60)}m ago` : `${Math.round(n / 3600)}h ago`;
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' / ');
}
