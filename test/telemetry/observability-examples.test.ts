// examples/observability/: every PromQL query of the Grafana dashboard names
// metrics that a real gateway serves, and prometheus.yml scrapes the port and
// path that the example's README tells the user to run.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { parser } from '@prometheus-io/lezer-promql';
import { startDemoBackends } from '../../examples/quickstart/backends.ts';
import { get } from '../helpers/http.ts';
import { stopCli } from '../helpers/lifecycle-support.ts';
import { managementPort, sample } from '../helpers/metrics.ts';
import { startCli, writeConfigFile, type Running } from '../helpers/process.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DIR = 'examples/observability/';
const read = (name: string) => readFileSync(ROOT + DIR + name, 'utf8');

// --- metric names in PromQL --------------------------------------------------

/** Grafana's interval variables, as a duration PromQL accepts (other variables belong inside label matcher strings). */
const grafanaIntervals = (expr: string) => expr.replace(/\$(?:__(?:rate_interval|interval|range)\b|\{__(?:rate_interval|interval|range)\})/g, '5m');

/** The metric names a PromQL expression selects (by name, or by a `__name__="..."` matcher); throws if it is not PromQL. */
function metricNames(expr: string): string[] {
  const text = grafanaIntervals(expr);
  const names = new Set<string>();
  const cursor = parser.parse(text).cursor();
  do {
    if (cursor.type.isError) throw new Error(`not PromQL at offset ${cursor.from}: ${expr}`);
    if (cursor.name === 'VectorSelector') {
      const id = cursor.node.getChild('Identifier');
      if (id) names.add(text.slice(id.from, id.to));
    } else if (cursor.name === 'UnquotedLabelMatcher') {
      const label = cursor.node.getChild('LabelName');
      const value = cursor.node.getChild('StringLiteral');
      if (label && value && cursor.node.getChild('MatchOp')?.getChild('EqlSingle') && text.slice(label.from, label.to) === '__name__') {
        names.add(text.slice(value.from + 1, value.to - 1));
      }
    }
  } while (cursor.next());
  return [...names];
}

/** Every name a scrape serves: sample names, and the series names of each declared family (a histogram's: _bucket, _sum, _count). */
function servedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\w+)$/.exec(line);
    if (type) {
      const [, name, kind] = type;
      if (kind === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
      else names.add(name);
      if (kind === 'summary') for (const s of ['_sum', '_count']) names.add(name + s);
      continue;
    }
    const s = /^([a-zA-Z_:][\w:]*)[{ ]/.exec(line);
    if (s) names.add(s[1]);
  }
  return names;
}

/** "<where>: <name>" for every metric an expression names that the scrape does not serve. */
function unserved(queries: { where: string; expr: string }[], served: Set<string>): string[] {
  return queries.flatMap((q) => metricNames(q.expr).filter((n) => !served.has(n)).map((n) => `${q.where}: ${n}`));
}

