// `portico check --compat FILE`: every namespace a configuration uses, where,
// and what this build does with it: implemented, implemented with differences
// (its page says which), or not (an error for a policy or anything that changes
// how requests are served, ignored with a warning for telemetry and unknown names).

import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { formatIssue, loadConfigFile } from '../config/load.ts';
import { formatPath, isPlainObject, type JsonPath } from '../config/json-path.ts';
import { namespaceKind } from '../namespaces/fail-closed.ts';
import type { NamespaceScope } from '../namespaces/namespace.ts';
import { findNamespace } from '../namespaces/registry.ts';

const DOCS = fileURLToPath(new URL('../../docs/', import.meta.url));

/** Namespaces documented on a page named otherwise than after themselves. */
const SHARED_PAGES: Readonly<Record<string, string>> = {
  redis: 'namespaces/redis-rate-limits.md',
  'qos/ratelimit/router/redis': 'namespaces/redis-rate-limits.md',
  'qos/ratelimit/service': 'namespaces/redis-rate-limits.md',
  'qos/ratelimit/service/redis': 'namespaces/redis-rate-limits.md',
  'qos/circuit-breaker/http': 'namespaces/qos-circuit-breaker.md',
  'modifier/lua-endpoint': 'namespaces/modifier-lua.md',
  'modifier/lua-proxy': 'namespaces/modifier-lua.md',
  'modifier/lua-backend': 'namespaces/modifier-lua.md',
  'backend/amqp/consumer': 'namespaces/backend-amqp.md',
  'backend/amqp/producer': 'namespaces/backend-amqp.md',
  'backend/pubsub/publisher': 'namespaces/backend-pubsub.md',
  'backend/pubsub/subscriber': 'namespaces/backend-pubsub.md',
};

/** Namespaces the core reads, documented in configuration.md. */
const CORE = new Set(['router', 'proxy', 'backend/http', 'portico/server']);

export type CompatStatus = 'implemented' | 'differences' | 'misplaced' | 'unsupported' | 'ignored';

export interface CompatRow {
  namespace: string;
  path: string;
  scope: NamespaceScope;
  status: CompatStatus;
  /** What happens: refused (error) or served. */
  severity: 'ok' | 'warning' | 'error';
  note: string;
}

/** A namespace's page and whether it lists differences from KrakenD, read once per page. */
const pages = new Map<string, { page: string; differences: boolean } | undefined>();

function pageOf(name: string): { page: string; differences: boolean } | undefined {
  const page = SHARED_PAGES[name] ?? `namespaces/${name.replaceAll('/', '-')}.md`;
  if (!pages.has(page)) {
    pages.set(page, existsSync(DOCS + page) ? { page, differences: readFileSync(DOCS + page, 'utf8').includes('## Differences from KrakenD') } : undefined);
  }
  return pages.get(page);
}

function classify(name: string, scope: NamespaceScope): Omit<CompatRow, 'namespace' | 'path' | 'scope'> {
  const ns = findNamespace(name);
  if (ns && ns.scopes.includes(scope)) {
    if (CORE.has(name)) return { status: 'implemented', severity: 'ok', note: 'docs/configuration.md' };
    const doc = pageOf(name);
    if (doc?.differences) return { status: 'differences', severity: 'ok', note: `docs/${doc.page}#differences-from-krakend` };
    return { status: 'implemented', severity: 'ok', note: doc ? `docs/${doc.page}` : '' };
  }
  if (ns) {
    return ns.policy
      ? { status: 'misplaced', severity: 'error', note: `a policy that belongs at ${ns.scopes.join(' or ')} level: refused` }
      : { status: 'misplaced', severity: 'warning', note: `belongs at ${ns.scopes.join(' or ')} level: ignored here` };
  }
  switch (namespaceKind(name)) {
    case 'policy':
      return { status: 'unsupported', severity: 'error', note: 'a policy this version does not implement: refused' };
    case 'behaviour':
      return { status: 'unsupported', severity: 'error', note: 'changes how requests are served; not implemented: refused' };
    case 'legacy':
      return { status: 'unsupported', severity: 'error', note: 'a KrakenD 1.x/2.0 name: the v3 format renamed it' };
    case 'observing':
      return { status: 'ignored', severity: 'warning', note: 'telemetry or documentation not implemented: ignored' };
    case 'unknown':
      return { status: 'ignored', severity: 'warning', note: 'unknown namespace: ignored' };
  }
}

