import { createBrotliDecompress, createGunzip, createInflate, createZstdDecompress } from 'node:zlib';
import type { Readable } from 'node:stream';
import { GatewayError } from './errors.ts';

/** Read a backend body into memory, failing (and closing the stream) past `limit` bytes. */
export async function readLimited(body: Readable, limit: number, contentEncoding?: string): Promise<Buffer> {
  const source = decoderStream(body, contentEncoding);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of source as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      source.destroy();
      body.destroy();
      throw new GatewayError(500, `backend response body larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
}

function decoderStream(body: Readable, enc: string | undefined): Readable {
  if (!enc || enc === 'identity') return body;
  const e = enc.trim().toLowerCase();
  const z = e === 'gzip' || e === 'x-gzip' ? createGunzip()
    : e === 'deflate' ? createInflate()
    : e === 'br' ? createBrotliDecompress()
    : e === 'zstd' ? createZstdDecompress()
    : undefined;
  if (!z) throw new GatewayError(500, `unsupported backend content-encoding "${enc}"`);
  body.on('error', (err) => z.destroy(err));
  return body.pipe(z);
}