describe('metricNames (the PromQL metric extractor)', () => {
  it('finds the selected metrics and nothing else', () => {
    const cases: [string, string[]][] = [
      ['sum by (endpoint, status) (rate(portico_requests_total{job=~"$job", status=~"5.."}[$__rate_interval]))', ['portico_requests_total']],
      ['histogram_quantile(0.95, sum by (le, endpoint) (rate(x_seconds_bucket{a="b{c}[d] e(f)"}[5m])))', ['x_seconds_bucket']],
      ['sum(rate(a_sum[1m])) without (instance) / sum(rate(a_count[1m])) without (instance)', ['a_sum', 'a_count']],
      ['a / on (instance) group_left (version, hash) b offset 1h30m', ['a', 'b']],
      ['count(count by (hash) (portico_config_info{job=~"$job"}))', ['portico_config_info']],
      ['label_replace(rate(x_total[1m]), "endpoint", "(none)", "endpoint", "")', ['x_total']],
      ['1e3 * foo > bool 0.5 and bar or vector(0) unless baz', ['foo', 'bar', 'baz']],
      ['up{job="portico"} == 1 or {__name__="named_total", a="b"}', ['up', 'named_total']],
      ['increase(portico_config_rejected_total{instance=~"${instance}"}[$__range])', ['portico_config_rejected_total']],
      ['topk(5, sum by (origin) (portico_upstream_connections))', ['portico_upstream_connections']],
    ];
    for (const [expr, names] of cases) assert.deepEqual(metricNames(expr), names, expr);
  });

  it('refuses what is not PromQL (unbalanced parentheses, a Grafana variable outside a string)', () => {
    assert.throws(() => metricNames('sum(rate(portico_requests_total[5m])'), /not PromQL/);
    assert.throws(() => metricNames('rate(portico_requests_total[5m]) > $threshold'), /not PromQL/);
  });

  it('reports a query naming a metric that is not served', () => {
    const served = servedNames('# HELP h_seconds x\n# TYPE h_seconds histogram\n# TYPE c_total counter\nc_total{a="1"} 3\n# TYPE g gauge\n');
    assert.deepEqual(unserved([{ where: 'ok', expr: 'histogram_quantile(0.9, sum by (le) (rate(h_seconds_bucket[5m]))) + g + rate(c_total[1m])' }], served), []);
    assert.deepEqual(
      unserved(
        [
          { where: 'typo', expr: 'sum(rate(portico_nope_total{job="x"}[5m]))' },
          { where: 'counter has no buckets', expr: 'histogram_quantile(0.9, rate(c_total_bucket[5m]))' },
          { where: 'histogram has no plain series', expr: 'h_seconds' },
        ],
        served,
      ),
      ['typo: portico_nope_total', 'counter has no buckets: c_total_bucket', 'histogram has no plain series: h_seconds'],
    );
  });
});

// --- the example, against a real gateway -------------------------------------

interface Panel {
  type: string;
  title: string;
  id: number;
  datasource?: { type: string; uid: string };
  targets?: { expr: string; datasource?: { uid: string } }[];
  panels?: Panel[];
}

const dashboard = JSON.parse(read('grafana-dashboard.json')) as {
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown; definition?: string }[] };
};

/** Every query of the dashboard: panel targets, and the selectors of label_values() variables. */
function dashboardQueries(): { where: string; expr: string }[] {
  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  const out = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr })));
  for (const v of dashboard.templating.list.filter((v) => v.type === 'query')) {
    const q = typeof v.query === 'string' ? v.query : (v.query as { query: string }).query;
    const m = /^label_values\((.*),\s*\w+\)$/.exec(q);
    assert.ok(m, `variable ${v.name}: a label_values(selector, label) query`);
    out.push({ where: `variable $${v.name}`, expr: m[1] });
  }
  return out;
}

