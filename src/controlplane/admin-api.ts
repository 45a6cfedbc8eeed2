// The admin API: publish, read, diff and roll back configurations, and see
// the fleet. Every handler authorizes first (auth.ts), then validates its
// input, and answers JSON; failures are HttpErrors (see server.ts).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { formatIssue, loadConfigDocument, loadConfigText } from '../config/load.ts';
import { maskSecrets } from '../config/secret-fields.ts';
import { configHash } from '../lifecycle/canonical.ts';
import { log } from '../telemetry/log.ts';
import { authorizeAdmin } from './auth.ts';
import { diffConfigs } from './diff.ts';
import { HttpError, parseVersion, readBody, sendJson, utf8 } from './http-util.ts';
import type { ConfigEnvelope, NodeRecord } from './protocol.ts';
import type { PublishRequest, PublishResult } from './store.ts';
import type { ApiContext } from './context.ts';

export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;
export const DEFAULT_HISTORY_LIMIT = 100;
const MAX_AUTHOR_CHARS = 256;
const MAX_MESSAGE_CHARS = 4096;

/** A node as GET /v1/nodes shows it: its last report plus how stale it is. */
export interface NodeView extends NodeRecord {
  /** Seconds since the last report or watch. */
  seconds_since_seen: number;
  /** latest - applied_version; null when the node has applied nothing; negative when it is ahead (the store was reset). */
  behind: number | null;
}

export async function putConfig(ctx: ApiContext, req: IncomingMessage, res: ServerResponse, _params: string[], url: URL): Promise<void> {
  authorizeAdmin(req, ctx.auth);
  const ifMatch = parseIfMatch(req);
  const meta = writeMeta(req, url);
  const text = utf8(await readBody(req, MAX_CONFIG_BYTES));
  const format = /yaml/i.test(req.headers['content-type'] ?? '') ? 'yaml' : 'json';
  const result = loadConfigText(text, '<request body>', { env: {}, format });
  const warnings = result.warnings.map(formatIssue);
  if (result.errors.length) {
    // No document at all: the body did not even parse.
    const error = result.document === undefined ? `the request body is not ${format === 'yaml' ? 'YAML' : 'JSON'}` : `invalid configuration: ${result.errors.length} error(s)`;
    throw new HttpError(400, error, { errors: result.errors.map(formatIssue), warnings });
  }
  const outcome = await ctx.store.publish({ config: result.document, hash: configHash(result.document), ifMatch, ...meta });
  answerPublish(res, outcome, warnings.length ? { warnings } : {});
}

export async function rollback(ctx: ApiContext, req: IncomingMessage, res: ServerResponse, params: string[], url: URL): Promise<void> {
  authorizeAdmin(req, ctx.auth);
  const version = parseVersion(params[0], 'version in the URL');
  const ifMatch = parseIfMatch(req);
  const meta = writeMeta(req, url);
  req.resume(); // no body expected; discard one if sent
  const target = await ctx.store.get(version);
  if (!target) throw new HttpError(404, `no version ${version}`);
  // Validated again: it may predate this Portico, or have been written into etcd directly.
  const result = loadConfigDocument(target.config, `version ${version}`, { env: {} });
  if (result.errors.length) {
    throw new HttpError(422, `version ${version} is not a valid configuration for this Portico: ${result.errors.length} error(s)`, {
      errors: result.errors.map(formatIssue),
    });
  }
  const request: PublishRequest = {
    config: target.config,
    hash: configHash(target.config),
    ifMatch,
    author: meta.author,
    message: meta.message ?? `rollback to version ${version}`,
  };
  answerPublish(res, await ctx.store.publish(request), { rolled_back_from: version });
}

function answerPublish(res: ServerResponse, outcome: PublishResult, extra: Record<string, unknown>): void {
  if (outcome.kind === 'conflict') {
    throw new HttpError(409, `If-Match failed: the newest version is ${outcome.latest || 'none'}`, { latest: outcome.latest });
  }
  const { version, hash } = outcome.envelope;
  if (outcome.kind === 'unchanged') {
    sendJson(res, 200, { version, hash, unchanged: true, ...extra });
    return;
  }
  log('info', 'config published', { version, hash, author: outcome.envelope.author, message: outcome.envelope.message, ...extra });
  sendJson(res, 201, { version, hash, ...extra }, { location: `/v1/configs/${version}`, etag: `"${version}"` });
}

