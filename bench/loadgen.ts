// A paced (open-loop) HTTP load generator for the latency runs: request i is
// due at start + i / rate whatever happened to earlier requests (a timer
// sends everything due; nothing ever waits for an answer before sending). It
// keeps N keep-alive HTTP/1.1 connections with one request in flight each; a
// request due while all are busy waits in a FIFO queue, and that wait counts.
// Latency runs from the moment a request is issued (sent, or queued) to the
// last byte of its answer, so a stall in the system under test is counted for
// every request it delays (no coordinated omission). The latency from the due
// time is kept too: it adds the generator's own timer lateness (sendLagMs).
//
// It speaks HTTP/1.1 over node:net with pre-encoded requests and a minimal
// response parser (status, Content-Length or chunked) rather than undici:
// undici cost ~80 us of CPU per request here, which on a 2-core machine shared
// with the proxy and the backend made the generator the bottleneck at ~10k
// req/s; this costs ~3 times less. HDR-style histograms; prints one JSON object.
//
//   node bench/loadgen.ts --origin http://127.0.0.1:PORT --rate 5000
//        [--path /p | --paths-file FILE] [--duration 8] [--warmup 1] [--header "Name: value" ...]
//        [--connections 64] [--drain 5] [--seed 1]

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createConnection, type Socket } from 'node:net';
import { Histogram } from './histogram.ts';

export interface LoadgenResult {
  offeredRate: number;
  durationS: number;
  connections: number;
  /** Requests due in the measured window, and what became of them. */
  due: number;
  ok: number;
  non2xx: number;
  errors: number;
  /** Still unanswered `drain` seconds after the window: counted with their age as latency. */
  unfinished: number;
  /**
   * Every 2xx answer of the run (warm-up second included) per second, from the
   * first due time to the last answer: the offered rate when the system keeps
   * up, its capacity under this load when it does not.
   */
  achievedRate: number;
  /**
   * From the moment the request was issued (sent, or queued when every
   * connection was busy) until the last byte of the answer, microseconds.
   */
  latencyUs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  /** From the due time on the schedule: adds the generator's own timer lateness (sendLagMs). */
  scheduleUs: { p50: number; p99: number; max: number };
  /** How late the generator itself dispatched requests (p99 and max, ms). */
  sendLagMs: { p99: number; max: number };
  firstError?: string;
}

const { values } = parseArgs({
  options: {
    origin: { type: 'string' },
    rate: { type: 'string' },
    path: { type: 'string' },
    'paths-file': { type: 'string' },
    duration: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '1' },
    connections: { type: 'string', default: '64' },
    drain: { type: 'string', default: '5' },
    seed: { type: 'string', default: '1' },
    header: { type: 'string', multiple: true, default: [] },
  },
});

const origin = values.origin;
const rate = Number(values.rate);
if (!origin || !(rate > 0)) {
  process.stderr.write('loadgen: --origin and --rate are required\n');
  process.exit(2);
}
const paths: string[] = values['paths-file']
  ? readFileSync(values['paths-file'], 'utf8').split('\n').filter(Boolean)
  : [values.path ?? '/'];
const durationMs = Number(values.duration) * 1000;
const warmupMs = Number(values.warmup) * 1000;
const connections = Number(values.connections);
const drainMs = Number(values.drain) * 1000;

let seed = Number(values.seed) >>> 0;
const random = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

const url = new URL(origin);
const host = url.hostname;
const port = Number(url.port || 80);
const latency = new Histogram();
const schedule = new Histogram();
const lag = new Histogram();
let due = 0;
let ok = 0;
let non2xx = 0;
let errors = 0;
let firstError: string | undefined;
let lastAnswer = 0;
let okAll = 0;
/** Measured requests not answered yet. */
const pending = new Set<Req>();

const intervalMs = 1000 / rate;
let t0 = 0;
let measureFrom = 0;
let measureTo = 0;

interface Req {
  dueAt: number;
  sentAt: number;
  measured: boolean;
  bytes: Buffer;
}

/** --header "Name: value", each sent with every request. */
const extraHeaders = (values.header ?? []).map((h) => `${h}\r\n`).join('');

