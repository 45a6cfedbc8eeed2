#!/usr/bin/env node
// Node 24 runs the TypeScript sources directly (type stripping). Stripping loads
// a WebAssembly compiler that stays resident (~17 MB per process); Node's
// compile cache keeps the stripped and compiled modules on disk, so every later
// start (and every --workers process) skips it. The cache lives in
// $NODE_COMPILE_CACHE, else <os tmpdir>/node-compile-cache, and is keyed by file
// content and Node version; NODE_DISABLE_COMPILE_CACHE=1 turns it off.
import { enableCompileCache, flushCompileCache, getCompileCacheDir } from 'node:module';

// `portico run` on Node: V8 sizes its heap for the machine, and its old
// generation grows far before a full collection, so a worker under load
// peaked near 300 MB, mostly garbage. A 1 GiB heap ceiling makes V8 collect
// the old generation sooner; the young generation stays 32 MB semi-spaces
// (V8's own choice on a large machine), because smaller ones cost 8-40% of
// throughput with 64 KiB bodies, measured side by side (bench/heap-flags.sh,
// docs/performance.md). V8 reads these flags only at start, so the process
// replaces itself once with them (same pid, nothing spawned); workers inherit
// them. A --max-semi-space-size or --max-old-space-size of your own
// (NODE_OPTIONS or node's arguments) is kept.
const HEAP_FLAGS = ['--max-semi-space-size=32', '--max-old-space-size=1024'];
if (process.argv[2] === 'run' && !process.versions.bun && typeof process.execve === 'function') {
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' ');
  if (!/--max-(?:semi|old)-space-size/.test(given)) {
    process.execve(process.execPath, [process.execPath, ...process.execArgv, ...HEAP_FLAGS, ...process.argv.slice(1)]);
  }
}

enableCompileCache();
const cacheDir = getCompileCacheDir();
// Workers and other children start with the same cache.
if (cacheDir) process.env.NODE_COMPILE_CACHE = cacheDir;

const { main } = await import('../src/cli/main.ts');
// Written now, not only at exit, so the workers forked next find it.
flushCompileCache();
process.exitCode = await main(process.argv.slice(2));
