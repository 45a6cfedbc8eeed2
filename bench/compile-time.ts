// How long Portico takes to turn a configuration file's text into a Plan:
// parse + validate + normalize (loadConfigText), then compilePlan. The first
// run is cold (a fresh process: nothing JIT-compiled yet, as at start-up);
// the next ones are warm (as a reload in a running gateway).
// Prints one JSON line per file. Run: node bench/compile-time.ts FILE... [--repeat 5]

import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { loadConfigText } from '../src/config/load.ts';
import { compilePlan } from '../src/plan/compile.ts';
import { UpstreamPools } from '../src/proxy/upstream.ts';

export interface CompileTime {
  file: string;
  endpoints: number;
  bytes: number;
  cold: { loadMs: number; compileMs: number; totalMs: number };
  /** Median of the warm repeats. */
  warmTotalMs: number;
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { repeat: { type: 'string', default: '5' } } });
const sink = new Writable({ write: (_c, _e, done) => done() });
const pools = new UpstreamPools();

async function once(text: string, file: string): Promise<{ loadMs: number; compileMs: number; endpoints: number }> {
  const t0 = performance.now();
  const loaded = loadConfigText(text, file, { env: {} });
  const t1 = performance.now();
  if (!loaded.config) throw new Error(`${file} is invalid: ${JSON.stringify(loaded.errors.slice(0, 3))}`);
  const plan = compilePlan({ ...loaded.config, listenIp: '127.0.0.1', port: 0 }, { pools, accessLogOut: sink });
  const t2 = performance.now();
  await plan.close(0);
  return { loadMs: t1 - t0, compileMs: t2 - t1, endpoints: loaded.config.endpoints.length };
}

for (const file of positionals) {
  const text = readFileSync(file, 'utf8');
  const cold = await once(text, file);
  const warm: number[] = [];
  for (let i = 0; i < Number(values.repeat); i++) {
    const w = await once(text, file);
    warm.push(w.loadMs + w.compileMs);
  }
  warm.sort((a, b) => a - b);
  const out: CompileTime = {
    file,
    endpoints: cold.endpoints,
    bytes: Buffer.byteLength(text),
    cold: { loadMs: cold.loadMs, compileMs: cold.compileMs, totalMs: cold.loadMs + cold.compileMs },
    warmTotalMs: warm[Math.floor(warm.length / 2)] ?? cold.loadMs + cold.compileMs,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}
await pools.close();
