// `portico control-plane`: serve the admin and data-plane APIs over a file or
// etcd store until SIGTERM/SIGINT.

import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration } from '../config/duration.ts';
import { FileStore } from '../controlplane/file-store.ts';
import { DEFAULT_ETCD_PREFIX, WATCH_HOLD_MS } from '../controlplane/protocol.ts';
import { ETCD_SECURITY_OPTIONS, etcdConnection, etcdFlags } from '../controlplane/etcd-connection.ts';
import { isLoopback } from '../controlplane/auth.ts';
import { ControlPlane } from '../controlplane/server.ts';
import type { ConfigStore } from '../controlplane/store.ts';
import { log } from '../telemetry/log.ts';
import { VERSION } from '../version.ts';

export const CONTROL_PLANE_USAGE = `  portico control-plane [--listen ADDR] [--store DIR | --etcd URLS [--etcd-prefix /portico]
        [--etcd-ca F] [--etcd-cert F --etcd-cert-key F] [--etcd-user U (password: $PORTICO_ETCD_PASSWORD)]]
        [--admin-token T] [--node-token T] [--watch-hold 30s]
        [--tls-cert FILE --tls-key FILE [--client-ca FILE]] [--insecure]
        serve the fleet's configuration (ADDR: 127.0.0.1:9000, :9000, [::1]:9000; tokens
        also from $PORTICO_ADMIN_TOKEN / $PORTICO_NODE_TOKEN); HTTPS with --tls-cert/--tls-key,
        client certificates bound to node ids with --client-ca; a non-loopback ADDR needs
        --admin-token and --node-token or --client-ca, or --insecure`;

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
        ...ETCD_SECURITY_OPTIONS,
        'admin-token': { type: 'string' },
        'node-token': { type: 'string' },
        'watch-hold': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'client-ca': { type: 'string' },
        insecure: { type: 'boolean' },
      },
    }).values as Record<string, string | undefined>;
  } catch (e) {
    return usage((e as Error).message, err);
  }
  const listen = parseListen((values.listen as string | undefined) ?? '127.0.0.1:9000');
  if (!listen) return usage(`--listen expects HOST:PORT, :PORT or [IPv6]:PORT, found "${values.listen}"`, err);
  if (values.store !== undefined && values.etcd !== undefined) return usage('use --store DIR or --etcd URLS, not both', err);
  const etcdOnly = Object.keys(ETCD_SECURITY_OPTIONS).find((k) => values[k] !== undefined);
  if (etcdOnly && values.etcd === undefined) return usage(`--${etcdOnly} goes with --etcd`, err);
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
  const tlsCert = values['tls-cert'] as string | undefined;
  const tlsKey = values['tls-key'] as string | undefined;
  const clientCa = values['client-ca'] as string | undefined;
  if ((tlsCert === undefined) !== (tlsKey === undefined)) return usage('--tls-cert and --tls-key go together', err);
  if (clientCa !== undefined && tlsCert === undefined) return usage('--client-ca needs --tls-cert and --tls-key (client certificates are a TLS feature)', err);
  const tls = tlsCert !== undefined && tlsKey !== undefined ? { cert: tlsCert, key: tlsKey, ...(clientCa !== undefined && { clientCa }) } : undefined;
  const open = openings({ host: listen.host, adminToken, nodeToken, clientCa });
  const insecure = values.insecure === true;
  if (open.length && !insecure) {
    err(`portico control-plane: refusing to listen on ${values.listen} (not loopback) with ${open.join('; ')}. Set the missing credentials, or pass --insecure to start anyway\n`);
    return 2;
  }

  let store: ConfigStore;
  let where: Record<string, unknown>;
  try {
    if (values.etcd !== undefined) {
      const conn = etcdConnection(etcdFlags(values.etcd as string, values), env);
      if ('error' in conn) return usage(conn.error, err);
      const { EtcdStore } = await import('../controlplane/etcd-store.ts'); // etcd3 and gRPC load only when used
      for (const w of conn.warnings) log('warn', w);
      store = new EtcdStore(conn.hosts, prefix, conn.security);
      where = { etcd: conn.hosts, prefix, etcd_tls: conn.security.tls ? (conn.security.tls.cert ? 'client certificate' : 'server verified') : 'none', etcd_user: conn.security.auth?.username ?? null };
    } else {
      const dir = resolve((values.store as string | undefined) ?? defaultStoreDir(env));
      store = await FileStore.open(dir);
      where = { dir };
    }
  } catch (e) {
    err(`portico: cannot open the store: ${(e as Error).message}\n`);
    return 1;
  }

  let cp: ControlPlane;
  try {
    cp = new ControlPlane({ store, adminToken, nodeToken, watchHoldMs, tls, insecure: insecure ? open : undefined });
  } catch (e) {
    err(`portico: cannot serve HTTPS: ${(e as Error).message}\n`);
    await store.close();
    return 1;
  }
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
    admin_auth: adminToken ? 'token' : 'loopback clients only',
    node_auth: [clientCa ? 'client certificate' : '', nodeToken ? 'token' : ''].filter(Boolean).join(' + ') || 'open',
    tls: tls !== undefined,
    portico: VERSION,
  });
  if (insecure && open.length) log('warn', 'started with --insecure', { open });

  return new Promise((resolveExit) => {
    const stop = (signal: string) => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      process.off('SIGHUP', onHup);
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
    // SIGHUP: the TLS files again; an unusable one leaves the current ones in use.
    const onHup = () => {
      if (!tls) return log('info', 'SIGHUP: nothing to reload (no TLS)');
      try {
        const m = cp.reloadTls();
        log('info', 'TLS files reloaded', { cert: m?.certInfo });
      } catch (e) {
        log('error', 'TLS files not reloaded; the current ones stay in use', { error: (e as Error).message });
      }
    };
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
    process.on('SIGHUP', onHup);
  });
}

/**
 * What a control plane listening on `host` leaves open to the network: empty
 * on loopback, or when the admin API needs a token and the data-plane API
 * (which hands out configurations) a token or a client certificate.
 */
export function openings(o: { host: string | undefined; adminToken?: string; nodeToken?: string; clientCa?: string }): string[] {
  if (o.host !== undefined && (o.host === 'localhost' || isLoopback(o.host))) return [];
  const open: string[] = [];
  if (o.adminToken === undefined) open.push('no --admin-token');
  if (o.nodeToken === undefined && o.clientCa === undefined) open.push('no --node-token nor --client-ca: anyone who reaches it can watch every configuration');
  return open;
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
