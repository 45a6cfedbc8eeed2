// `npm run bench`: Portico side by side with nginx as a reverse proxy,
// @fastify/http-proxy and the backend itself, on loopback, in one go.
// See bench/README.md for what is measured and how.
//
//   npm run bench [-- --quick] [-- --rounds 3 --duration 8 --warmup 3]
//                 [-- --scenarios a-1k,b-1k] [-- --systems portico,nginx]
//                 [-- --portico-args="--workers 2"]   (or BENCH_PORTICO_ARGS)

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { CompileTime } from './compile-time.ts';
import type { LoadgenResult } from './loadgen.ts';
import { NGINX, nginxVersion, startNginx, writeBackendConfig } from './nginx.ts';
import { ForeignCpu, freePort, killAllSync, RssSampler, runToEnd, start, stop, waitForPort, type Proc } from './proc.ts';
import { evaluateTargets, fullReport, median, scenarioTable, SYSTEM_ORDER, type Report, type ScenarioResult, type SystemResult } from './report.ts';
import { backendFiles, isPortico, mixedConfig, SCENARIOS, type Scenario, type SystemId } from './scenarios.ts';
import { LABELS, NODE, porticoRunArgs, ROOT, startSystem, writePorticoConfig, type Context, type Running } from './systems.ts';
import { pathsScript, runWrk, WRK, wrkVersion, type WrkResult } from './wrk.ts';

const HELP = `npm run bench [-- options]
  --quick              1 round of 3 s, 2 s warm-up (a smoke run, not for publishing)
  --rounds N           interleaved rounds per measurement (default 3)
  --duration S         seconds per measurement (default 8)
  --warmup S           warm-up seconds per system and scenario (default 3)
  --connections N      wrk and load generator connections (default 64)
  --rate-fraction F    paced latency run at F x the reference saturation rate (default 0.5)
  --scenarios LIST     comma list of a-1k,a-64k,b-1k,b-64k,c-agg,d-1000,e-jwt-cors,f-ratelimit-local,g-ratelimit-redis,h-telemetry-off,i-tracing,j-lua,k-cel,l-shadow,m-split (default all)
  --systems LIST       comma list of portico,portico-bun,nginx,fastify,direct (default all)
  --portico-args=STR   extra arguments for "portico run" (also BENCH_PORTICO_ARGS), e.g. --portico-args="--workers 2"
  --nginx-workers N    worker processes of the nginx proxy (default 1; match Portico's --workers)
  --no-save            do not write bench/results/<date>.json
  --show FILE          print the tables and targets of a saved results file, run nothing`;

function flags() {
  try {
    return parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        rounds: { type: 'string' },
        duration: { type: 'string' },
        warmup: { type: 'string' },
        connections: { type: 'string', default: '64' },
        'rate-fraction': { type: 'string', default: '0.5' },
        scenarios: { type: 'string' },
        systems: { type: 'string' },
        'portico-args': { type: 'string' },
        'nginx-workers': { type: 'string', default: '1' },
        'no-save': { type: 'boolean', default: false },
        show: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    return fail((err as Error).message.split('\n')[0]);
  }
}
const { values } = flags();

if (values.help) {
  console.log(HELP);
  process.exit(0);
}
if (values.show) {
  const saved = JSON.parse(readFileSync(values.show, 'utf8')) as Report;
  saved.targets = evaluateTargets(saved.scenarios, saved.compile);
  console.log(fullReport(saved));
  process.exit(0);
}

const quick = values.quick === true;
const ROUNDS = Number(values.rounds ?? (quick ? 1 : 3));
const DURATION = Number(values.duration ?? (quick ? 3 : 8));
const WARMUP = Number(values.warmup ?? (quick ? 2 : 3));
const CONNECTIONS = Number(values.connections);
const RATE_FRACTION = Number(values['rate-fraction']);
const WRK_THREADS = 1;
const CPUS = cpus().length;
for (const [k, v] of Object.entries({ rounds: ROUNDS, duration: DURATION, warmup: WARMUP, connections: CONNECTIONS })) {
  if (!Number.isInteger(v) || v < (k === 'warmup' ? 0 : 1)) fail(`--${k} expects a whole number${k === 'warmup' ? '' : ' >= 1'}`);
}
if (!(RATE_FRACTION > 0 && RATE_FRACTION < 1)) fail('--rate-fraction expects a number between 0 and 1');