export async function getLatest(ctx: ApiContext, req: IncomingMessage, res: ServerResponse, _params: string[], url: URL): Promise<void> {
  authorizeAdmin(req, ctx.auth);
  const masked = wantsMasked(url);
  const e = await ctx.store.latest();
  if (!e) throw new HttpError(404, 'no configuration has been published yet');
  sendEnvelope(res, e, masked);
}

export async function getVersion(ctx: ApiContext, req: IncomingMessage, res: ServerResponse, params: string[], url: URL): Promise<void> {
  authorizeAdmin(req, ctx.auth);
  const version = parseVersion(params[0], 'version in the URL');
  const masked = wantsMasked(url);
  const e = await ctx.store.get(version);
  if (!e) throw new HttpError(404, `no version ${version}`);
  sendEnvelope(res, e, masked);
}

export async function listConfigs(ctx: ApiContext, req: IncomingMessage, res: ServerResponse, _params: string[], url: URL): Promise<void> {
  authorizeAdmin(req, ctx.auth);
  const raw = url.searchParams.get('limit');
  const limit = raw === null ? DEFAULT_HISTORY_LIMIT : parseVersion(raw, 'limit');
  const [history, latest] = await Promise.all([ctx.store.history(limit), ctx.store.latest()]);
  sendJson(res, 200, { latest: latest?.version ?? 0, total: history.total, configs: history.configs });
}

export async function diff(ctx: ApiContext, req: IncomingMessage, res: ServerResponse, params: string[]): Promise<void> {
  authorizeAdmin(req, ctx.auth);
  const a = parseVersion(params[0], 'first version in the URL');
  const b = parseVersion(params[1], 'second version in the URL');
  const [ea, eb] = await Promise.all([ctx.store.get(a), ctx.store.get(b)]);
  const missing = [ea ? undefined : a, eb ? undefined : b].filter((v) => v !== undefined);
  if (missing.length) throw new HttpError(404, `no version ${missing.join(' or ')}`);
  sendJson(res, 200, {
    from: { version: a, hash: ea!.hash },
    to: { version: b, hash: eb!.hash },
    ...diffConfigs(ea!.config, eb!.config),
  });
}

export async function listNodes(ctx: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  authorizeAdmin(req, ctx.auth);
  const [records, latestEnvelope] = await Promise.all([ctx.store.nodes(), ctx.store.latest()]);
  const latest = latestEnvelope?.version ?? 0;
  const now = Date.now();
  const nodes: NodeView[] = records.map((r) => ({
    ...r,
    seconds_since_seen: Math.max(0, Math.round((now - Date.parse(r.last_seen)) / 100) / 10),
    behind: r.applied_version === null ? null : latest - r.applied_version,
  }));
  sendJson(res, 200, { latest, nodes });
}

/** With `masked`, every secret field of the configuration (config/secret-fields.ts) reads "***"; `hash` stays the stored one's. */
function sendEnvelope(res: ServerResponse, e: ConfigEnvelope, masked: boolean): void {
  sendJson(res, 200, masked ? { ...e, config: maskSecrets(e.config), masked: true } : e, { etag: `"${e.version}"` });
}

/** `?mask=secrets`: answer the configuration with its secrets masked. */
function wantsMasked(url: URL): boolean {
  const mask = url.searchParams.get('mask');
  if (mask === null) return false;
  if (mask !== 'secrets') throw new HttpError(400, `mask: expected "secrets", found ${JSON.stringify(mask.slice(0, 60))}`);
  return true;
}

/** `If-Match: 4` or `If-Match: "4"` (an ETag as GET /v1/config sends it); 0 means "only if nothing is published". */
function parseIfMatch(req: IncomingMessage): number | undefined {
  const raw = req.headers['if-match'];
  if (raw === undefined) return undefined;
  const text = raw.trim().replace(/^(W\/)?"(.*)"$/, '$2');
  return parseVersion(text, 'If-Match', { allowZero: true });
}

/** author and message: query parameters (UTF-8) or X-Portico-Author / X-Portico-Message headers. */
function writeMeta(req: IncomingMessage, url: URL): { author?: string; message?: string } {
  const pick = (param: string, header: string, max: number) => {
    const h = req.headers[header];
    const v = url.searchParams.get(param) ?? (typeof h === 'string' ? h : undefined);
    if (v === undefined || v === '') return undefined;
    if (v.length > max) throw new HttpError(400, `${param}: at most ${max} characters, found ${v.length}`);
    return v;
  };
  const author = pick('author', 'x-portico-author', MAX_AUTHOR_CHARS);
  const message = pick('message', 'x-portico-message', MAX_MESSAGE_CHARS);
  return { ...(author !== undefined && { author }), ...(message !== undefined && { message }) };
}