/** Every namespace of a parsed configuration document, in document order. */
export function compatRows(doc: unknown): CompatRow[] {
  const rows: CompatRow[] = [];
  const visit = (extra: unknown, path: JsonPath, scope: NamespaceScope) => {
    if (!isPlainObject(extra)) return;
    for (const name of Object.keys(extra)) {
      if (name.startsWith('@')) continue; // comment keys
      rows.push({ namespace: name, path: formatPath([...path, name]), scope, ...classify(name, scope) });
    }
  };
  if (!isPlainObject(doc)) return rows;
  visit(doc.extra_config, ['extra_config'], 'service');
  (Array.isArray(doc.endpoints) ? doc.endpoints : []).forEach((e: unknown, i) => {
    if (!isPlainObject(e)) return;
    visit(e.extra_config, ['endpoints', i, 'extra_config'], 'endpoint');
    (Array.isArray(e.backend) ? e.backend : []).forEach((b: unknown, j) => {
      if (isPlainObject(b)) visit(b.extra_config, ['endpoints', i, 'backend', j, 'extra_config'], 'backend');
    });
  });
  return rows;
}

const LABEL: Readonly<Record<CompatStatus, string>> = {
  implemented: 'implemented',
  differences: 'implemented, with differences',
  misplaced: 'misplaced',
  unsupported: 'NOT SUPPORTED',
  ignored: 'ignored',
};

/** The rows as a Markdown table (one line per namespace and scope, with where it is used). */
export function compatTable(rows: CompatRow[]): string {
  const groups = new Map<string, { row: CompatRow; paths: string[] }>();
  for (const r of rows) {
    const key = `${r.namespace}\u0000${r.scope}`;
    const g = groups.get(key);
    if (g) g.paths.push(r.path);
    else groups.set(key, { row: r, paths: [r.path] });
  }
  const lines = ['| namespace | level | uses | status | see |', '|---|---|---|---|---|'];
  for (const { row, paths } of groups.values()) {
    const where = paths.length === 1 ? `\`${paths[0]}\`` : `${paths.length} (first: \`${paths[0]}\`)`;
    lines.push(`| \`${row.namespace}\` | ${row.scope} | ${where} | ${LABEL[row.status]} | ${row.note} |`);
  }
  return lines.join('\n');
}

export async function checkCompat(file: string, json: boolean): Promise<number> {
  const result = await loadConfigFile(file);
  if (result.document === undefined) {
    for (const e of result.errors) process.stderr.write(formatIssue(e) + '\n');
    return 1;
  }
  const rows = compatRows(result.document);
  const refused = rows.filter((r) => r.severity === 'error').length;
  if (json) {
    process.stdout.write(JSON.stringify({ file, rows, errors: result.errors.map(formatIssue), refused }, null, 2) + '\n');
  } else {
    process.stdout.write(`${file}: ${rows.length} namespace use(s)\n\n${compatTable(rows)}\n\n`);
    const counts = new Map<CompatStatus, number>();
    for (const r of rows) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
    process.stdout.write([...counts].map(([s, n]) => `${LABEL[s]}: ${n}`).join(', ') + '\n');
    if (result.errors.length) process.stdout.write(`\n\`portico check\` finds ${result.errors.length} error(s) in this file (run it for each one's place).\n`);
  }
  return refused > 0 || result.errors.length > 0 ? 1 : 0;
}
