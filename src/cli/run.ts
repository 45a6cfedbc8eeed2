import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import type { EtcdSecurity } from '../controlplane/etcd-connection.ts';
import type { TlsFiles } from '../controlplane/tls-files.ts';
import { ClusterServing } from '../lifecycle/cluster-serving.ts';
import { ControlPlaneSource } from '../lifecycle/control-plane-source.ts';
import { DataPlane, type OfferOutcome } from '../lifecycle/data-plane.ts';
import { FileSource } from '../lifecycle/file-source.ts';
import { defaultCacheDir, LastKnownGood } from '../lifecycle/last-known-good.ts';
import type { Snapshot } from '../lifecycle/snapshot.ts';
import { optionsOf } from '../namespaces/namespace.ts';
import { telemetryMetrics } from '../namespaces/telemetry-metrics.ts';
import { telemetryOpentelemetry } from '../namespaces/telemetry-opentelemetry.ts';
import { flushLog, log } from '../telemetry/log.ts';
import { startManagement, type ManagementListener } from '../telemetry/management.ts';
import { setLifecycleClock } from '../telemetry/metrics.ts';
import { VERSION } from '../version.ts';

export interface RunOptions {
  /** -c: the config file; in fleet mode the bundled fallback (optional). */
  file?: string;
  port?: number;
  debug: boolean;
  /** Reload when the file changes (SIGHUP reloads in every mode). */
  watch?: boolean;
  /** Where the last known good config is kept; default: see defaultCacheDir(). */
  cacheDir?: string;
  /** How long a watched source may fail before health says degraded. */
  staleAfterMs?: number;
  controlPlane?: { url: string; nodeId: string; token?: string; tls?: TlsFiles };
  etcd?: { endpoints: string[]; key: string; nodeId: string; security?: EtcdSecurity; warnings?: string[] };
  /** Processes serving traffic; 1 serves in this process, more fork workers sharing the port. */
  workers?: number;
  /**
   * The management listener's port (metrics, health, readiness, stats on 127.0.0.1). When undefined,
   * the configuration's telemetry/metrics or telemetry/opentelemetry Prometheus exporter may name one.
   */
  managementPort?: number;
  /** Called once listening (used by the quickstart and tests). */
  onListening?: (port: number) => void;
}

interface RemoteSource {
  start(): void;
  stop(): Promise<void>;
  refresh(): void;
}

/** How long start-up waits for a remote source before falling back. */
const FIRST_FETCH_MS = 3_000;

