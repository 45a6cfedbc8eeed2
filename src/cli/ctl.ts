// `portico ctl`: drive a control plane's admin API from the command line.
// Exit 0 on success, 1 when the control plane refused (its errors on stderr),
// 2 on a usage error or when it cannot be reached.

import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { AdminClient, UnreachableError, type ApiAnswer } from '../controlplane/admin-client.ts';
import { renderDiff, renderHistory, renderNodes } from '../controlplane/ctl-render.ts';

export const CTL_USAGE = `  portico ctl publish -f FILE [--message M] [--author A] [--if-match V]
  portico ctl history [--limit N] | get [VERSION] | diff A B | rollback V [--message M] | nodes
        drive a control plane (--url URL, default $PORTICO_CONTROL_PLANE or http://127.0.0.1:9000;
        --token T, default $PORTICO_ADMIN_TOKEN; --ca FILE, default $PORTICO_CONTROL_PLANE_CA, else
        the system's CAs, verify an https:// control plane; --mask-secrets: get shows secrets as ***;
        --json prints the API's answers as they are)`;

type Values = Record<string, string | boolean | undefined>;

/** Where ctl writes (tests pass their own). */
export interface Output {
  out(text: string): void;
  err(text: string): void;
}

const stdio: Output = { out: (t) => void process.stdout.write(t), err: (t) => void process.stderr.write(t) };

export async function ctl(args: string[], env: NodeJS.ProcessEnv = process.env, io: Output = stdio): Promise<number> {
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        url: { type: 'string', short: 'u' },
        token: { type: 'string', short: 't' },
        json: { type: 'boolean' },
        file: { type: 'string', short: 'f' },
        message: { type: 'string', short: 'm' },
        author: { type: 'string' },
        'if-match': { type: 'string' },
        limit: { type: 'string' },
        ca: { type: 'string' },
        'mask-secrets': { type: 'boolean' },
      },
    }) as { values: Values; positionals: string[] });
  } catch (err) {
    return usage((err as Error).message, io);
  }
  const [command, ...rest] = positionals;
  let client: AdminClient;
  try {
    client = new AdminClient(
      (values.url as string | undefined) ?? (env.PORTICO_CONTROL_PLANE || 'http://127.0.0.1:9000'),
      (values.token as string | undefined) ?? (env.PORTICO_ADMIN_TOKEN || undefined),
      (values.ca as string | undefined) ?? (env.PORTICO_CONTROL_PLANE_CA || undefined),
    );
  } catch (err) {
    return usage((err as Error).message, io);
  }
  const json = values.json === true;
  const mask = values['mask-secrets'] === true;
  try {
    switch (command) {
      case 'publish':
        if (rest.length) return usage(`publish takes no arguments (use -f FILE), found "${rest[0]}"`, io);
        return await publish(client, values, json, io);
      case 'history':
      case 'log':
        if (rest.length) return usage('history takes no arguments', io);
        return await history(client, values.limit as string | undefined, json, io);
      case 'get':
        if (rest.length > 1) return usage('get takes at most one VERSION', io);
        return await get(client, rest[0], mask, json, io);
      case 'diff':
        if (rest.length !== 2) return usage('diff needs two versions: diff A B', io);
        return await diff(client, rest[0], rest[1], json, io);
      case 'rollback':
        if (rest.length !== 1) return usage('rollback needs one VERSION', io);
        return await rollback(client, rest[0], values, json, io);
      case 'nodes':
        if (rest.length) return usage('nodes takes no arguments', io);
        return await nodes(client, json, io);
      case undefined:
        return usage('which subcommand?', io);
      default:
        return usage(`unknown subcommand "${command}"`, io);
    }
  } catch (err) {
    if (err instanceof UnreachableError) {
      io.err(`portico ctl: ${err.message}\n`);
      return 2;
    }
    throw err;
  } finally {
    client.close();
  }
}

