// Readable output of `portico ctl` (tables) and of the configuration diff (`ctl diff`, `portico diff`).

import type { NodeView } from './admin-api.ts';
import type { ConfigMeta } from './protocol.ts';
import type { ConfigDiff, FieldChange, NamespaceChanges } from './diff.ts';

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
  return renderConfigDiff(`version ${from} -> ${to}`, d);
}

/** The readable diff of `portico diff` and `portico ctl diff`: one line per change, secrets never shown. */
export function renderConfigDiff(title: string, d: ConfigDiff): string {
  if (d.identical) return `${title}: identical\n`;
  const e = d.endpoints;
  const counts = [
    e.added.length ? `${e.added.length} added` : '',
    e.removed.length ? `${e.removed.length} removed` : '',
    e.changed.length ? `${e.changed.length} changed` : '',
  ].filter(Boolean);
  const summary = [counts.length ? `endpoints: ${counts.join(', ')}` : '', d.service.changed ? 'service settings changed' : ''].filter(Boolean);
  const lines = [`${title}: changed${summary.length ? ` (${summary.join('; ')})` : ''}`];
  if (d.service.changed) {
    lines.push('service:');
    fieldLines(d.service.fields, '  ', lines);
    namespaceLines(d.service.namespaces, '  ', lines);
  }
  for (const key of e.added) lines.push(`+ ${key}`);
  for (const key of e.removed) lines.push(`- ${key}`);
  for (const c of e.changed) {
    lines.push(`~ ${c.endpoint}`);
    fieldLines(c.fields, '    ', lines);
    namespaceLines(c.namespaces, '    ', lines);
    for (const b of c.backends) {
      const mark = b.change === 'added' ? '+' : b.change === 'removed' ? '-' : '~';
      const moved = b.old_index === undefined ? '' : ` (was [${b.old_index}])`;
      lines.push(`    ${mark} backend[${b.index}]${moved} ${b.host === null ? '(top-level host)' : b.host.join(',')} ${b.url_pattern ?? '?'}`);
      if (b.fields) fieldLines(b.fields, '        ', lines);
      if (b.namespaces) namespaceLines(b.namespaces, '        ', lines);
    }
    if (c.backends_reordered) lines.push('    backends reordered (their answers merge in the new order)');
  }
  return lines.join('\n') + '\n';
}

function fieldLines(fields: FieldChange[], indent: string, lines: string[]): void {
  for (const f of fields) {
    const path = f.path === '' ? 'value' : f.path;
    const inherited = f.inherited_by ? ` (inherited by ${f.inherited_by} endpoint${f.inherited_by === 1 ? '' : 's'})` : '';
    let text: string;
    if (f.secret) text = f.change === 'changed' ? `~ ${path}: changed (secret, not shown)` : `${f.change === 'added' ? '+' : '-'} ${path}: (secret, not shown)`;
    else if (f.change === 'added') text = `+ ${path}: ${shown(f.to)}`;
    else if (f.change === 'removed') text = `- ${path}: ${shown(f.from)}`;
    else text = `~ ${path}: ${shown(f.from)} -> ${shown(f.to)}`;
    lines.push(indent + text + inherited);
  }
}

function namespaceLines(n: NamespaceChanges, indent: string, lines: string[]): void {
  for (const name of n.added) lines.push(`${indent}+ namespace ${name}`);
  for (const name of n.removed) lines.push(`${indent}- namespace ${name}`);
  for (const c of n.changed) {
    lines.push(`${indent}~ namespace ${c.namespace}`);
    fieldLines(c.fields, indent + '    ', lines);
  }
}

const MAX_VALUE_CHARS = 100;

function shown(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS - 3)}...` : text;
}

function seconds(s: number): string {
  const n = Math.round(s);
  return n < 120 ? `${n}s ago` : n < 7200 ? `${Math.round(n / 60)}m ago` : `${Math.round(n / 3600)}h ago`;
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' / ');
}