const scenarioIds = values.scenarios?.split(',').map((s) => s.trim()).filter(Boolean);
const scenarios = scenarioIds ? SCENARIOS.filter((s) => scenarioIds.includes(s.id)) : SCENARIOS;
if (scenarioIds && scenarios.length !== scenarioIds.length) fail(`--scenarios: known ones are ${SCENARIOS.map((s) => s.id).join(', ')}`);
const systemIds = (values.systems?.split(',').map((s) => s.trim()).filter(Boolean) ?? SYSTEM_ORDER) as SystemId[];
if (systemIds.some((s) => !SYSTEM_ORDER.includes(s))) fail(`--systems: known ones are ${SYSTEM_ORDER.join(', ')}`);

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n\n${HELP}\n`);
  process.exit(2);
}

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

// ---- prerequisites ----

async function prerequisites(): Promise<{ nginx: string; wrk: string }> {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 24) {
    process.stderr.write(`bench: needs Node.js 24 (this is ${process.version}); run it as "npm run bench", which uses the pinned node\n`);
    process.exit(1);
  }
  const missing: string[] = [];
  const nginx = existsSync(NGINX) ? await nginxVersion() : undefined;
  if (!nginx) missing.push(`nginx (looked for ${NGINX}; BENCH_NGINX overrides)`);
  const wrk = existsSync(WRK) ? await wrkVersion() : undefined;
  if (!wrk) missing.push(`wrk (looked for ${WRK}; BENCH_WRK overrides)`);
  if (missing.length) {
    process.stderr.write(
      `bench: missing ${missing.join(' and ')}.\nThe suite needs nginx (backend and reference proxy) and wrk (load). On Debian/Ubuntu:\n\n` +
        `  sudo apt-get update && sudo apt-get install -y nginx wrk\n\n` +
        `(any nginx build works, e.g. nginx-light; the suite runs its own instances and never uses the system service, which you may disable: sudo systemctl disable --now nginx)\n`,
    );
    process.exit(1);
  }
  return { nginx: nginx!, wrk: wrk! };
}

// ---- cleanup: every process started is stopped by its pid ----

let tmp: string | undefined;
const cleanupSync = () => {
  killAllSync();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  tmp = undefined;
};
process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    log(`${sig}: stopping everything the bench started`);
    cleanupSync();
    process.exit(130);
  });
}

// ---- measurements ----

async function smoke(run: Running, scenario: Scenario): Promise<string | undefined> {
  const path = run.paths[0];
  try {
    const res = await fetch(`http://127.0.0.1:${run.port}${path}`, { headers: { accept: 'application/json', ...scenario.headers }, signal: AbortSignal.timeout(5000) });
    const body = await res.text();
    if (res.status !== 200) return `GET ${path} answered ${res.status}: ${body.slice(0, 200)}`;
    if (isPortico(run.id)) return scenario.checkPortico(body);
    const expected = scenario.id.includes('64k') ? 65536 : 1024;
    return body.length === expected ? undefined : `GET ${path}: body of ${body.length} bytes, expected ${expected}`;
  } catch (err) {
    return `GET ${path}: ${(err as Error).message}`;
  }
}

async function saturate(run: Running, scriptDir: string, seconds: number, scenario: Scenario): Promise<WrkResult> {
  const script = pathsScript(scriptDir, `${scenario.id}-${run.id}`, run.paths, 1, scenario.headers);
  return runWrk({ url: `http://127.0.0.1:${run.port}${run.paths[0]}`, durationS: seconds, connections: CONNECTIONS, threads: WRK_THREADS, script, headers: scenario.headers });
}

