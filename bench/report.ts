// Results of a benchmark run: their shape (also the JSON written to
// bench/results/), the tables printed per scenario, the ratios, and the
// targets of issue 5 section 2, each met or not met with its numbers.

import type { CompileTime } from './compile-time.ts';
import type { LoadgenResult } from './loadgen.ts';
import type { ScenarioId, SystemId } from './scenarios.ts';
import { LABELS } from './systems.ts';
import type { WrkResult } from './wrk.ts';

export interface SystemResult {
  system: SystemId;
  /** Saturation (wrk) rounds and paced latency (loadgen) rounds, in run order. */
  saturation: WrkResult[];
  latency: LoadgenResult[];
  /** Medians over rounds. */
  rps: number;
  p50Us: number;
  p99Us: number;
  /** Peak of the process tree's summed VmRSS (sampled), and the largest single-process VmHWM. */
  peakRssBytes: number;
  peakProcRssBytes: number;
  /** The largest sampled RssAnon of one process (private memory, without shared executable pages). */
  peakProcAnonBytes?: number;
  /** The paced run could not keep up with the offered rate (in most rounds). */
  overloaded: boolean;
  /** The second paced run, at ScenarioResult.porticoRate (only when Portico was overloaded at offeredRate). */
  atPorticoRate?: { latency: LoadgenResult[]; p50Us: number; p99Us: number; overloaded: boolean };
  problems: string[];
  /** CPUs used by processes outside the bench during each measurement (noise on a shared machine). */
  foreignCpu: { saturation: number[]; latency: number[] };
}

export interface ScenarioResult {
  id: ScenarioId;
  title: string;
  note?: string;
  offeredRate: number;
  rateFrom: SystemId;
  /** The Portico revision this scenario ran (the working tree may change during a run). */
  revision?: string;
  /** The rate of the second latency run (50% of Portico's own saturation), when there was one. */
  porticoRate?: number;
  systems: Partial<Record<SystemId, SystemResult>>;
  /** Systems that do not apply to this scenario. */
  na: SystemId[];
  /** Systems that failed to start or answered wrongly (with why). */
  failed: Partial<Record<SystemId, string>>;
}

export interface Target {
  name: string;
  met: boolean | undefined; // undefined: could not be measured
  detail: string;
}

export interface Report {
  date: string;
  /** The Portico commit measured, and whether src/ or bin/ had uncommitted changes. */
  revision: string;
  machine: { cpus: number; model: string; memoryGiB: number; kernel: string; node: string; nginx: string; wrk: string };
  settings: {
    rounds: number;
    durationS: number;
    warmupS: number;
    connections: number;
    wrkThreads: number;
    rateFraction: number;
    porticoArgs: string[];
    porticoWorkers: string;
    /** Worker processes of the nginx proxy (absent in older results: 1). */
    nginxWorkers?: number;
    quick: boolean;
  };
  compile: CompileTime[];
  checkWallMs: { file: string; ms: number }[];
  scenarios: ScenarioResult[];
  targets: Target[];
  totalSeconds: number;
}

export const SYSTEM_ORDER: SystemId[] = ['portico', 'portico-bun', 'nginx', 'fastify', 'direct'];