async function publish(client: AdminClient, v: Values, json: boolean, io: Output): Promise<number> {
  const file = v.file as string | undefined;
  if (!file) return usage('publish needs -f FILE', io);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    io.err(`portico ctl: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`);
    return 1;
  }
  const yaml = /\.ya?ml$/i.test(file);
  const a = await client.call('PUT', '/v1/config', {
    body: text,
    headers: { 'content-type': yaml ? 'application/yaml' : 'application/json', ...ifMatch(v) },
    query: writeMeta(v),
  });
  // The control plane names the body "<request body>": point at the file instead.
  const named = (s: string) => s.replaceAll('<request body>', file);
  if (json) return printJson(a, io);
  for (const w of (a.body?.warnings ?? []) as string[]) io.err(named(w) + '\n');
  if (a.status === 201) io.out(`published version ${a.body.version} (hash ${short(a.body.hash)})\n`);
  else if (a.status === 200) io.out(`unchanged: version ${a.body.version} already has this content (hash ${short(a.body.hash)})\n`);
  else return refused(a, io, named);
  return 0;
}

async function history(client: AdminClient, limit: string | undefined, json: boolean, io: Output): Promise<number> {
  const a = await client.call('GET', '/v1/configs', { query: { limit } });
  if (json) return printJson(a, io);
  if (a.status !== 200) return refused(a, io);
  io.out(renderHistory(a.body.latest, a.body.total, a.body.configs));
  return 0;
}

/** With `mask`, the control plane masks the secrets (config/secret-fields.ts): they never reach this host. */
async function get(client: AdminClient, version: string | undefined, mask: boolean, json: boolean, io: Output): Promise<number> {
  const path = version === undefined ? '/v1/config' : `/v1/configs/${encodeURIComponent(version)}`;
  const a = await client.call('GET', path, { query: { mask: mask ? 'secrets' : undefined } });
  if (json) return printJson(a, io);
  if (a.status !== 200) return refused(a, io);
  const e = a.body;
  io.err(`version ${e.version}, hash ${e.hash}, created ${e.created_at}${e.author ? ` by ${e.author}` : ''}${e.message ? `: ${e.message}` : ''}${e.masked ? ' (secrets masked)' : ''}\n`);
  io.out(JSON.stringify(e.config, null, 2) + '\n');
  return 0;
}

async function diff(client: AdminClient, a: string, b: string, json: boolean, io: Output): Promise<number> {
  const r = await client.call('GET', `/v1/configs/${encodeURIComponent(a)}/diff/${encodeURIComponent(b)}`);
  if (json) return printJson(r, io);
  if (r.status !== 200) return refused(r, io);
  io.out(renderDiff(r.body.from.version, r.body.to.version, r.body));
  return 0;
}

async function rollback(client: AdminClient, version: string, v: Values, json: boolean, io: Output): Promise<number> {
  const a = await client.call('POST', `/v1/rollback/${encodeURIComponent(version)}`, { headers: ifMatch(v), query: writeMeta(v) });
  if (json) return printJson(a, io);
  if (a.status === 201) io.out(`rolled back to version ${version}: published as version ${a.body.version} (hash ${short(a.body.hash)})\n`);
  else if (a.status === 200) io.out(`unchanged: the newest version ${a.body.version} already has the content of version ${version}\n`);
  else return refused(a, io);
  return 0;
}

async function nodes(client: AdminClient, json: boolean, io: Output): Promise<number> {
  const a = await client.call('GET', '/v1/nodes');
  if (json) return printJson(a, io);
  if (a.status !== 200) return refused(a, io);
  io.out(renderNodes(a.body.latest, a.body.nodes));
  return 0;
}

function writeMeta(v: Values): Record<string, string | undefined> {
  let author = v.author as string | undefined;
  if (author === undefined) {
    try {
      author = userInfo().username;
    } catch {
      author = process.env.USER;
    }
  }
  return { author, message: v.message as string | undefined };
}

function ifMatch(v: Values): Record<string, string> {
  return v['if-match'] === undefined ? {} : { 'if-match': v['if-match'] as string };
}

function printJson(a: ApiAnswer, io: Output): number {
  if (a.body !== undefined) (a.status < 300 ? io.out : io.err)(JSON.stringify(a.body, null, 2) + '\n');
  return a.status < 300 ? 0 : 1;
}

function refused(a: ApiAnswer, io: Output, named: (s: string) => string = (s) => s): number {
  io.err(`portico ctl: ${a.status}: ${named(a.body?.error ?? 'no error message')}\n`);
  for (const e of (a.body?.errors ?? []) as string[]) io.err(named(e) + '\n');
  return 1;
}

function short(hash: string): string {
  return hash.slice(0, 12);
}

function usage(message: string, io: Output): number {
  io.err(`portico ctl: ${message}\n\nUsage:\n${CTL_USAGE}\n`);
  return 2;
}
