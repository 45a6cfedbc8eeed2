// Reading what the management listener serves: its port from the gateway's
// log, and series from Prometheus text.

import assert from 'node:assert/strict';
import type { Running } from './process.ts';

/** The management port a `portico run --management-port 0` logged. */
export function managementPort(run: Running): number {
  const m = /"msg":"management listening".*?"port":(\d+)/.exec(run.output());
  assert.ok(m, 'the management listener logged its port');
  return Number(m[1]);
}

export interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Every sample line of Prometheus text. */
export function seriesOf(text: string): Series[] {
  const out: Series[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the first series named `name` that has `labels` (others may be present), or undefined. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  return seriesOf(text).find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}
