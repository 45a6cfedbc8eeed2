#!/usr/bin/env node
// Node 24 runs the TypeScript sources directly (type stripping). Stripping loads
// a WebAssembly compiler that stays resident (~17 MB per process); Node's
// compile cache keeps the stripped and compiled modules on disk, so every later
// start (and every --workers process) skips it. The cache lives in
// $NODE_COMPILE_CACHE, else <os tmpdir>/node-compile-cache, and is keyed by file
// content and Node version; NODE_DISABLE_COMPILE_CACHE=1 turns it off.
import { enableCompileCache, flushCompileCache, getCompileCacheDir } from 'node:module';

enableCompileCache();
const cacheDir = getCompileCacheDir();
// Workers and other children start with the same cache.
if (cacheDir) process.env.NODE_COMPILE_CACHE = cacheDir;

const { main } = await import('../src/cli/main.ts');
// Written now, not only at exit, so the workers forked next find it.
flushCompileCache();
process.exitCode = await main(process.argv.slice(2));
