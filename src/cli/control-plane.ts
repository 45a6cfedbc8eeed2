// `portico control-plane`: serve the admin and data-plane APIs over a file or
// etcd store until SIGTERM/SIGINT.

import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration } from '../config/duration.ts';
import { FileStore } from '../controlplane/file-store.ts';
import { DEFAULT_ETCD_PREFIX, WATCH_HOLD_MS } from '../controlplane/protocol.ts';
import { ControlPlane } from '../controlplane/server.ts';
import type { ConfigStore } from '../controlplane/store.ts';
import { log } from '../telemetry/log.ts';
import { VERSION } from '../version.ts';

export const CONTROL_PLANE_USAGE = `  portico control-plane [--listen ADDR] [--store DIR | --etcd URLS [--etcd-prefix /portico]]
        [--admin-token T] [--node-token T] [--watch-hold 30s]
        serve the fleet's configuration (ADDR: 127.0.0.1:9000, :9000, [::1]:9000; tokens
        also from $PORTICO_ADMIN_TOKEN / $PORTICO_NODE_TOKEN)`;

/** `err` receives usage and start-up errors (tests pass their own); logs go to stderr. */
export async function controlPlane(args: string[], env: NodeJS.ProcessEnv = process.env, err: (text: string) => void = (t) => void process.stderr.write(t)): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args,
      strict: true,
      options: {
        listen: { type: 'string', short: 'l' },
        store: { type: 'string' },
        etcd: { type: 'string' },
        'etcd-prefix': { type: 'string' },
        'admin-token': { type: 'string' },
        'node-token': { type: 'string' },
        'watch-hold': { type: 'string' },
      },
    }).values as Record<string, string | undefined>;
  } catch (e) {
    return usage((e as Error).message, err);
  }
  const listen = parseListen((values.listen as string | undefined) ?? '127.0.0.1:9000');
  if (!listen) return usage(`--listen expects HOST:PORT, :PORT or [IPv6]:PORT, found "${values.listen}"`, err);
  if (values.store !== undefined && values.etcd !== undefined) return usage('use --store DIR or --etcd URLS, not both', err);
  const prefix = (values['etcd-prefix'] as string | undefined) ?? DEFAULT_ETCD_PREFIX;
  if (!prefix.startsWith('/')) return usage(`--etcd-prefix must start with "/", found "${prefix}"`, err);
  const adminToken = (values['admin-token'] as string | undefined) ?? (env.PORTICO_ADMIN_TOKEN || undefined);
  const nodeToken = (values['node-token'] as string | undefined) ?? (env.PORTICO_NODE_TOKEN || undefined);
  if (adminToken === '' || nodeToken === '') return usage('tokens cannot be empty', err);
  let watchHoldMs = WATCH_HOLD_MS;
  if (values['watch-hold'] !== undefined) {
    const ms = parseDuration(values['watch-hold'] as string);
    if (ms === undefined || ms <= 0) return usage(`--watch-hold expects a duration such as "30s", found "${values['watch-hold']}"`, err);
    watchHoldMs = ms;
  }

  let store: ConfigStore;
  let where: Record<string, unknown>;
  try {
    if (values.etcd !== undefined) {
      const hosts = (values.etcd as string).split(',').map((h) => h.trim()).filter(Boolean);
      if (!hosts.length || hosts.some((h) => !/^https?:\/\/./.test(h))) return usage(`--etcd expects comma-separated http(s):// URLs, found "${values.etcd}"`, err);
      const { EtcdStore } = await import('../controlplane/etcd-store.ts'); // etcd3 and gRPC load only when used
      store = new EtcdStore(hosts, prefix);
      where = { etcd: hosts, prefix };
    } else {
      const dir = resolve((values.store as string | undefined) ?? defaultStoreDir(env));
      store = await FileStore.open(dir);
      where = { dir };
    }
  } catch (e) {
    err(`portico: cannot open the store: ${(e as Error).message}\n`);
    return 1;
  }

  const cp = new ControlPlane({ store, adminToken, nodeToken, watchHoldMs });
  let port: number;
  try {
    port = await cp.listen(listen.port, listen.host);
  } catch (e) {
    err(`portico: cannot listen on ${values.listen ?? '127.0.0.1:9000'}: ${(e as Error).message}\n`);
    await store.close();
    return 1;
  }
  log('info', 'control plane listening', {
    port,
    host: listen.host ?? '*',
    store: store.kind,
    ...where,
    admin_auth: adminToken ? 'token' : 'writes from loopback only',
    node_auth: nodeToken ? 'token' : 'open',
    portico: VERSION,
  });

  return new Promise((resolveExit) => {
    const stop = (signal: string) => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      log('info', 'shutting down', { signal });
      cp.stop().then(
        () => resolveExit(0),
        (e) => {
          log('error', 'unclean shutdown', { error: (e as Error).message });
          resolveExit(1);
        },
      );
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
  });
}

/** $XDG_STATE_HOME/portico/control-plane, else ~/.local/state/portico/control-plane. */
export function defaultStoreDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'portico', 'control-plane');
}

/** "127.0.0.1:9000", ":9000" (every interface), "[::1]:9000", "9000". */
export function parseListen(addr: string): { host?: string; port: number } | undefined {
  const m = /^(?:(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]*)):)?(\d{1,5})$/.exec(addr);
  if (!m || Number(m[3]) > 65535) return undefined;
  return { host: m[1] ?? (m[2] || undefined), port: Number(m[3]) };
}

function usage(message: string, err: (text: string) => void): number {
  err(`portico control-plane: ${message}\n\nUsage:\n${CONTROL_PLANE_USAGE}\n`);
  return 2;
}
