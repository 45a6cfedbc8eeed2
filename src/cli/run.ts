import { formatIssue, loadConfigFile } from '../config/load.ts';
import { compilePlan } from '../plan/compile.ts';
import { Gateway } from '../server/server.ts';
import { log } from '../telemetry/log.ts';
import { VERSION } from '../version.ts';

export interface RunOptions {
  file: string;
  port?: number;
  debug: boolean;
  /** Called once listening (used by the quickstart and tests). */
  onListening?: (port: number) => void;
}

/** Serve until SIGTERM/SIGINT; resolves to the exit code. */
export async function run(opts: RunOptions): Promise<number> {
  const result = await loadConfigFile(opts.file);
  if (result.errors.length) {
    for (const e of result.errors) process.stderr.write(formatIssue(e) + '\n');
    process.stderr.write(`portico: refusing to start: ${opts.file} has ${result.errors.length} error(s)\n`);
    return 1;
  }
  for (const w of result.warnings) log('warn', formatIssue(w));
  const config = result.config!;
  const started = Date.now();
  const plan = compilePlan(config);
  let gateway: Gateway;
  let address;
  try {
    gateway = new Gateway(plan, { port: opts.port, forceDebug: opts.debug, health: () => ({ portico_version: VERSION }) });
    address = await gateway.listen();
  } catch (err) {
    process.stderr.write(`portico: cannot start: ${(err as Error).message}\n`);
    await plan.close();
    return 1;
  }
  log('info', 'listening', { address: address.address, port: address.port, endpoints: config.endpoints.length, compile_ms: Date.now() - started, version: VERSION });
  opts.onListening?.(address.port);

  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log('info', 'shutting down', { signal });
      gateway.shutdown(10_000).then(
        () => resolve(0),
        (err) => {
          log('error', 'shutdown failed', { error: String(err) });
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
