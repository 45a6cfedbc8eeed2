import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { defaultCacheDir, LastKnownGood } from '../lifecycle/last-known-good.ts';
import { DataPlane } from '../lifecycle/data-plane.ts';
import { FileSource } from '../lifecycle/file-source.ts';
import { log } from '../telemetry/log.ts';
import { VERSION } from '../version.ts';

export interface RunOptions {
  file: string;
  port?: number;
  debug: boolean;
  /** Reload when the file changes (SIGHUP reloads in every mode). */
  watch?: boolean;
  /** Where the last known good config is kept; default: see defaultCacheDir(). */
  cacheDir?: string;
  /** How long a watched source may fail before health says degraded. */
  staleAfterMs?: number;
  /** Called once listening (used by the quickstart and tests). */
  onListening?: (port: number) => void;
}

/** Serve until SIGTERM/SIGINT; resolves to the exit code. */
export async function run(opts: RunOptions): Promise<number> {
  const file = resolve(opts.file);
  const plane = new DataPlane({
    port: opts.port,
    debug: opts.debug,
    lastKnownGood: new LastKnownGood(opts.cacheDir ?? defaultCacheDir(), cacheName(opts.cacheDir, file)),
    syncEnabled: opts.watch === true,
    staleAfterMs: opts.staleAfterMs ?? 5 * 60_000,
  });
  await plane.loadLastKnownGood();
  const source = new FileSource(file, plane);

  // Start-up order: the file; else the last known good config; else (only when
  // watching, so a fixed file can still arrive) the embedded default, not ready.
  const first = await source.read();
  if (first.kind !== 'applied') {
    const errors = first.kind === 'rejected' ? first.errors : first.kind === 'unreadable' ? [`${opts.file}: ${first.error}`] : [];
    for (const e of errors) process.stderr.write(e + '\n');
    const restored = await plane.restoreLastKnownGood();
    if (restored.kind === 'applied') {
      log('warn', 'serving the last known good config instead of the file', { version: restored.snapshot.version, hash: restored.snapshot.hash });
    } else if (opts.watch) {
      await plane.applyDefault();
      log('warn', 'serving the embedded default (built-in endpoints only, not ready) until the file is fixed', { file });
    } else {
      process.stderr.write(`portico: refusing to start: ${opts.file} has ${errors.length} error(s) and there is no last known good config\n`);
      await plane.shutdown(0);
      return 1;
    }
  }

  let port: number;
  try {
    port = await plane.listen();
  } catch (err) {
    process.stderr.write(`portico: cannot start: ${(err as Error).message}\n`);
    await plane.shutdown(0);
    return 1;
  }
  const s = plane.current!;
  log('info', 'listening', { port, version: s.version, hash: s.hash, source: s.source, endpoints: s.config.endpoints.length, portico: VERSION });
  if (opts.watch) source.watch();
  opts.onListening?.(port);

  const onHup = () => {
    log('info', 'SIGHUP: reloading', { file });
    void source.read(true);
  };
  process.on('SIGHUP', onHup);

  return new Promise((resolveExit) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log('info', 'shutting down', { signal });
      source.stop();
      process.off('SIGHUP', onHup);
      plane.shutdown(10_000).then(
        () => resolveExit(0),
        (err) => {
          log('error', 'shutdown failed', { error: String(err) });
          resolveExit(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

/** With the default cache directory, several instances may share it: one file per config path. */
function cacheName(explicitDir: string | undefined, file: string): string {
  if (explicitDir !== undefined) return 'last-known-good';
  return 'last-known-good-' + createHash('sha256').update(file).digest('hex').slice(0, 12);
}
