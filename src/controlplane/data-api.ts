// The data-plane API (protocol.ts): the long-poll watch and node reports.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { log } from '../telemetry/log.ts';
import { authorizeNode } from './auth.ts';
import type { ApiContext } from './context.ts';
import { HttpError, parseJsonBody, parseVersion, readBody, sendEmpty, sendJson } from './http-util.ts';
import { checkNodeReport } from './node-report.ts';
import { NODE_ID, type WatchConflict } from './protocol.ts';

const MAX_REPORT_BYTES = 1024 * 1024;

/** GET /v1/watch?after=V&node=ID: 200 envelope (newer exists or arrives), 204 (nothing within the hold), 409 (after is ahead). */
export async function watch(ctx: ApiContext, req: IncomingMessage, res: ServerResponse, _params: string[], url: URL): Promise<void> {
  const node = url.searchParams.get('node');
  authorizeNode(req, ctx.auth, node ?? undefined);
  const rawAfter = url.searchParams.get('after');
  const after = rawAfter === null ? 0 : parseVersion(rawAfter, 'after', { allowZero: true });
  if (node !== null) {
    checkNodeId(node);
    ctx.store.seen(node, new Date()).catch((err) => log('warn', 'cannot record that a node was seen', { node, error: (err as Error).message }));
  }
  const left = new AbortController();
  const onClose = () => left.abort();
  res.on('close', onClose);
  try {
    const outcome = await ctx.hub.wait(after, ctx.watchHoldMs, left.signal);
    if (res.destroyed) return;
    if (outcome.kind === 'newer') sendJson(res, 200, outcome.envelope, { etag: `"${outcome.envelope.version}"` });
    else if (outcome.kind === 'ahead') {
      const body: WatchConflict = {
        error: `after=${after} is ahead of the newest version the control plane has (${outcome.latest || 'none'}); its store was reset?`,
        latest: outcome.latest,
      };
      sendJson(res, 409, body);
    } else sendEmpty(res, 204);
  } finally {
    res.off('close', onClose);
  }
}

/** POST /v1/nodes/{id}/report with a NodeReport: 204. */
export async function report(ctx: ApiContext, req: IncomingMessage, res: ServerResponse, params: string[]): Promise<void> {
  const node = params[0];
  authorizeNode(req, ctx.auth, node);
  checkNodeId(node);
  const checked = checkNodeReport(parseJsonBody(await readBody(req, MAX_REPORT_BYTES)));
  if (!checked.ok) throw new HttpError(400, 'invalid node report', { errors: checked.errors });
  await ctx.store.report(node, checked.value, new Date());
  // The error text is not logged: a validation message may quote a value of the configuration.
  const { error, ...rest } = checked.value;
  log('debug', 'node report', { node, ...rest, error_chars: error?.length ?? 0 });
  sendEmpty(res, 204);
}

function checkNodeId(id: string): void {
  if (!NODE_ID.test(id)) {
    throw new HttpError(400, `node id: expected 1-128 characters of A-Z a-z 0-9 . _ - (starting with a letter or digit), found ${JSON.stringify(id.slice(0, 140))}`);
  }
}
