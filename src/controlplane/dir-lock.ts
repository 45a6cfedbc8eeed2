// One control plane per store directory: a `lock` file holding the owner's
// pid, created exclusively. A lock whose pid is no longer alive (the owner was
// killed) is taken over.

import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export class DirLock {
  readonly file: string;
  #held = false;

  private constructor(file: string) {
    this.file = file;
  }

  static async acquire(dir: string): Promise<DirLock> {
    const lock = new DirLock(join(dir, 'lock'));
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await writeFile(lock.file, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
        lock.#held = true;
        return lock;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = Number((await readFile(lock.file, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner)) {
        throw new Error(`${dir} is in use by another control plane (pid ${owner}, see ${lock.file})`);
      }
      await rm(lock.file, { force: true });
    }
    throw new Error(`cannot lock ${dir}`);
  }

  async release(): Promise<void> {
    if (!this.#held) return;
    this.#held = false;
    await rm(this.file, { force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
