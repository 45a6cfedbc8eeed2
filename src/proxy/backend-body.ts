// What every upstream client shares about a backend's answer body: the error
// when it passes the size limit, and undoing its Content-Encoding (Portico
// decodes itself; no client decompresses on its own).

import { promisify } from 'node:util';
import { brotliDecompress, gunzip, inflate, zstdDecompress } from 'node:zlib';
import { GatewayError } from './errors.ts';

export function bodyTooLarge(limit: number): GatewayError {
  return new GatewayError(500, `backend response body larger than ${limit} bytes`, { code: 'BACKEND_BODY_TOO_LARGE' });
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
  if (!fn) throw new GatewayError(500, `unsupported backend content-encoding "${name}"`, { code: 'BACKEND_DECODE' });
  try {
    return await fn(body, { maxOutputLength: limit });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw bodyTooLarge(limit);
    throw new GatewayError(500, `backend body does not decode as ${name}: ${(err as Error).message}`, { code: 'BACKEND_DECODE' });
  }
}