async function paced(run: Running, rate: number, pathsFile: string | undefined, headers: Record<string, string> = {}): Promise<LoadgenResult> {
  const args = [join(ROOT, 'bench', 'loadgen.ts'), '--origin', `http://127.0.0.1:${run.port}`, '--rate', String(Math.round(rate))];
  for (const [name, value] of Object.entries(headers)) args.push('--header', `${name}: ${value}`);
  args.push('--duration', String(DURATION), '--warmup', '1', '--connections', String(CONNECTIONS), '--drain', '5');
  if (pathsFile) args.push('--paths-file', pathsFile);
  else args.push('--path', run.paths[0]);
  const r = await runToEnd('loadgen', NODE, args, (DURATION + 30) * 1000, { cwd: ROOT });
  if (r.code !== 0) throw new Error(`loadgen failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as LoadgenResult;
}

/** The Portico commit in the working tree, and whether src/ or bin/ differ from it (others may be editing them). */
async function gitRevision(): Promise<string> {
  const head = await runToEnd('git', 'git', ['rev-parse', '--short', 'HEAD'], 10_000, { cwd: ROOT });
  if (head.code !== 0) return 'unknown';
  const dirty = await runToEnd('git', 'git', ['status', '--porcelain', '--', 'src', 'bin'], 10_000, { cwd: ROOT });
  const n = dirty.stdout.trim() ? dirty.stdout.trim().split('\n').length : 0;
  return `${head.stdout.trim()}${n ? ` + uncommitted changes in ${n} file(s) of src/ and bin/` : ''}`;
}

/** The system did not keep up with the offered rate: answers fell behind, or some never came. */
function isOverloaded(r: LoadgenResult): boolean {
  return r.achievedRate < 0.97 * r.offeredRate || r.unfinished > 0;
}

function wrkProblems(w: WrkResult): string[] {
  const p: string[] = [];
  if (w.non2xx) p.push(`${w.non2xx} non-2xx`);
  const s = w.socketErrors;
  const sum = s.connect + s.read + s.write + s.timeout;
  if (sum) p.push(`socket errors c${s.connect}/r${s.read}/w${s.write}/t${s.timeout}`);
  return p;
}

async function runScenario(scenario: Scenario, ctx: Context): Promise<ScenarioResult> {
  const systems = systemIds.filter((s) => scenario.systems.includes(s));
  const result: ScenarioResult = {
    id: scenario.id,
    title: scenario.title,
    note: scenario.note,
    offeredRate: 0,
    rateFrom: scenario.rateFrom,
    systems: {},
    na: SYSTEM_ORDER.filter((s) => !scenario.systems.includes(s)),
    failed: {},
  };
  for (const s of SYSTEM_ORDER) if (!systemIds.includes(s) && scenario.systems.includes(s)) result.failed[s] = 'not selected (--systems)';

  // Portico is started from the working tree as it is now: record which revision that was.
  if (systems.some(isPortico)) result.revision = await gitRevision();
  const dir = join(ctx.tmp, `scenario-${scenario.id}`);
  mkdirSync(dir, { recursive: true });
  const running: Running[] = [];
  const samplers = new Map<SystemId, RssSampler>();
  try {
    for (const id of systems) {
      try {
        const run = await startSystem(id, scenario, ctx);
        running.push(run);
        samplers.set(id, new RssSampler(run.rssPid));
        const problem = await smoke(run, scenario);
        if (problem) {
          result.failed[id] = problem;
          log(`${scenario.id}: ${LABELS[id]} answers wrongly, left out: ${problem}`);
        }
      } catch (err) {
        result.failed[id] = (err as Error).message.split('\n')[0];
        log(`${scenario.id}: ${LABELS[id]} did not start: ${(err as Error).message}`);
      }
    }
    const ok = running.filter((r) => !result.failed[r.id]);
    /** Systems still in the scenario: one whose measurement fails (it crashed, wrk failed) is left out from then on. */
    const live = () => ok.filter((r) => !result.failed[r.id]);
    const guard = async <T>(run: Running, f: () => Promise<T>): Promise<T | undefined> => {
      try {
        return await f();
      } catch (err) {
        result.failed[run.id] = `measurement failed: ${(err as Error).message.split('\n')[0]}`;
        log(`${scenario.id}: ${LABELS[run.id]} left out: ${(err as Error).message}`);
        return undefined;
      }
    };
    const sat = new Map<SystemId, WrkResult[]>(ok.map((r) => [r.id, []]));
    const lat = new Map<SystemId, LoadgenResult[]>(ok.map((r) => [r.id, []]));
    const foreign = new Map<SystemId, { saturation: number[]; latency: number[] }>(ok.map((r) => [r.id, { saturation: [], latency: [] }]));
    const watch = (run: Running) => new ForeignCpu([run.rssPid, ctx.backendPid]);
    const cpuNote = (f: number) => (f >= 0.1 ? ` [other processes used ${f.toFixed(2)} CPU]` : '');

    if (WARMUP > 0) {
      for (const run of live()) {
        log(`${scenario.id}: warm-up ${LABELS[run.id]} (${WARMUP} s)`);
        await guard(run, () => saturate(run, dir, WARMUP, scenario));
      }
    }
    for (let round = 1; round <= ROUNDS; round++) {
      for (const run of live()) {
        const fc = watch(run);
        const w = await guard(run, () => saturate(run, dir, DURATION, scenario));
        const f = fc.end(CPUS);
        if (!w) continue;
        sat.get(run.id)!.push(w);
        foreign.get(run.id)!.saturation.push(f);
        log(`${scenario.id}: saturation round ${round}/${ROUNDS} ${LABELS[run.id]}: ${Math.round(w.rps)} req/s${wrkProblems(w).length ? ' (' + wrkProblems(w).join(', ') + ')' : ''}${cpuNote(f)}`);
      }
    }
    const pathsFile = scenario.proxyPaths.length > 1 || scenario.porticoPaths.length > 1 ? join(dir, 'paths') : undefined;
    const latencyRounds = async (rate: number, into: Map<SystemId, LoadgenResult[]>, tag: string) => {
      for (let round = 1; round <= ROUNDS; round++) {
        for (const run of live()) {
          let file: string | undefined;
          if (pathsFile && run.paths.length > 1) {
            file = `${pathsFile}-${run.id}.txt`;
            writeFileSync(file, run.paths.join('\n') + '\n');
          }
          const fc = watch(run);
          const l = await guard(run, () => paced(run, rate, file, scenario.headers));
          const f = fc.end(CPUS);
          if (!l) continue;
          into.get(run.id)!.push(l);
          foreign.get(run.id)!.latency.push(f);
          log(
            `${scenario.id}: latency${tag} round ${round}/${ROUNDS} ${LABELS[run.id]} at ${rate} req/s: p50 ${(l.latencyUs.p50 / 1000).toFixed(2)} ms, p99 ${(l.latencyUs.p99 / 1000).toFixed(2)} ms, answered ${Math.round(l.achievedRate)} req/s` +
              (l.errors || l.non2xx || l.unfinished ? `, ${l.errors} errors, ${l.non2xx} non-2xx, ${l.unfinished} unfinished` : '') +
              cpuNote(f),
          );
        }
      }
    };
    const ref = sat.get(scenario.rateFrom) ?? sat.get('portico');
    const low = new Map<SystemId, LoadgenResult[]>(ok.map((r) => [r.id, []]));
    if (ref && ref.length) {
      if (!sat.has(scenario.rateFrom)) result.rateFrom = 'portico';
      result.offeredRate = Math.max(1, Math.round(RATE_FRACTION * median(ref.map((w) => w.rps))));
      await latencyRounds(result.offeredRate, lat, '');
      // When Portico cannot sustain the reference rate, its p50/p99 there only say "overloaded";
      // a second paced run at the same fraction of Portico's own saturation rate gives every
      // system a latency at a load Portico can carry.
      const own = sat.get('portico');
      if (result.rateFrom !== 'portico' && own?.length && lat.get('portico')?.some(isOverloaded)) {
        result.porticoRate = Math.max(1, Math.round(RATE_FRACTION * median(own.map((w) => w.rps))));
        await latencyRounds(result.porticoRate, low, ' (at Portico\'s rate)');
      }
    }
    for (const run of live()) {
      const rss = samplers.get(run.id)!.stop();
      const s = sat.get(run.id)!;
      const l = lat.get(run.id)!;
      const lo = low.get(run.id)!;
      const problems = [...new Set(s.flatMap(wrkProblems))];
      const lErr = [...l, ...lo].reduce((n, r) => n + r.errors + r.non2xx, 0);
      const firstError = [...l, ...lo].find((r) => r.firstError)?.firstError;
      if (lErr) problems.push(`${lErr} failed paced requests${firstError ? ` (${firstError})` : ''}`);
      const overloaded = (ls: LoadgenResult[]) => ls.length > 0 && ls.filter(isOverloaded).length * 2 > ls.length;
      const res: SystemResult = {
        system: run.id,
        saturation: s,
        latency: l,
        rps: median(s.map((w) => w.rps)),
        p50Us: median(l.map((r) => r.latencyUs.p50)),
        p99Us: median(l.map((r) => r.latencyUs.p99)),
        atPorticoRate: lo.length
          ? { latency: lo, p50Us: median(lo.map((r) => r.latencyUs.p50)), p99Us: median(lo.map((r) => r.latencyUs.p99)), overloaded: overloaded(lo) }
          : undefined,
        peakRssBytes: rss.peakTreeBytes,
        peakProcRssBytes: rss.peakProcBytes,
        peakProcAnonBytes: rss.peakAnonBytes,
        overloaded: overloaded(l),
        problems,
        foreignCpu: foreign.get(run.id)!,
      };
      result.systems[run.id] = res;
    }
  } finally {
    for (const s of samplers.values()) s.stop();
    for (const run of running) await run.stop();
  }
  return result;
}

/** Compile time of the 1,000-endpoint configurations (fresh process, cold and warm), and `portico check` wall time. */
async function measureCompile(ctx: Context): Promise<{ compile: CompileTime[]; check: { file: string; ms: number }[] }> {
  const routes = SCENARIOS.find((s) => s.id === 'd-1000')!;
  const files = [writePorticoConfig(ctx.tmp, routes, ctx.backendPort)];
  const mixed = join(ctx.tmp, 'portico', 'mixed-1000.json');
  writeFileSync(mixed, JSON.stringify(mixedConfig(`http://127.0.0.1:${ctx.backendPort}`), null, 2));
  files.push(mixed);
  const r = await runToEnd('compile-time', NODE, [join(ROOT, 'bench', 'compile-time.ts'), ...files], 120_000, { cwd: ROOT });
  if (r.code !== 0) throw new Error(`compile-time failed (${r.code}): ${r.stderr}`);
  const compile = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as CompileTime);
  const check: { file: string; ms: number }[] = [];
  for (const f of files) {
    const c = await runToEnd('portico check', NODE, [join(ROOT, 'bin', 'portico.js'), 'check', '-c', f], 60_000, { cwd: ROOT });
    if (c.code !== 0) throw new Error(`portico check -c ${f} failed: ${c.stderr}${c.stdout}`);
    check.push({ file: f, ms: c.ms });
  }
  return { compile, check };
}