/** One request line + headers per path, encoded once. */
const encoded = new Map<string, Buffer>();
const requestFor = (path: string): Buffer => {
  let b = encoded.get(path);
  if (!b) {
    b = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nAccept: application/json\r\nUser-Agent: portico-bench-loadgen\r\n${extraHeaders}\r\n`, 'latin1');
    encoded.set(path, b);
  }
  return b;
};

function done(r: Req, status: number): void {
  const now = performance.now();
  if (status >= 200 && status < 300) {
    okAll++;
    lastAnswer = now;
  }
  if (!r.measured || !pending.delete(r)) return;
  latency.record((now - r.sentAt) * 1000);
  schedule.record((now - r.dueAt) * 1000);
  if (status >= 200 && status < 300) ok++;
  else non2xx++;
}

function failed(r: Req, err: string): void {
  firstError ??= err;
  if (!r.measured || !pending.delete(r)) return;
  errors++;
}

const CRLF2 = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');

/**
 * A keep-alive HTTP/1.1 connection with one request in flight and a minimal
 * response parser (status, Content-Length or chunked; bodies are skipped).
 */
class Conn {
  socket!: Socket;
  current: Req | undefined;
  #buf: Buffer | undefined;
  #state: 'head' | 'body' | 'chunk-size' | 'chunk-data' | 'trailers' = 'head';
  #remaining = 0;
  #status = 0;
  #close = false;
  ready: Promise<void>;

  constructor() {
    this.ready = this.#connect();
  }

  #connect(): Promise<void> {
    return new Promise((resolve) => {
      const s = createConnection({ host, port, noDelay: true });
      this.socket = s;
      this.#buf = undefined;
      this.#state = 'head';
      s.once('connect', () => resolve());
      s.on('data', (d: Buffer) => this.#onData(d));
      s.on('error', (err) => {
        firstError ??= `socket: ${err.message}`;
        resolve();
      });
      s.on('close', () => {
        const r = this.current;
        this.current = undefined;
        if (r) failed(r, 'connection closed before the answer ended');
        if (!stopping) this.ready = this.#connect().then(() => this.#next());
      });
    });
  }

  send(r: Req): void {
    this.current = r;
    this.socket.write(r.bytes);
  }

  #next(): void {
    const r = queue.shift();
    if (r) this.send(r);
    else idle.push(this);
  }

  #onData(d: Buffer): void {
    let b = this.#buf ? Buffer.concat([this.#buf, d]) : d;
    this.#buf = undefined;
    let i = 0;
    while (i < b.length) {
      if (this.#state === 'head') {
        const end = b.indexOf(CRLF2, i);
        if (end < 0) break;
        const head = b.toString('latin1', i, end);
        this.#status = Number(head.slice(9, 12));
        const lower = head.toLowerCase();
        const cl = /\r\ncontent-length:\s*(\d+)/.exec(lower);
        this.#close = /\r\nconnection:\s*close/.test(lower);
        i = end + 4;
        if (/\r\ntransfer-encoding:[^\r]*chunked/.test(lower)) this.#state = 'chunk-size';
        else {
          this.#remaining = cl ? Number(cl[1]) : 0;
          this.#state = 'body';
        }
        continue;
      }
      if (this.#state === 'body' || this.#state === 'chunk-data') {
        const take = Math.min(this.#remaining, b.length - i);
        i += take;
        this.#remaining -= take;
        if (this.#remaining > 0) break;
        if (this.#state === 'body') {
          this.#finish();
          continue;
        }
        this.#state = 'chunk-size';
        continue;
      }
      // chunk-size: "HEX[;ext]\r\n" (after the CRLF ending the previous chunk's data); trailers: lines until an empty one
      const eol = b.indexOf(CRLF, i);
      if (eol < 0) break;
      const line = b.toString('latin1', i, eol);
      i = eol + 2;
      if (this.#state === 'trailers') {
        if (line === '') this.#finish();
        continue;
      }
      if (line === '') continue; // the CRLF after chunk data
      const size = parseInt(line, 16);
      if (size === 0) this.#state = 'trailers';
      else {
        this.#remaining = size;
        this.#state = 'chunk-data';
      }
    }
    if (i < b.length) this.#buf = b.subarray(i);
  }

  #finish(): void {
    this.#state = 'head';
    const r = this.current;
    this.current = undefined;
    if (r) done(r, this.#status);
    if (this.#close) {
      this.socket.destroy(); // "close" reconnects
      return;
    }
    this.#next();
  }
}

let stopping = false;
const queue: Req[] = [];
const idle: Conn[] = [];
const conns = Array.from({ length: connections }, () => new Conn());
await Promise.all(conns.map((c) => c.ready));
idle.push(...conns);

let next = 0;
let finishTick: () => void;
const ticking = new Promise<void>((resolve) => (finishTick = resolve));

function tick(): void {
  const now = performance.now();
  for (;;) {
    const dueAt = t0 + next * intervalMs;
    if (dueAt > now || dueAt >= measureTo) break;
    next++;
    const path = paths.length === 1 ? paths[0] : paths[Math.floor(random() * paths.length)];
    const r: Req = { dueAt, sentAt: now, measured: dueAt >= measureFrom, bytes: requestFor(path) };
    if (r.measured) {
      due++;
      pending.add(r);
      lag.record((now - dueAt) * 1000);
    }
    const c = idle.pop();
    if (c) c.send(r);
    else queue.push(r);
  }
  const nextDue = t0 + next * intervalMs;
  if (nextDue >= measureTo) return finishTick();
  setTimeout(tick, Math.max(0, nextDue - performance.now()));
}

t0 = performance.now() + 20;
measureFrom = t0 + warmupMs;
measureTo = measureFrom + durationMs;
setTimeout(tick, 20);
await ticking;
const drainUntil = performance.now() + drainMs;
while (pending.size > 0 && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 20));
const unfinished = pending.size;
const end = performance.now();
for (const r of pending) {
  latency.record((end - r.sentAt) * 1000);
  schedule.record((end - r.dueAt) * 1000);
}
pending.clear();

const result: LoadgenResult = {
  offeredRate: rate,
  durationS: durationMs / 1000,
  connections,
  due,
  ok,
  non2xx,
  errors,
  unfinished,
  achievedRate: okAll / (Math.max(warmupMs + durationMs, lastAnswer - t0) / 1000),
  latencyUs: {
    p50: latency.percentile(50),
    p90: latency.percentile(90),
    p99: latency.percentile(99),
    p999: latency.percentile(99.9),
    max: latency.max,
    mean: Math.round(latency.mean()),
  },
  scheduleUs: { p50: schedule.percentile(50), p99: schedule.percentile(99), max: schedule.max },
  sendLagMs: { p99: lag.percentile(99) / 1000, max: lag.max / 1000 },
  firstError,
};
process.stdout.write(JSON.stringify(result) + '\n');
stopping = true;
for (const c of conns) c.socket.destroy();
process.exit(0);