/** Serve until SIGTERM/SIGINT; resolves to the exit code. */
export async function run(opts: RunOptions): Promise<number> {
  const file = opts.file === undefined ? undefined : resolve(opts.file);
  const remoteMode = opts.controlPlane !== undefined || opts.etcd !== undefined;
  let management: ManagedListener | undefined;
  const plane: DataPlane = new DataPlane({
    // A failed move is logged by the listener; the data plane goes on.
    onApplied: (s) => void management?.follow(s).catch(() => undefined),
    port: opts.port,
    debug: opts.debug,
    lastKnownGood: new LastKnownGood(opts.cacheDir ?? defaultCacheDir(), cacheName(opts)),
    syncEnabled: remoteMode || opts.watch === true,
    staleAfterMs: opts.staleAfterMs ?? 5 * 60_000,
    serving: (opts.workers ?? 1) > 1 ? (hooks) => new ClusterServing(hooks, { workers: opts.workers!, debug: opts.debug }) : undefined,
  });
  await plane.loadLastKnownGood();
  const fileSource = file === undefined ? undefined : new FileSource(file, plane);
  const remote: (RemoteSource & { first(): ReturnType<ControlPlaneSource['fetchOnce']> }) | undefined = opts.controlPlane
    ? wrap(new ControlPlaneSource(plane, opts.controlPlane), (s) => s.fetchOnce(FIRST_FETCH_MS))
    : opts.etcd
      ? wrap(await etcdSource(plane, opts.etcd), (s) => s.readOnce())
      : undefined;

  // Start-up order: the configured source; the last known good config; the
  // bundled -c file (fleet mode); the embedded default (not ready) when
  // something may still deliver a config (fleet mode or --watch).
  const errors: string[] = [];
  let applied = false;
  const tried = (o: OfferOutcome | { kind: string; error?: string; errors?: string[] }) => {
    if (o.kind === 'applied') applied = true;
    else if ('errors' in o && o.errors) errors.push(...o.errors);
    else if ('error' in o && o.error) errors.push(o.error);
  };
  if (remote) tried(await remote.first());
  else if (fileSource) {
    const first = await fileSource.read();
    // An unreadable file is as much a refused config as an invalid one: health shows it.
    if (first.kind === 'unreadable') plane.refuse({ source: 'file', label: fileSource.file }, [`${opts.file}: ${first.error}`]);
    tried(first);
  }
  if (!applied) {
    for (const e of errors) process.stderr.write(e + '\n');
    const restored = await plane.restoreLastKnownGood();
    if (restored.kind === 'applied') {
      applied = true;
      log('warn', 'serving the last known good config', { version: restored.snapshot.version, hash: restored.snapshot.hash });
    }
  }
  if (!applied && remote && fileSource) {
    const bundled = await fileSource.read();
    if (bundled.kind === 'applied') {
      applied = true;
      log('warn', 'serving the bundled config file until the source delivers one', { file });
    } else tried(bundled);
  }
  if (!applied) {
    if (remote || opts.watch) {
      await plane.applyDefault();
      log('warn', 'serving the embedded default (built-in endpoints only, not ready) until a config arrives');
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
  setLifecycleClock(plane.clock);
  management = new ManagedListener(opts.managementPort, (address) =>
    startManagement({ ...address, health: () => plane.health(), ready: () => plane.ready(), workers: plane.workers }),
  );
  try {
    await management.follow(plane.current!);
  } catch (err) {
    // Asked for on the command line: a port that cannot be bound is a start-up error. Named by
    // the configuration (KrakenD files often carry telemetry/metrics' ":8090"): traffic is served
    // anyway, and a later reload may move the listener somewhere free.
    if (opts.managementPort === undefined) log('error', 'the management listener cannot start; serving without it', { error: (err as Error).message });
    else {
      process.stderr.write(`portico: cannot start the management listener: ${(err as Error).message}\n`);
      await plane.shutdown(0);
      return 1;
    }
  }
  const s = plane.current!;
  log('info', 'listening', { port, workers: opts.workers ?? 1, version: s.version, hash: s.hash, source: s.source, endpoints: s.config.endpoints.length, portico: VERSION });
  if (remote) remote.start();
  else if (opts.watch) fileSource?.watch();
  opts.onListening?.(port);

  const onHup = () => {
    log('info', 'SIGHUP: reloading');
    if (remote) remote.refresh();
    else void fileSource?.read(true);
  };
  process.on('SIGHUP', onHup);

  return new Promise((resolveExit) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log('info', 'shutting down', { signal });
      fileSource?.stop();
      process.off('SIGHUP', onHup);
      Promise.all([remote?.stop(), plane.shutdown(10_000), management?.stop()]).then(
        () => flushLog().then(() => resolveExit(0)),
        (err) => {
          log('error', 'shutdown failed', { error: String(err) });
          void flushLog().then(() => resolveExit(1));
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

interface ManagementAddress {
  host: string;
  port: number;
}

/** Where the configuration asks for the management listener (a Prometheus exporter's port, telemetry/metrics' listen_address). */
function configuredManagement(s: Snapshot): ManagementAddress | undefined {
  const ns = s.config.namespaces;
  const a = optionsOf(ns, telemetryOpentelemetry)?.management ?? optionsOf(ns, telemetryMetrics)?.management;
  // Loopback unless an address is named: metrics and stats are for operators.
  return a === undefined ? undefined : { host: a.host ?? '127.0.0.1', port: a.port };
}

/**
 * The management listener, following the configuration: --management-port
 * wins; otherwise each applied configuration may move it (a new address is
 * bound before the old one closes; one that cannot be bound leaves the old
 * one serving) or stop it. Moves are made one at a time.
 */
class ManagedListener {
  readonly #fixed: number | undefined;
  readonly #start: (a: ManagementAddress) => Promise<ManagementListener>;
  #current: { address: ManagementAddress; listener: ManagementListener } | undefined;
  #queue: Promise<void> = Promise.resolve();
  #stopped = false;
  #followed = false;

  constructor(fixedPort: number | undefined, start: (a: ManagementAddress) => Promise<ManagementListener>) {
    this.#fixed = fixedPort;
    this.#start = start;
  }

  /** Move to where `s` asks; the first call (start-up) rejects when the address cannot be bound. */
  follow(s: Snapshot): Promise<void> {
    const first = !this.#followed;
    this.#followed = true;
    const want = this.#fixed !== undefined ? { host: '127.0.0.1', port: this.#fixed } : configuredManagement(s);
    const move = this.#queue.then(() => this.#move(want));
    this.#queue = move.catch((err: Error) => {
      if (!first) log('error', 'the management listener cannot move; it stays where it is', { error: err.message, host: want?.host, port: want?.port });
    });
    return move;
  }

  async #move(want: ManagementAddress | undefined): Promise<void> {
    const cur = this.#current;
    if (this.#stopped || (cur && want && cur.address.host === want.host && (cur.address.port === want.port || want.port === 0))) return;
    if (!cur && !want) return;
    const next = want ? await this.#start(want) : undefined;
    this.#current = next && want ? { address: want, listener: next } : undefined;
    await cur?.listener.close();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#queue;
    await this.#current?.listener.close();
  }
}

/** etcd's client (gRPC, protobuf) costs ~35 MB of memory: loaded only in etcd mode. */
async function etcdSource(plane: DataPlane, etcd: NonNullable<RunOptions['etcd']>) {
  const { EtcdSource } = await import('../lifecycle/etcd-source.ts');
  for (const w of etcd.warnings ?? []) log('warn', w);
  return new EtcdSource(plane, { endpoints: etcd.endpoints, key: etcd.key, nodeId: etcd.nodeId, security: etcd.security });
}

function wrap<S extends RemoteSource>(source: S, first: (s: S) => ReturnType<ControlPlaneSource['fetchOnce']>) {
  return { start: () => source.start(), stop: () => source.stop(), refresh: () => source.refresh(), first: () => first(source) };
}

/**
 * With an explicit --cache-dir the file is last-known-good.json; in the shared
 * default directory, one file per source so instances do not overwrite each other.
 */
function cacheName(opts: RunOptions): string {
  if (opts.cacheDir !== undefined) return 'last-known-good';
  const identity = opts.controlPlane
    ? `cp:${opts.controlPlane.url}:${opts.controlPlane.nodeId}`
    : opts.etcd
      ? `etcd:${opts.etcd.endpoints.join(',')}:${opts.etcd.key}:${opts.etcd.nodeId}`
      : `file:${resolve(opts.file ?? '')}`;
  return 'last-known-good-' + createHash('sha256').update(identity).digest('hex').slice(0, 12);
}