export function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const ms = (us: number) => (Number.isFinite(us) ? (us / 1000 >= 100 ? (us / 1000).toFixed(0) : (us / 1000).toFixed(2)) : '-');
const mb = (bytes: number) => (bytes > 0 ? (bytes / 1e6).toFixed(1) : '-');
const x = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}x` : '-');

function pad(cells: string[], widths: number[]): string {
  return cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
}

/** CPUs used by processes outside the bench, over every measurement of these scenarios. */
export function foreignSummary(scenarios: ScenarioResult[]): { median: number; max: number } {
  const all = scenarios.flatMap((s) => Object.values(s.systems).flatMap((r) => (r ? [...r.foreignCpu.saturation, ...r.foreignCpu.latency] : [])));
  return { median: all.length ? median(all) : 0, max: all.length ? Math.max(...all) : 0 };
}

export function scenarioTable(s: ScenarioResult, runRevision?: string): string {
  const lines: string[] = [];
  const rateLabel = s.rateFrom === 'portico' ? "Portico's own" : `${LABELS[s.rateFrom]}'s`;
  const second = s.porticoRate !== undefined;
  lines.push(`${s.title}${s.revision && s.revision !== runRevision ? `  [Portico ${s.revision}]` : ''}`);
  lines.push(`  p50/p99 at ${int(s.offeredRate)} req/s offered (${s.offeredRate > 0 ? `${pctOf(s)} of ${rateLabel} saturation rate` : 'not measured'})`);
  if (second) lines.push(`  p50/p99 @P at ${int(s.porticoRate!)} req/s offered (the same fraction of Portico's own saturation rate: Portico could not carry the first)`);
  const widths = second ? [21, 9, 9, 9, 9, 9, 9] : [21, 9, 9, 9, 9];
  const head = ['  system', 'req/s', 'p50 ms', 'p99 ms', ...(second ? ['p50 @P', 'p99 @P'] : []), 'RSS MB', 'notes'];
  lines.push(pad(head, [...widths, 0]));
  const blank = (v: string) => Array.from({ length: widths.length - 1 }, () => v);
  for (const id of SYSTEM_ORDER) {
    const r = s.systems[id];
    if (s.na.includes(id)) {
      lines.push(pad([`  ${LABELS[id]}`, ...blank('n/a')], widths));
      continue;
    }
    // A results file from before the system existed.
    if (!r && s.failed[id] === undefined) continue;
    if (!r) {
      lines.push(pad([`  ${LABELS[id]}`, 'failed', ...blank('').slice(1), s.failed[id] ?? ''], [...widths, 0]));
      continue;
    }
    const notes: string[] = [];
    if (id === 'direct') notes.push('RSS: the backend nginx');
    if (r.overloaded) notes.push(`overloaded: answered ${int(median(r.latency.map((l) => l.achievedRate)))} of ${int(s.offeredRate)} req/s`);
    if (r.atPorticoRate?.overloaded) notes.push('overloaded @P too');
    notes.push(...r.problems);
    const lat = (us: number, over: boolean | undefined) => (over ? 'overload' : ms(us));
    const cells = [`  ${LABELS[id]}`, int(r.rps), lat(r.p50Us, r.overloaded), lat(r.p99Us, r.overloaded)];
    if (second) {
      const a = r.atPorticoRate;
      cells.push(a ? lat(a.p50Us, a.overloaded) : '-', a ? lat(a.p99Us, a.overloaded) : '-');
    }
    cells.push(mb(r.peakRssBytes), notes.join('; '));
    lines.push(pad(cells, [...widths, 0]));
  }
  const ratio = (own: SystemId, other: SystemId) => {
    const p = s.systems[own];
    const o = s.systems[other];
    if (!p || !o) return undefined;
    let p99 = p.overloaded || o.overloaded ? `p99 n/a (${LABELS[p.overloaded ? own : other]} overloaded)` : `p99 ${x(p.p99Us / o.p99Us)}`;
    const a = p.atPorticoRate;
    const b = o.atPorticoRate;
    if (a && b && !a.overloaded && !b.overloaded) p99 += `, p99 @P ${x(a.p99Us / b.p99Us)}`;
    return `req/s ${x(p.rps / o.rps)}, ${p99}, peak RSS ${x(p.peakRssBytes / o.peakRssBytes)}`;
  };
  for (const [own, other] of [['portico', 'nginx'], ['portico', 'fastify'], ['portico-bun', 'nginx'], ['portico-bun', 'fastify'], ['portico-bun', 'portico']] as const) {
    const r = ratio(own, other);
    if (r) lines.push(`  ${LABELS[own]}/${other === 'portico' ? 'Portico on Node' : LABELS[other]}: ${r}`);
  }
  if (s.note) lines.push(`  note: ${s.note}`);
  const f = foreignSummary([s]);
  if (f.max >= 0.1) lines.push(`  noise: processes outside the bench used ${f.median.toFixed(2)} CPU (median; max ${f.max.toFixed(2)}) during these measurements`);
  const lags = Object.values(s.systems).flatMap((r) => (r ? [...r.latency, ...(r.atPorticoRate?.latency ?? [])].map((l) => l.sendLagMs.p99) : []));
  if (lags.length) {
    lines.push(
      `  load generator: its timer fired late by ${median(lags).toFixed(1)} ms at p99 (median over runs; max ${Math.max(...lags).toFixed(1)} ms)` +
        (Math.max(...lags) > 20 ? ' -- starved at times: latencies include some of its own delay' : ''),
    );
  }
  return lines.join('\n');
}

function pctOf(s: ScenarioResult): string {
  const ref = s.systems[s.rateFrom];
  return ref && ref.rps > 0 ? `${Math.round((100 * s.offeredRate) / ref.rps)}%` : '50%';
}