// ---- main ----

const t0 = performance.now();
const versions = await prerequisites();
tmp = mkdtempSync(join(tmpdir(), 'portico-bench-'));

const extra = (values['portico-args'] ?? process.env.BENCH_PORTICO_ARGS ?? '').split(/\s+/).filter(Boolean);
const { args: porticoArgs, description: porticoWorkers } = await porticoRunArgs(extra);

const revision = await gitRevision();
const nginxWorkers = Number(values['nginx-workers']);
if (!Number.isInteger(nginxWorkers) || nginxWorkers < 1) fail(`--nginx-workers: expected a whole number >= 1, found "${values['nginx-workers']}"`);

const cpu = cpus();
const report: Report = {
  date: new Date().toISOString(),
  revision,
  machine: {
    cpus: cpu.length,
    model: cpu[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: `Linux ${release()}`,
    node: process.version,
    nginx: versions.nginx,
    wrk: versions.wrk,
  },
  settings: {
    rounds: ROUNDS,
    durationS: DURATION,
    warmupS: WARMUP,
    connections: CONNECTIONS,
    wrkThreads: WRK_THREADS,
    rateFraction: RATE_FRACTION,
    porticoArgs,
    porticoWorkers,
    nginxWorkers,
    quick,
  },
  compile: [],
  checkWallMs: [],
  scenarios: [],
  targets: [],
  totalSeconds: 0,
};

const systemsPerScenario = scenarios.reduce((n, s) => n + s.systems.filter((x) => systemIds.includes(x)).length, 0);
const estimate = systemsPerScenario * (WARMUP + ROUNDS * (3 * DURATION + 4) + 2) + 20;
log(`${scenarios.length} scenario(s) x systems = ${systemsPerScenario} runs; ${ROUNDS} round(s) of ${DURATION} s; about ${Math.ceil(estimate / 60)} min`);
log(`Portico: ${porticoWorkers}; nginx proxy: ${nginxWorkers} worker(s)`);
log(`machine: ${report.machine.cpus} CPU(s) ${report.machine.model}; wrk, the backend and the proxy share them`);

/** redis-server for the scenarios that count limits in Redis (Debian's redis-server; BENCH_REDIS overrides). */
const REDIS = process.env.BENCH_REDIS ?? '/usr/bin/redis-server';

let backend: Proc | undefined;
let redis: Proc | undefined;
try {
  const backendPort = await freePort();
  const backendDir = join(tmp, 'backend');
  const conf = writeBackendConfig(backendDir, backendPort, backendFiles());
  backend = await startNginx('backend', backendDir, conf, backendPort);
  log(`backend nginx (1 worker) on 127.0.0.1:${backendPort}, pid ${backend.pid}`);
  const ctx: Context = { tmp, backendPort, backendPid: backend.pid, porticoArgs, nginxWorkers };
  if (scenarios.some((s) => s.redis && s.systems.some((x) => systemIds.includes(x)))) {
    if (!existsSync(REDIS)) fail(`a selected scenario needs redis-server (looked for ${REDIS}; BENCH_REDIS overrides): sudo apt-get install -y redis-server`);
    const port = await freePort();
    redis = start('redis', REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
    await waitForPort(port, 10_000, redis);
    ctx.redisAddress = `127.0.0.1:${port}`;
    log(`redis-server on ${ctx.redisAddress}, pid ${redis.pid}`);
  }

  if (systemIds.includes('portico')) {
    log('compile time of the 1,000-endpoint configurations');
    const c = await measureCompile(ctx);
    report.compile = c.compile;
    report.checkWallMs = c.check;
  }
  for (const scenario of scenarios) {
    log(`scenario ${scenario.title}`);
    const r = await runScenario(scenario, ctx);
    report.scenarios.push(r);
    process.stderr.write('\n' + scenarioTable(r, revision) + '\n\n');
  }
} finally {
  if (backend) await stop(backend, 'SIGTERM', 5000);
  if (redis) await stop(redis, 'SIGTERM', 5000);
}

report.targets = evaluateTargets(report.scenarios, report.compile);
report.totalSeconds = Math.round((performance.now() - t0) / 1000);
console.log(fullReport(report));
console.log(`\n(${report.totalSeconds} s)`);
if (!values['no-save']) {
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${report.date.replace(/:/g, '-').replace(/\..*$/, '')}.json`);
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  console.log(`results: ${file}`);
}
cleanupSync();
