// nginx for the benchmark: the backend (fixed JSON files) and the reverse
// proxy under test. Each instance runs in the foreground with its own prefix
// directory (config, pid file, logs, temp paths), so the suite owns its pid:
//   nginx -p DIR -e DIR/logs/error.log -c DIR/nginx.conf -g 'daemon off;'

import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runToEnd, start, waitForPort, type Proc } from './proc.ts';

export const NGINX = process.env.BENCH_NGINX ?? '/usr/sbin/nginx';

export async function nginxVersion(): Promise<string | undefined> {
  const r = await runToEnd('nginx -v', NGINX, ['-v'], 5000);
  if (r.code !== 0) return undefined;
  return (r.stderr + r.stdout).trim().replace(/^nginx version:\s*/, '');
}

/** The part every instance shares: foreground, one worker, files under the prefix. */
function mainBlock(dir: string, workers: number): string {
  // Running as root, nginx would switch workers to "nobody"; keep the
  // invoking user so the files under the (private) temp prefix stay readable.
  const user = process.getuid?.() === 0 ? 'user root root;\n' : '';
  return `${user}worker_processes ${workers};
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'logs', 'error.log')} warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; multi_accept on; }
`;
}

function httpCommon(dir: string): string {
  return `  access_log off;
  client_body_temp_path ${join(dir, 'tmp', 'body')};
  proxy_temp_path ${join(dir, 'tmp', 'proxy')};
  fastcgi_temp_path ${join(dir, 'tmp', 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'tmp', 'uwsgi')};
  scgi_temp_path ${join(dir, 'tmp', 'scgi')};
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  server_tokens off;
  tcp_nodelay on;
`;
}

function prepare(dir: string): void {
  for (const d of ['logs', 'tmp', 'www']) mkdirSync(join(dir, d), { recursive: true });
  chmodSync(dir, 0o755);
}

/**
 * The backend: `files` (name -> body) under /data/NAME, served from memory
 * (open_file_cache, sendfile), keep-alive, no access log. Any path under
 * /api/ answers /data/1k.json (the 1,000-route scenario).
 */
export function writeBackendConfig(dir: string, port: number, files: Record<string, string>, workers = 1): string {
  prepare(dir);
  mkdirSync(join(dir, 'www', 'data'), { recursive: true });
  for (const [name, body] of Object.entries(files)) writeFileSync(join(dir, 'www', 'data', name), body);
  const conf = `${mainBlock(dir, workers)}
http {
${httpCommon(dir)}  sendfile on;
  tcp_nopush on;
  open_file_cache max=64 inactive=1h;
  open_file_cache_valid 1h;
  etag off;
  types { application/json json; }
  default_type application/json;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    root ${join(dir, 'www')};
    location /data/ { }
    location /api/ { try_files /data/1k.json =404; }
    # An OTLP/HTTP trace sink for the tracing scenario: reads each export and answers as a collector would.
    location = /v1/traces { client_max_body_size 64m; return 200 '{}'; }
    location / { return 404; }
  }
}
`;
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  return file;
}

/**
 * nginx as a reverse proxy: every path goes to the backend over HTTP/1.1
 * keep-alive connections (upstream keepalive 64, Connection ""), one worker
 * to match a one-process Node gateway. Buffers are sized so a 64 KiB answer
 * stays in memory (the defaults would spill it to a temp file).
 */
export function writeProxyConfig(dir: string, port: number, backendPort: number, workers = 1): string {
  prepare(dir);
  const conf = `${mainBlock(dir, workers)}
http {
${httpCommon(dir)}  upstream backend {
    server 127.0.0.1:${backendPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffer_size 16k;
      proxy_buffers 16 8k;
      proxy_busy_buffers_size 32k;
    }
  }
}
`;
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  return file;
}

/** Test the config, then start nginx in the foreground; resolves once it listens. */
export async function startNginx(name: string, dir: string, conf: string, port: number): Promise<Proc> {
  const args = ['-p', dir, '-e', join(dir, 'logs', 'error.log'), '-c', conf];
  const test = await runToEnd(`${name} -t`, NGINX, [...args, '-t', '-q'], 10_000);
  if (test.code !== 0) throw new Error(`${name}: nginx -t failed:\n${test.stderr}${test.stdout}`);
  const p = start(name, NGINX, [...args, '-g', 'daemon off;']);
  await waitForPort(port, 10_000, p);
  return p;
}