/** Issue 5 section 2, measured on this run. */
export function evaluateTargets(scenarios: ScenarioResult[], compile: CompileTime[]): Target[] {
  const get = (id: ScenarioId, sys: SystemId) => scenarios.find((s) => s.id === id)?.systems[sys];
  const out: Target[] = [];
  const ratioTarget = (name: string, num: SystemResult | undefined, den: SystemResult | undefined, factor: number, what: string) => {
    if (!num || !den) {
      out.push({ name, met: undefined, detail: 'not measured in this run' });
      return;
    }
    const r = num.rps / den.rps;
    out.push({ name, met: r >= factor, detail: `${int(num.rps)} req/s vs ${what} ${int(den.rps)} req/s = ${x(r)} (needs >= ${factor}x)` });
  };
  for (const size of ['1k', '64k'] as const) {
    const label = size === '1k' ? '1 KiB' : '64 KiB';
    ratioTarget(`(a) no-op ${label}: >= 0.5x nginx req/s`, get(`a-${size}`, 'portico'), get(`a-${size}`, 'nginx'), 0.5, 'nginx');
    ratioTarget(`(a) no-op ${label}: >= 2x @fastify/http-proxy req/s`, get(`a-${size}`, 'portico'), get(`a-${size}`, 'fastify'), 2, '@fastify/http-proxy');
  }
  for (const size of ['1k', '64k'] as const) {
    const label = size === '1k' ? '1 KiB' : '64 KiB';
    ratioTarget(`(b) json + allow ${label}: >= 0.4x nginx no-op req/s`, get(`b-${size}`, 'portico'), get(`a-${size}`, 'nginx'), 0.4, 'nginx no-op');
  }
  ratioTarget('(c) three-backend aggregate: >= 0.5x Portico (b) 1 KiB', get('c-agg', 'portico'), get('b-1k', 'portico'), 0.5, "Portico's (b)");
  ratioTarget('(e) JWT (RS256, cached JWKS) + CORS: >= 0.8x Portico (b) 1 KiB', get('e-jwt-cors', 'portico'), get('b-1k', 'portico'), 0.8, "Portico's (b)");
  ratioTarget('(f) per-client rate limit (local): >= 0.9x Portico (b) 1 KiB', get('f-ratelimit-local', 'portico'), get('b-1k', 'portico'), 0.9, "Portico's (b)");
  ratioTarget('(g) per-client rate limit (Redis): >= 0.5x Portico (b) 1 KiB', get('g-ratelimit-redis', 'portico'), get('b-1k', 'portico'), 0.5, "Portico's (b)");
  ratioTarget('(b) 1 KiB with metrics on (default): >= 0.9x telemetry off (h)', get('b-1k', 'portico'), get('h-telemetry-off', 'portico'), 0.9, 'telemetry off');
  ratioTarget('(i) metrics + tracing at 100% sampling: >= 0.6x telemetry off (h)', get('i-tracing', 'portico'), get('h-telemetry-off', 'portico'), 0.6, 'telemetry off');
  ratioTarget('(j) a Lua pre + post script (modifier/lua-proxy): >= 0.7x Portico (b) 1 KiB', get('j-lua', 'portico'), get('b-1k', 'portico'), 0.7, "Portico's (b)");
  ratioTarget('(k) one CEL check (validation/cel on a request header): >= 0.9x Portico (b) 1 KiB', get('k-cel', 'portico'), get('b-1k', 'portico'), 0.9, "Portico's (b)");
  ratioTarget('(l) a compared shadow backend (portico/shadow-compare): >= 0.5x Portico (b) 1 KiB', get('l-shadow', 'portico'), get('b-1k', 'portico'), 0.5, "Portico's (b)");
  ratioTarget('(m) a 90/10 traffic split with its rollback guard (portico/traffic-split): >= 0.9x Portico (b) 1 KiB', get('m-split', 'portico'), get('b-1k', 'portico'), 0.9, "Portico's (b)");

  for (const s of scenarios) {
    const p = s.systems.portico;
    const n = s.systems.nginx;
    if (s.na.includes('nginx')) continue;
    const name = `p99 at 50% of nginx's saturation, ${s.id}: within 2x nginx p99`;
    if (!p || !n) {
      out.push({ name, met: undefined, detail: 'not measured in this run' });
      continue;
    }
    const r = p.p99Us / n.p99Us;
    out.push({
      name,
      met: r <= 2 && !p.overloaded,
      detail: p.overloaded
        ? `Portico cannot sustain ${int(s.offeredRate)} req/s (answered ${int(median(p.latency.map((l) => l.achievedRate)))} req/s); nginx p99 ${ms(n.p99Us)} ms` +
          (p.atPorticoRate && n.atPorticoRate && !p.atPorticoRate.overloaded
            ? `. At ${int(s.porticoRate ?? 0)} req/s (half Portico's saturation): Portico p99 ${ms(p.atPorticoRate.p99Us)} ms vs nginx ${ms(n.atPorticoRate.p99Us)} ms = ${x(p.atPorticoRate.p99Us / n.atPorticoRate.p99Us)}`
            : '')
        : `${ms(p.p99Us)} ms vs nginx ${ms(n.p99Us)} ms at ${int(s.offeredRate)} req/s = ${x(r)} (needs <= 2x)`,
    });
  }

  const porticoRuns = scenarios
    .filter((s) => s.systems.portico)
    .map((s) => ({ id: s.id, bytes: s.systems.portico!.peakProcRssBytes, anon: s.systems.portico!.peakProcAnonBytes }));
  if (porticoRuns.length === 0) out.push({ name: 'peak RSS of one worker under load: <= 100 MB', met: undefined, detail: 'not measured in this run' });
  else {
    const worst = porticoRuns.reduce((a, b) => (b.bytes > a.bytes ? b : a));
    out.push({
      name: 'peak RSS of one worker under load: <= 100 MB',
      met: worst.bytes <= 100e6,
      detail:
        `largest VmHWM of a Portico process ${mb(worst.bytes)} MB (in ${worst.id}); per scenario: ${porticoRuns.map((r) => `${r.id} ${mb(r.bytes)}`).join(', ')}` +
        (worst.anon ? `; private memory (RssAnon, sampled) at most ${mb(Math.max(...porticoRuns.map((r) => r.anon ?? 0)))} MB, the rest being the node executable's and libraries' file pages, shared by every process` : ''),
    });
  }
  if (compile.length === 0) out.push({ name: '1,000-endpoint config compiles in under 1 s', met: undefined, detail: 'not measured in this run' });
  else {
    const worst = compile.reduce((a, b) => (b.cold.totalMs > a.cold.totalMs ? b : a));
    out.push({
      name: '1,000-endpoint config compiles in under 1 s',
      met: worst.cold.totalMs < 1000,
      detail: compile
        .map((c) => `${c.file.split('/').pop()} (${c.endpoints} endpoints, ${Math.round(c.bytes / 1024)} KiB): cold ${c.cold.totalMs.toFixed(0)} ms (load ${c.cold.loadMs.toFixed(0)} + compile ${c.cold.compileMs.toFixed(0)}), warm ${c.warmTotalMs.toFixed(0)} ms`)
        .join('; '),
    });
  }
  return out;
}

