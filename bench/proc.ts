// Child processes for the benchmark: every process the suite starts is
// recorded here and stopped by its pid (never by name). Also: waiting for a
// port, the pid tree of a process, and peak-RSS sampling from /proc.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Proc {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** The last lines of its stdout/stderr (up to 8 KiB kept), for error messages. */
  tail(lines?: number): string;
}

const live = new Set<Proc>();

/** Spawn and register a child; its output is kept (last 8 KiB) unless `inherit`. */
export function start(name: string, cmd: string, args: string[], opts: SpawnOptions & { keepStdout?: boolean } = {}): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let buf = '';
  const keep = (d: Buffer) => {
    buf += d.toString('utf8');
    if (buf.length > 8192) buf = buf.slice(-8192);
  };
  if (!opts.keepStdout) child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? -1));
    child.once('error', (err) => {
      buf += `\n${err.message}`;
      resolve(-1);
    });
  });
  if (child.pid === undefined) throw new Error(`${name}: cannot start ${cmd}`);
  const p: Proc = { name, pid: child.pid, child, exited, tail: (n = 15) => buf.trim().split('\n').slice(-n).join('\n') };
  live.add(p);
  void exited.then(() => live.delete(p));
  return p;
}

/** The pids of a process and all its descendants (from /proc). */
export function pidTree(root: number): number[] {
  const byParent = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [root];
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      // pid (comm) state ppid ...; comm may contain spaces and parentheses
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = byParent.get(ppid);
      if (list) list.push(Number(e));
      else byParent.set(ppid, [Number(e)]);
    } catch {
      // the process went away meanwhile
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    out.push(pid);
    for (const c of byParent.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/**
 * Stop a process by pid: `sig` (default SIGTERM), then SIGKILL after
 * `graceMs`; descendants that outlive it (nginx workers, cluster workers) are
 * then stopped by their own pids.
 */
export async function stop(p: Proc, sig: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  const tree = pidTree(p.pid);
  signal(p.pid, sig);
  const done = await Promise.race([p.exited.then(() => true), sleep(graceMs).then(() => false)]);
  if (!done) {
    signal(p.pid, 'SIGKILL');
    await Promise.race([p.exited, sleep(2000)]);
  }
  for (const pid of tree.slice(1)) {
    if (!alive(pid)) continue;
    signal(pid, 'SIGTERM');
    for (let i = 0; i < 20 && alive(pid); i++) await sleep(100);
    if (alive(pid)) signal(pid, 'SIGKILL');
  }
  live.delete(p);
}

/** Synchronous last resort (process exit, signals): SIGKILL every registered pid and its descendants. */
export function killAllSync(): void {
  for (const p of live) {
    for (const pid of pidTree(p.pid).reverse()) signal(pid, 'SIGKILL');
  }
  live.clear();
}

/** Resolve once something accepts TCP connections on host:port, or throw after timeoutMs. */
export async function waitForPort(port: number, timeoutMs: number, p?: Proc, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void p?.exited.then(() => (exited = true));
  while (Date.now() < deadline) {
    if (exited) {
      const tail = p!.tail();
      const lines = p!.tail(500).split('\n').filter((l) => l.trim());
      const last = lines.find((l) => /error|refus|cannot|unknown|invalid/i.test(l)) ?? lines.pop() ?? '';
      throw new Error(`${p!.name} exited before listening on ${port}: ${last}\n${tail}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ port, host });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`${p?.name ?? 'process'} did not listen on ${host}:${port} within ${timeoutMs} ms${p ? ':\n' + p.tail() : ''}`);
}

/** A free TCP port on loopback (bind to 0, read it, close). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM' | 'RssAnon'): number {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * Samples the RSS of a process tree every `everyMs`: the peak of the tree's
 * summed VmRSS, the largest VmHWM (kernel-recorded peak) of any single
 * process in it, which catches peaks between samples, and the largest sampled
 * RssAnon of a process (its private memory: heaps and buffers, without the
 * file-backed pages of the executable and libraries that processes share).
 */
export class RssSampler {
  #timer: NodeJS.Timeout | undefined;
  peakTreeKiB = 0;
  peakProcKiB = 0;
  peakAnonKiB = 0;
  readonly #root: number;

  constructor(root: number, everyMs = 200) {
    this.#root = root;
    this.sample();
    this.#timer = setInterval(() => this.sample(), everyMs);
    this.#timer.unref();
  }

  sample(): void {
    let sum = 0;
    for (const pid of pidTree(this.#root)) {
      sum += statusKiB(pid, 'VmRSS');
      this.peakProcKiB = Math.max(this.peakProcKiB, statusKiB(pid, 'VmHWM'));
      this.peakAnonKiB = Math.max(this.peakAnonKiB, statusKiB(pid, 'RssAnon'));
    }
    this.peakTreeKiB = Math.max(this.peakTreeKiB, sum);
  }

  stop(): { peakTreeBytes: number; peakProcBytes: number; peakAnonBytes: number } {
    this.sample();
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    return { peakTreeBytes: this.peakTreeKiB * 1024, peakProcBytes: this.peakProcKiB * 1024, peakAnonBytes: this.peakAnonKiB * 1024 };
  }
}

/** Run a command to completion (bounded), collecting stdout and stderr. */
export async function runToEnd(
  name: string,
  cmd: string,
  args: string[],
  timeoutMs: number,
  opts: SpawnOptions = {},
): Promise<{ code: number | string; stdout: string; stderr: string; ms: number }> {
  const t0 = performance.now();
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const p: Proc = {
    name,
    pid: child.pid ?? -1,
    child,
    exited: new Promise((resolve) => {
      child.once('close', (code, sig) => resolve(code ?? sig ?? -1));
      child.once('error', (err) => {
        stderr += err.message;
        resolve(-1);
      });
    }),
    tail: () => stderr,
  };
  if (p.pid > 0) live.add(p);
  const timer = setTimeout(() => {
    stderr += `\n${name}: killed after ${timeoutMs} ms`;
    if (p.pid > 0) signal(p.pid, 'SIGKILL');
  }, timeoutMs);
  const code = await p.exited;
  clearTimeout(timer);
  live.delete(p);
  return { code, stdout, stderr, ms: performance.now() - t0 };
}

/** Busy and total CPU ticks of the whole machine (/proc/stat, all CPUs). */
export function machineTicks(): { busy: number; total: number } {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest is inside user)
    const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
    const busy = user + nice + system + irq + softirq + (steal ?? 0);
    return { busy, total: busy + idle + (iowait ?? 0) };
  } catch {
    return { busy: 0, total: 0 };
  }
}

/** CPU ticks used by these pids' trees; for this process, also by its reaped children (wrk, loadgen). */
export function ownTicks(roots: number[]): number {
  let sum = 0;
  const seen = new Set<number>();
  for (const root of roots) {
    for (const pid of pidTree(root)) {
      if (seen.has(pid)) continue;
      seen.add(pid);
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        // fields after "(comm)": state=0 ... utime=11 stime=12 cutime=13 cstime=14
        sum += Number(f[11]) + Number(f[12]);
        if (pid === process.pid) sum += Number(f[13]) + Number(f[14]);
      } catch {
        // gone
      }
    }
  }
  return sum;
}

/**
 * Measures how much CPU processes outside the benchmark used during an
 * interval, in CPUs (0.5 = half a core on average): the machine's busy time
 * minus the time of the bench's own processes.
 */
export class ForeignCpu {
  readonly #roots: number[];
  readonly #m0 = machineTicks();
  readonly #o0: number;
  constructor(roots: number[]) {
    this.#roots = [process.pid, ...roots];
    this.#o0 = ownTicks(this.#roots);
  }
  /** CPUs used by others since construction. */
  end(cpus: number): number {
    const m1 = machineTicks();
    const dTotal = m1.total - this.#m0.total;
    if (dTotal <= 0) return 0;
    const foreign = m1.busy - this.#m0.busy - (ownTicks(this.#roots) - this.#o0);
    return Math.max(0, (foreign / dTotal) * cpus);
  }
}
