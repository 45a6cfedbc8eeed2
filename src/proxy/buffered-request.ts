// A backend call whose body is needed whole (every encoding but no-op), on
// undici's dispatch API: chunks go straight into an array, with no Readable
// stream, async iterator or promise per chunk in between (what request() costs).
// The size limit is enforced as data arrives, and the call is aborted with the
// request's signal.

import { promisify } from 'node:util';
import { brotliDecompress, gunzip, inflate, zstdDecompress } from 'node:zlib';
import type { Dispatcher } from 'undici';
import { GatewayError } from './errors.ts';

export interface BufferedResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function tooLarge(limit: number): GatewayError {
  return new GatewayError(500, `backend response body larger than ${limit} bytes`);
}

export function requestBuffered(d: Dispatcher, opts: Dispatcher.DispatchOptions, signal: AbortSignal, limit: number): Promise<BufferedResponse> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    let controller: Dispatcher.DispatchController | undefined;
    let settled = false;
    let status = 0;
    let headers: Record<string, string | string[] | undefined> = {};
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (err: unknown, value?: BufferedResponse) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(value!);
    };
    const onAbort = () => {
      const reason = signal.reason instanceof Error ? signal.reason : new Error('aborted');
      if (controller && !controller.aborted) controller.abort(reason);
      finish(reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    d.dispatch(opts, {
      onRequestStart(c) {
        controller = c;
      },
      onResponseStart(c, statusCode, h) {
        status = statusCode;
        headers = h as Record<string, string | string[] | undefined>;
        if (Number(h['content-length']) > limit) c.abort(tooLarge(limit));
      },
      onResponseData(c, chunk) {
        size += chunk.length;
        if (size > limit) return c.abort(tooLarge(limit));
        chunks.push(chunk);
      },
      onResponseEnd() {
        const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
        finish(undefined, { status, headers, body });
      },
      onResponseError(_c, err) {
        finish(err);
      },
    });
  });
}

const DECOMPRESS: Record<string, (b: Buffer, o: { maxOutputLength: number }) => Promise<Buffer>> = {
  gzip: promisify(gunzip),
  'x-gzip': promisify(gunzip),
  deflate: promisify(inflate),
  br: promisify(brotliDecompress),
  zstd: promisify(zstdDecompress),
};

/** Undo a Content-Encoding (backends compress when the client's Accept-Encoding was forwarded). */
export async function decodeContent(body: Buffer, encoding: string | string[] | undefined, limit: number): Promise<Buffer> {
  if (encoding === undefined || encoding === 'identity' || encoding === '') return body;
  const name = String(encoding).trim().toLowerCase();
  const fn = DECOMPRESS[name];
  if (!fn) throw new GatewayError(500, `unsupported backend content-encoding "${name}"`);
  try {
    return await fn(body, { maxOutputLength: limit });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(limit);
    throw new GatewayError(500, `backend body does not decode as ${name}: ${(err as Error).message}`);
  }
}
