// `portico run | check | diff | import | version`: thin commands over config/, plan/ and server/.

import { parseArgs } from 'node:util';
import { VERSION } from '../version.ts';
import { check } from './check.ts';
import { run } from './run.ts';
import { status } from './status.ts';
import { availableParallelism, hostname } from 'node:os';
import { parseDuration } from '../config/duration.ts';
import { DEFAULT_ETCD_PREFIX, etcdKeys, NODE_ID } from '../controlplane/protocol.ts';
import { ETCD_SECURITY_OPTIONS, etcdConnection, etcdFlags } from '../controlplane/etcd-connection.ts';
import { checkControlPlaneTls } from '../controlplane/tls-client.ts';

const USAGE = `Usage:
  portico run -c FILE [-p PORT] [-d] [--watch] [--cache-dir DIR] [--stale-after DURATION]
        serve FILE (-p overrides port, -d enables /__debug, --watch reloads on change;
        SIGHUP always reloads; the last known good config is kept in DIR)
  portico run --control-plane URL [--node-id ID] [--node-token T] [-c BOOTSTRAP] [...]
        [--control-plane-ca F] [--control-plane-cert F --control-plane-key F]  (https: verified against F or the system's CAs)
  portico run --etcd URLS [--etcd-key KEY] [--node-id ID] [-c BOOTSTRAP] [...]
        fleet mode: follow a control plane (long-poll watch) or an etcd key
        etcd over TLS: --etcd-ca F, --etcd-cert F --etcd-cert-key F; auth: --etcd-user U, password in $PORTICO_ETCD_PASSWORD
        --workers N: serving processes sharing the port (default $PORTICO_WORKERS, else one per CPU)
        --management-port P: /metrics, /__stats, /__health, /__ready on 127.0.0.1:P (default $PORTICO_MANAGEMENT_PORT,
            else where the config's telemetry/metrics or telemetry/opentelemetry Prometheus exporter says; none)
  portico check -c FILE [--lint]       validate FILE; --lint turns unknown keys into errors
  portico check --compat FILE [--json] every namespace FILE uses and what this version does with it
  portico diff OLD NEW [--json]        what NEW changes against OLD, endpoint by endpoint
                                       (exit 0: no change, 1: changes, 2: a file does not pass check)
  portico import openapi SPEC [--host URL] [--validate] [-o FILE]
        a configuration from an OpenAPI 3.0/3.1 document (JSON or YAML); --validate checks request
        bodies against the spec's JSON schemas; -o writes FILE (YAML for .yml/.yaml) instead of stdout
  portico status [--url URL]           show a running instance's health (default http://127.0.0.1:8080)
  portico version                      print the version
  portico control-plane [--listen ADDR] [--store DIR | --etcd URLS [--etcd-prefix P]] [--admin-token T] [--node-token T]
        [--tls-cert F --tls-key F [--client-ca F]] [--insecure]
        serve the fleet's configurations (docs/fleet.md)
  portico ctl publish -f FILE | history | get [V] | diff A B | rollback V | nodes  [--url URL] [--token T] [--ca F] [--mask-secrets] [--json]
        drive a control plane's admin API`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'run': {
      const { values } = parse(rest, {
        config: { type: 'string', short: 'c' },
        port: { type: 'string', short: 'p' },
        debug: { type: 'boolean', short: 'd' },
        watch: { type: 'boolean', short: 'w' },
        'cache-dir': { type: 'string' },
        'stale-after': { type: 'string' },
        'control-plane': { type: 'string' },
        'node-id': { type: 'string' },
        'node-token': { type: 'string' },
        'control-plane-ca': { type: 'string' },
        'control-plane-cert': { type: 'string' },
        'control-plane-key': { type: 'string' },
        etcd: { type: 'string' },
        'etcd-key': { type: 'string' },
        ...ETCD_SECURITY_OPTIONS,
        workers: { type: 'string' },
        'management-port': { type: 'string' },
      });
      if (!values) return 2;
      const file = values.config as string | undefined;
      const cpUrl = values['control-plane'] as string | undefined;
      const etcdUrls = values.etcd as string | undefined;
      if (cpUrl && etcdUrls) return usage('use either --control-plane or --etcd, not both');
      if (!file && !cpUrl && !etcdUrls) return usage('run needs -c FILE (or --control-plane URL / --etcd URLS)');
      let port: number | undefined;
      if (values.port !== undefined) {
        port = Number(values.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535) return usage(`-p expects a port number, found "${values.port}"`);
      }
      let staleAfterMs: number | undefined;
      if (values['stale-after'] !== undefined) {
        staleAfterMs = parseDuration(values['stale-after'] as string);
        if (staleAfterMs === undefined) return usage(`--stale-after expects a duration such as "5m", found "${values['stale-after']}"`);
      }
      const workersText = (values.workers as string | undefined) ?? process.env.PORTICO_WORKERS;
      let workers = availableParallelism();
      if (workersText !== undefined && workersText !== '') {
        workers = Number(workersText);
        if (!Number.isInteger(workers) || workers < 1 || workers > 256) return usage(`--workers expects a whole number from 1 to 256, found "${workersText}"`);
      }
      const managementText = (values['management-port'] as string | undefined) ?? process.env.PORTICO_MANAGEMENT_PORT;
      let managementPort: number | undefined;
      if (managementText !== undefined && managementText !== '') {
        managementPort = Number(managementText);
        if (!Number.isInteger(managementPort) || managementPort < 0 || managementPort > 65535) return usage(`--management-port expects a port number, found "${managementText}"`);
      }
      const nodeId = (values['node-id'] as string | undefined) ?? process.env.PORTICO_NODE_ID ?? hostname();
      if (!NODE_ID.test(nodeId)) return usage(`--node-id expects letters, digits, '.', '_' or '-' (at most 128), found "${nodeId}"`);
      const nodeToken = (values['node-token'] as string | undefined) ?? process.env.PORTICO_NODE_TOKEN;
      const cpTls = { ca: values['control-plane-ca'] as string | undefined, cert: values['control-plane-cert'] as string | undefined, key: values['control-plane-key'] as string | undefined };
      const cpTlsError = cpUrl ? checkControlPlaneTls(cpUrl, cpTls) : Object.values(cpTls).some((f) => f !== undefined) ? '--control-plane-ca/-cert/-key go with --control-plane' : undefined;
      if (cpTlsError) return usage(cpTlsError);
      const etcdOnly = Object.keys(ETCD_SECURITY_OPTIONS).find((k) => values[k] !== undefined);
      if (etcdOnly && !etcdUrls) return usage(`--${etcdOnly} goes with --etcd`);
      const etcd = etcdUrls === undefined ? undefined : etcdConnection(etcdFlags(etcdUrls, values), process.env);
      if (etcd && 'error' in etcd) return usage(etcd.error);
      return run({
        file,
        port,
        debug: values.debug === true,
        watch: values.watch === true,
        cacheDir: values['cache-dir'] as string | undefined,
        staleAfterMs,
        workers,
        managementPort,
        controlPlane: cpUrl ? { url: cpUrl, nodeId, token: nodeToken, tls: cpTls } : undefined,
        etcd: etcd
          ? { endpoints: etcd.hosts, key: (values['etcd-key'] as string | undefined) ?? etcdKeys(DEFAULT_ETCD_PREFIX).current, nodeId, security: etcd.security, warnings: etcd.warnings }
          : undefined,
      });
    }
    case 'status':
    case 'health': {
      const { values } = parse(rest, { url: { type: 'string', short: 'u' }, json: { type: 'boolean' } });
      if (!values) return 2;
      return status((values.url as string | undefined) ?? 'http://127.0.0.1:8080', values.json === true);
    }
    case 'check': {
      const { values, positionals } = parse(rest, { config: { type: 'string', short: 'c' }, lint: { type: 'boolean' }, compat: { type: 'boolean' }, json: { type: 'boolean' } }, true);
      if (!values) return 2;
      const file = (values.config as string | undefined) ?? positionals?.[0];
      if (!file) return usage('check needs -c FILE');
      if (values.compat === true) return (await import('./compat.ts')).checkCompat(file, values.json === true);
      return check(file, values.lint === true);
    }
    case 'diff': {
      const { values, positionals } = parse(rest, { json: { type: 'boolean' } }, true);
      if (!values) return 2;
      if (positionals?.length !== 2) return usage('diff needs two files: portico diff OLD NEW');
      return (await import('./diff.ts')).diffFiles(positionals[0]!, positionals[1]!, values.json === true);
    }
    case 'import': {
      const { values, positionals } = parse(rest, { host: { type: 'string' }, validate: { type: 'boolean' }, output: { type: 'string', short: 'o' } }, true);
      if (!values) return 2;
      const [kind, spec, ...extra] = positionals ?? [];
      if (kind !== 'openapi') return usage(kind === undefined ? 'import needs a kind: portico import openapi SPEC' : `unknown import kind "${kind}" (only "openapi")`);
      if (spec === undefined || extra.length) return usage('import openapi needs one SPEC file');
      return (await import('./import-openapi.ts')).importOpenApi(spec, {
        host: values.host as string | undefined,
        validate: values.validate === true,
        output: values.output as string | undefined,
      });
    }
    case 'control-plane': // loaded on demand: etcd and gRPC are heavy
      return (await import('./control-plane.ts')).controlPlane(rest);
    case 'ctl':
      return (await import('./ctl.ts')).ctl(rest);
    case 'version':
    case '--version':
    case '-v':
      process.stdout.write(`Portico ${VERSION}\n`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return command === undefined ? 2 : 0;
    default:
      return usage(`unknown command "${command}"`);
  }
}

type Options = NonNullable<Parameters<typeof parseArgs>[0]>['options'];

function parse(
  args: string[],
  options: Options,
  allowPositionals = false,
): { values?: Record<string, string | boolean | (string | boolean)[] | undefined>; positionals?: string[] } {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (err) {
    usage((err as Error).message);
    return {};
  }
}

function usage(message: string): number {
  process.stderr.write(`portico: ${message}\n\n${USAGE}\n`);
  return 2;
}
