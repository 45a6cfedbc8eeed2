// Durable file writes (the control-plane file store, the last-known-good file): a temporary file in the same
// directory, fsync, rename over the target, fsync of the directory, so a crash
// leaves either the old file or the new one, never a torn one.

import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Suffix of in-flight temporary files; the file store removes leftovers at start. */
export const TEMP_SUFFIX = '.tmp';

export async function writeFileAtomic(file: string, data: string, opts: { durable?: boolean } = {}): Promise<void> {
  const durable = opts.durable ?? true;
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}${TEMP_SUFFIX}`);
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(data);
      if (durable) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
  if (durable) await syncDir(dir);
}

/** A rename is durable only once the directory entry is. */
export async function syncDir(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