/** The `portico run` command the README tells the user to start, as arguments. */
function readmeRunArgs(): string[] {
  const line = read('README.md').split('\n').find((l) => /\bportico run\b.*--management-port/.test(l));
  assert.ok(line, 'the README shows a `portico run ... --management-port` command');
  const words = line.replace(/#.*$/, '').replace(/&\s*$/, '').trim().split(/\s+/);
  return words.slice(words.indexOf('run'));
}

const argAfter = (args: string[], flag: string): string => {
  const i = args.indexOf(flag);
  assert.ok(i >= 0 && args[i + 1], `${flag} is given`);
  return args[i + 1];
};

describe('examples/observability against a real gateway', () => {
  let servers: Server[];
  let gw: Running;
  let base: string;
  let mgmt: string;
  let scrape: string;
  const runArgs = readmeRunArgs();
  const prometheus = parseYaml(read('prometheus.yml')) as {
    scrape_configs: { job_name: string; metrics_path?: string; static_configs: { targets: string[] }[] }[];
  };
  const job = prometheus.scrape_configs.find((j) => j.job_name === 'portico');
  const metricsPath = job?.metrics_path ?? '/metrics';

  before(async () => {
    // The demo backends on free ports; the example config is pointed at them, and otherwise run as the README says.
    servers = await startDemoBackends('127.0.0.1', 0, 0);
    const [users, orders] = servers.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`);
    const configFile = argAfter(runArgs, '-c');
    const text = readFileSync(ROOT + configFile, 'utf8').replaceAll('http://127.0.0.1:9101', users).replaceAll('http://127.0.0.1:9102', orders);
    const { file, cache } = writeConfigFile(JSON.parse(text));
    const args = runArgs.map((a, i) => (runArgs[i - 1] === '-c' ? file : runArgs[i - 1] === '--management-port' ? '0' : a));
    gw = await startCli([...args, '-p', '0', '--cache-dir', cache()]);
    base = `http://127.0.0.1:${gw.port}`;
    mgmt = `http://127.0.0.1:${managementPort(gw)}`;

    for (let i = 0; i < 5; i++) assert.equal((await get(base, '/users/1')).status, 200);
    assert.equal((await get(base, '/users/3')).status, 200, 'no such user: the users call fails, the orders call answers');
    assert.equal((await get(base, '/nowhere')).status, 404);
    const limited = [];
    for (let i = 0; i < 8; i++) limited.push((await get(base, '/users')).status);
    assert.ok(limited.includes(503), `the rate limit refused some (${limited})`);
    const r = await get(mgmt, metricsPath);
    assert.equal(r.status, 200);
    scrape = r.body;
  });

  after(async () => {
    await stopCli(gw);
    for (const s of servers) s.closeAllConnections();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  });

  it('the traffic shows in the scrape', () => {
    assert.equal(sample(scrape, 'portico_requests_total', { endpoint: '/users/{id}', status: '200' }), 6);
    assert.equal(sample(scrape, 'portico_requests_total', { endpoint: '', status: '404' }), 1);
    assert.equal(sample(scrape, 'portico_backend_calls_total', { endpoint: '/users/{id}', backend: '/users/{id}', outcome: 'status' }), 1);
    assert.ok((sample(scrape, 'portico_policy_rejections_total', { namespace: 'qos/ratelimit/router' }) ?? 0) >= 1);
    assert.equal(sample(scrape, 'portico_upstream_connections_limit', { origin: `http://127.0.0.1:${(servers[0].address() as AddressInfo).port}` }), 50);
  });

  it('every dashboard query names metrics the gateway serves', () => {
    const queries = dashboardQueries();
    assert.ok(queries.length >= 25, `${queries.length} queries`);
    assert.deepEqual(unserved(queries, servedNames(scrape)), []);
    const used = new Set(queries.flatMap((q) => metricNames(q.expr)));
    for (const family of [
      'portico_requests_total',
      'portico_request_duration_seconds_bucket',
      'portico_requests_in_flight',
      'portico_backend_calls_total',
      'portico_backend_call_duration_seconds_bucket',
      'portico_policy_rejections_total',
      'portico_upstream_connections',
      'portico_upstream_requests_queued',
      'portico_config_info',
      'portico_config_seconds_since_applied',
      'portico_config_seconds_since_sync',
      'portico_config_rejected_total',
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_p99_seconds',
    ]) {
      assert.ok(used.has(family), `the dashboard shows ${family}`);
    }
  });

  it('the dashboard is importable: a Prometheus data source variable used by every panel, unique ids, a layout', () => {
    assert.ok(dashboard.schemaVersion >= 36, 'a Grafana 10 schema');
    assert.ok(dashboard.uid && dashboard.title);
    const ds = dashboard.templating.list.find((v) => v.type === 'datasource');
    assert.equal(ds?.query, 'prometheus');
    const ref = '${' + ds!.name + '}';
    const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
    assert.equal(new Set(panels.map((p) => p.id)).size, panels.length, 'unique panel ids');
    for (const p of panels.filter((p) => p.type !== 'row')) {
      assert.equal(p.datasource?.uid, ref, `panel "${p.title}" uses the data source variable`);
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid ?? ref, ref);
      assert.ok((p as { gridPos?: unknown }).gridPos, `panel "${p.title}" has a position`);
    }
  });

  it('prometheus.yml scrapes the port and path the README runs, and that path answers Prometheus text', async () => {
    assert.ok(job, 'a `portico` scrape job');
    const targets = job.static_configs.flatMap((s) => s.targets);
    assert.equal(targets.length, 1);
    const [host, port] = targets[0].split(':');
    assert.equal(host, '127.0.0.1', 'the management listener binds loopback');
    assert.equal(port, argAfter(runArgs, '--management-port'), 'the port the README passes to --management-port');
    assert.equal(metricsPath, '/metrics');
    assert.ok(read('README.md').includes(`127.0.0.1:${port}${metricsPath}`), 'the README shows the same address');
    const r = await get(mgmt, metricsPath);
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.match(r.body, /^# HELP portico_requests_total /m);
    assert.match(r.body, /^# TYPE portico_requests_total counter$/m);
  });
});
