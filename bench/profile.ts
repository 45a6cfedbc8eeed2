// Where Portico's time goes in one scenario: starts the nginx backend and
// Portico under `node --cpu-prof`, loads it with wrk at saturation, stops it
// (the profile is written at exit) and prints the functions with the most
// self time, and the time per area (Portico's sources by directory, undici,
// node:http and other Node internals, GC, idle).
//
//   node bench/profile.ts [--scenario a-1k] [--duration 10] [--top 30] [--keep DIR]
// The .cpuprofile can be opened in Chrome DevTools (Performance) or speedscope.

import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startNginx, writeBackendConfig } from './nginx.ts';
import { freePort, killAllSync, start, stop, waitForPort } from './proc.ts';
import { backendFiles, SCENARIOS } from './scenarios.ts';
import { NODE, porticoRunArgs, ROOT, writePorticoConfig } from './systems.ts';
import { pathsScript, runWrk } from './wrk.ts';

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'a-1k' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '64' },
    top: { type: 'string', default: '30' },
    keep: { type: 'string' },
  },
});
const scenario = SCENARIOS.find((s) => s.id === values.scenario);
if (!scenario) {
  process.stderr.write(`profile: unknown scenario ${values.scenario}; known: ${SCENARIOS.map((s) => s.id).join(', ')}\n`);
  process.exit(2);
}

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function area(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)') return 'idle';
  if (fn === '(program)') return '(program: native, outside JS)';
  const src = url.match(/\/src\/([^/]+)\//);
  if (src) return `portico src/${src[1]}/`;
  if (url.includes('/node_modules/undici/')) return 'undici';
  if (/node:_http|node:http/.test(url)) return 'node:http';
  if (/node:net|node:stream|node:internal\/streams/.test(url)) return 'node:net + streams';
  if (url.startsWith('node:')) return 'node internals (other)';
  if (url === '') return `native/builtin`;
  return 'other JS';
}

let tmp: string | undefined = mkdtempSync(join(tmpdir(), 'portico-profile-'));
process.on('exit', () => {
  killAllSync();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});
process.once('SIGINT', () => process.exit(130));

const backendPort = await freePort();
const backend = await startNginx('backend', join(tmp, 'backend'), writeBackendConfig(join(tmp, 'backend'), backendPort, backendFiles()), backendPort);
const port = await freePort();
const profDir = join(tmp, 'prof');
mkdirSync(profDir);
const config = writePorticoConfig(tmp, scenario, backendPort);
// One serving process (the profile of a cluster primary would be idle).
const { args: runArgs } = await porticoRunArgs([]);
const portico = start('portico', NODE, ['--cpu-prof', '--cpu-prof-dir', profDir, join(ROOT, 'bin', 'portico.js'), 'run', '-c', config, '-p', String(port), '--cache-dir', join(tmp, 'cache'), ...runArgs], {
  cwd: ROOT,
});
await waitForPort(port, 30_000, portico);
const script = pathsScript(tmp, 'paths', scenario.porticoPaths, 1, scenario.headers);
const url = `http://127.0.0.1:${port}${scenario.porticoPaths[0]}`;
await runWrk({ url, durationS: 2, connections: Number(values.connections), threads: 1, script, headers: scenario.headers }); // warm-up
const w = await runWrk({ url, durationS: Number(values.duration), connections: Number(values.connections), threads: 1, script, headers: scenario.headers });
await stop(portico, 'SIGTERM', 15_000);
await stop(backend, 'SIGTERM', 5_000);

const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
if (!file) throw new Error('no .cpuprofile written');
if (values.keep) {
  mkdirSync(values.keep, { recursive: true });
  cpSync(join(profDir, file), join(values.keep, `${scenario.id}-${file}`));
}
const prof = JSON.parse(readFileSync(join(profDir, file), 'utf8')) as Profile;
const self = new Map<number, number>();
for (let i = 0; i < prof.samples.length; i++) self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + (prof.timeDeltas[i] ?? 0));
const total = [...self.values()].reduce((a, b) => a + b, 0);
const byNode = new Map(prof.nodes.map((n) => [n.id, n]));
const byFn = new Map<string, number>();
const byArea = new Map<string, number>();
for (const [id, us] of self) {
  const cf = byNode.get(id)!.callFrame;
  const where = cf.url ? `${cf.url.replace(`file://${ROOT}/`, '').replace(/^.*node_modules\//, '')}:${cf.lineNumber + 1}` : '';
  const key = `${cf.functionName || '(anonymous)'} ${where}`.trim();
  byFn.set(key, (byFn.get(key) ?? 0) + us);
  const a = area(cf.url, cf.functionName);
  byArea.set(a, (byArea.get(a) ?? 0) + us);
}
const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
console.log(`Portico ${scenario.title}: ${Math.round(w.rps)} req/s under wrk -t1 -c${values.connections} for ${values.duration} s (${(total / 1e6).toFixed(1)} s profiled)`);
console.log('\nself time by area');
for (const [a, us] of [...byArea].sort((x, y) => y[1] - x[1])) console.log(`  ${pct(us)}  ${a}`);
console.log(`\ntop ${values.top} functions by self time`);
for (const [k, us] of [...byFn].sort((x, y) => y[1] - x[1]).slice(0, Number(values.top))) console.log(`  ${pct(us)}  ${k}`);
if (values.keep) console.log(`\nprofile kept in ${values.keep}/${scenario.id}-${file}`);
rmSync(tmp, { recursive: true, force: true });
tmp = undefined;
