/**
 * File writes that survive a crash: write under a temporary name, fsync,
 * rename over the final name, fsync the directory. A reader (or the firmware,
 * at the next boot) sees the old file or the new one, never a truncated one.
 * Temporary names never end in `.conf`, so a bootloader scanning the
 * directory does not take a half-written file for an entry.
 */
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readdirSync, renameSync, rmSync, statSync, statfsSync, writeSync, createReadStream } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { SysprimeError, errnoOf } from '../errors.js';

export const TEMP_SUFFIX = '.sysprime-tmp';

export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}${TEMP_SUFFIX}`);
}

function ioError(what: string, path: string, err: unknown): SysprimeError {
  if (errnoOf(err) === 'ENOSPC') {
    return new SysprimeError('NO_SPACE', `no space left to write ${path}`, { hint: 'free space there (`sysprime prune`) and run again', cause: err });
  }
  return new SysprimeError('IO', `cannot ${what} ${path}: ${(err as Error).message}`, { cause: err });
}

export function fsyncPath(path: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    fsyncSync(fd);
  } catch (err) {
    // Some filesystems (vfat through some FUSE layers) refuse fsync on a directory; the rename is still done.
    if (errnoOf(err) !== 'EINVAL' && errnoOf(err) !== 'EISDIR') throw ioError('sync', path, err);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Write `data` under a temporary name beside `path` and fsync it; returns the temporary path. */
export function writeTemp(path: string, data: string | Buffer): string {
  const tmp = tempPathFor(path);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w', 0o644);
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
    rmSync(tmp, { force: true });
    throw ioError('write', tmp, err);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return tmp;
}

export function renameInto(tmp: string, path: string): void {
  try {
    renameSync(tmp, path);
  } catch (err) {
    throw ioError('rename into place', path, err);
  }
}

/** Replace one file durably. */
export function replaceFile(path: string, data: string | Buffer): void {
  const tmp = writeTemp(path, data);
  renameInto(tmp, path);
  fsyncPath(dirname(path));
}

/** Copy a file durably (temporary copy, fsync, rename). */
export async function copyDurable(src: string, dest: string, beforeRename?: () => void): Promise<void> {
  const tmp = tempPathFor(dest);
  try {
    await copyFile(src, tmp);
    fsyncPath(tmp);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw ioError('copy to', dest, err);
  }
  beforeRename?.();
  renameInto(tmp, dest);
}

export async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Same size and same sha256: the copy on the ESP is current. */
export async function sameContent(a: string, b: string): Promise<boolean> {
  let sa: number;
  let sb: number;
  try {
    sa = statSync(a).size;
    sb = statSync(b).size;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw err;
  }
  if (sa !== sb) return false;
  return (await sha256Of(a)) === (await sha256Of(b));
}

/** Bytes free for writing on the filesystem of `path`. */
export function freeBytes(path: string): number {
  const s = statfsSync(path);
  return Number(s.bavail) * Number(s.bsize);
}

/** Remove temporary files a killed run left in `dir`. */
export function removeStaleTemps(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return [];
    throw err;
  }
  const stale = names.filter((n) => n.startsWith('.') && n.endsWith(TEMP_SUFFIX));
  for (const n of stale) rmSync(join(dir, n), { force: true });
  return stale;
}
