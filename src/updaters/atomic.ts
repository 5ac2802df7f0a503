/**
 * Replacing one file so that a reader (or a crash) sees the old content or
 * the new, never a mix: write a temporary file beside it, fsync, rename.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { copyFile, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export function tempBeside(path: string): string {
  return join(dirname(path), `.${basename(path)}.sysprime-tmp-${randomBytes(4).toString('hex')}`);
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function writeFileAtomic(
  path: string,
  content: string | Uint8Array,
  meta: { mode: number; uid?: number; gid?: number } = { mode: 0o644 },
): Promise<void> {
  const tmp = tempBeside(path);
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(content);
    // chown before chmod: chown clears setuid and setgid bits.
    if (meta.uid !== undefined && meta.gid !== undefined) await handle.chown(meta.uid, meta.gid);
    await handle.chmod(meta.mode);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dirname(path));
}

export async function copyFileAtomic(src: string, path: string, meta: { mode: number; uid: number; gid: number }): Promise<void> {
  const tmp = tempBeside(path);
  try {
    await copyFile(src, tmp, fsConstants.COPYFILE_EXCL);
    const handle = await open(tmp, 'r+');
    try {
      await handle.chown(meta.uid, meta.gid);
      await handle.chmod(meta.mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dirname(path));
}