export function targetsTable(targets: Target[]): string {
  const mark = (t: Target) => (t.met === undefined ? 'n/m    ' : t.met ? 'met    ' : 'NOT MET');
  return ['Targets (issue 5, section 2)', ...targets.map((t) => `  ${mark(t)}  ${t.name}\n             ${t.detail}`)].join('\n');
}

export function fullReport(r: Report): string {
  const lines: string[] = [];
  lines.push(`Portico benchmark, ${r.date}, Portico ${r.revision}${r.scenarios.some((s) => s.revision && s.revision !== r.revision) ? ' at the start (the working tree changed during the run: see the scenarios)' : ''}`);
  lines.push(
    `machine: ${r.machine.cpus} CPU(s) ${r.machine.model}, ${r.machine.memoryGiB} GiB, ${r.machine.kernel}; node ${r.machine.node}, nginx ${r.machine.nginx}, wrk ${r.machine.wrk}`,
  );
  lines.push(
    `method: ${r.settings.rounds} interleaved round(s) of ${r.settings.durationS} s per measurement after ${r.settings.warmupS} s warm-up, medians; ` +
      `req/s = wrk -t${r.settings.wrkThreads} -c${r.settings.connections} (saturation); p50/p99 = paced load at ${r.settings.rateFraction * 100}% of nginx proxy's saturation rate, ` +
      `from issue to last byte (bench/loadgen.ts, open loop), and "@P" at the same fraction of Portico's own rate when Portico cannot carry the first; ` +
      `RSS = peak of the process tree, sampled`,
  );
  lines.push(`Portico: ${r.settings.porticoWorkers}; nginx proxy: ${r.settings.nginxWorkers ?? 1} worker(s)`);
  const f = foreignSummary(r.scenarios);
  lines.push(
    `noise: processes outside the bench used ${f.median.toFixed(2)} CPU (median; max ${f.max.toFixed(2)}) of ${r.machine.cpus} during the measurements` +
      (f.max >= 0.25 ? ' -- the machine was not quiet; treat the absolute numbers with care' : ''),
  );
  lines.push('');
  for (const s of r.scenarios) {
    lines.push(scenarioTable(s, r.revision));
    lines.push('');
  }
  lines.push(targetsTable(r.targets));
  if (r.checkWallMs.length) lines.push(`\n\`portico check\` wall time (a fresh process: Node start-up + load + validate): ${r.checkWallMs.map((c) => `${c.file.split('/').pop()} ${c.ms.toFixed(0)} ms`).join(', ')}`);
  return lines.join('\n');
}
