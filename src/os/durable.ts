/**
 * The durable writer: how sysprime replaces one of its own files (the state
 * directory's manifests, Btrfs metadata, boot entries and kernels on the
 * ESP, a store repository it publishes). Paths here are sysprime's or the
 * admin's configured places on the host; a path inside an environment goes
 * through src/os/confined.ts instead, which gives the same guarantees
 * without following a link the environment holds.
 *
 * Guarantees, for every function below that writes:
 * - a reader, or the machine after a crash, sees the old file or the new
 *   one whole, never a truncated or a half-written one: the content goes to
 *   a temporary name beside the final one, is fsynced, then renamed over it;
 * - the rename itself is durable once the call returns: the directory is
 *   fsynced too (on filesystems that refuse fsync on a directory, such as
 *   vfat behind some FUSE layers, the rename is done and not synced);
 * - the temporary name is new (O_CREAT|O_EXCL, which also refuses a link
 *   planted at it), starts with '.' and ends in TEMP_SUFFIX, so a bootloader
 *   scanning for `*.conf` never takes it for an entry, and a crash's
 *   leftovers are found by isDurableTemp();
 * - on failure the temporary file is removed and the final name is left as
 *   it was; errors are SysprimeError (NO_SPACE for a full filesystem, IO
 *   otherwise) naming the path.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fchownSync, fstatSync, fsyncSync, ftruncateSync, linkSync, lstatSync, openSync, readdirSync, renameSync, rmSync, writeSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { SysprimeError, errnoOf, messageOf } from '../errors.js';
import { copyHeldStill } from './confined.js';

const TEMP_SUFFIX = '.sysprime-tmp';

/** A fresh temporary name beside `path`. */
function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}-${randomBytes(4).toString('hex')}${TEMP_SUFFIX}`);
}

/** Whether a directory entry is a temporary file of the durable writer (left by a crash when no writer runs). */
export function isDurableTemp(name: string): boolean {
  return name.startsWith('.') && name.endsWith(TEMP_SUFFIX);
}

function durableError(what: string, path: string, err: unknown): SysprimeError {
  if (err instanceof SysprimeError) return err;
  if (errnoOf(err) === 'ENOSPC') {
    return new SysprimeError('NO_SPACE', `no space left to write ${path}`, { hint: 'free space there (`sysprime prune`) and run again', cause: err });
  }
  return new SysprimeError('IO', `cannot ${what} ${path}: ${messageOf(err)}`, { cause: err });
}

/** fsync a file or directory by path (a directory after a rename in it); a Buffer for a name that is bytes. */
export function fsyncPath(path: string | Buffer): void {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY);
    fsyncSync(fd);
  } catch (err) {
    // Some filesystems (vfat through some FUSE layers) refuse fsync on a directory; the rename is still done.
    if (errnoOf(err) !== 'EINVAL' && errnoOf(err) !== 'EISDIR') throw durableError('sync', path.toString(), err);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export interface DurableMeta {
  /** Permission bits, set exactly (not through the umask). Without it the file is created 0644 less the umask. */
  mode?: number;
  /** Owner, set before the mode (chown clears setuid and setgid bits). */
  uid?: number;
  gid?: number;
}

function setMeta(fd: number, meta: DurableMeta): void {
  if (meta.uid !== undefined && meta.gid !== undefined) fchownSync(fd, meta.uid, meta.gid);
  if (meta.mode !== undefined) fchmodSync(fd, meta.mode);
}

/**
 * What a durable write takes: text (written as UTF-8), bytes, or chunks of
 * bytes, each written before the next is asked for (a large file made as
 * it is written never has to be whole in memory).
 */
export type DurableData = string | Uint8Array | Iterable<Uint8Array>;

/** Write `data` under a new temporary name beside `path` and fsync it; returns the temporary path. */
export function writeTemp(path: string, data: DurableData, meta: DurableMeta = {}): string {
  return writeTempStat(path, data, meta).tmp;
}

/** writeTemp, with the file's state once written (for sameContent). */
function writeTempStat(path: string, data: DurableData, meta: DurableMeta): { tmp: string; written: Stats } {
  const tmp = tempPathFor(path);
  let written: Stats | undefined;
  let fd: number | undefined;
  /** An error of the chunks' source (a formatter), not of the filesystem: it goes to the caller as it is. */
  let sourceFailed = false;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, meta.mode ?? 0o644);
    const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
    const it = chunks[Symbol.iterator]();
    for (;;) {
      sourceFailed = true;
      const next = it.next();
      sourceFailed = false;
      if (next.done === true) break;
      const buf = next.value;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    }
    setMeta(fd, meta);
    fsyncSync(fd);
    written = fstatSync(fd);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
    rmSync(tmp, { force: true });
    throw sourceFailed ? err : durableError('write', tmp, err);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return { tmp, written: written! };
}

/** Rename a temporary file over its final name (the caller fsyncs the directory, once for many renames). */
export function renameInto(tmp: string, path: string): void {
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw durableError('rename into place', path, err);
  }
}

/** Replace one file durably; returns the file's state as written (for linkDurable). */
export function replaceFile(path: string, data: DurableData, meta: DurableMeta = {}): Stats {
  const { tmp, written } = writeTempStat(path, data, meta);
  renameInto(tmp, path);
  fsyncPath(dirname(path));
  return written;
}

/**
 * Whether a file is still the one `written` describes: the same inode, its
 * size and modification time unchanged. A rename or a new link moves a
 * file's change time, not these; a write moves its modification time.
 */
function sameContent(now: Stats, written: Stats): boolean {
  return now.dev === written.dev && now.ino === written.ino && now.size === written.size && now.mtimeMs === written.mtimeMs;
}

/**
 * Give the file replaceFile wrote at `existing` (its state `written`) a
 * second name, `path`, durably: a hard link under a temporary name beside
 * `path`, checked to be that file still, renamed over `path`, the
 * directory synced. The bytes are not written again. False, with nothing
 * changed, when `existing` is no longer that file (replaced since, or
 * gone) or cannot be linked there: the caller writes `path` itself. The
 * file must only ever be replaced, never written in place, while it has
 * the two names.
 */
export function linkDurable(existing: string, path: string, written: Stats): boolean {
  // `path` already a name of that file (`existing` itself, or linked before): renaming a link over another name
  // of the same file does nothing, and would leave the temporary name behind.
  const there = lstatSync(path, { throwIfNoEntry: false });
  if (there !== undefined && there.dev === written.dev && there.ino === written.ino) return sameContent(there, written);
  const tmp = tempPathFor(path);
  try {
    linkSync(existing, tmp);
  } catch {
    // Gone, on another filesystem, or a filesystem without hard links: written instead.
    return false;
  }
  const now = lstatSync(tmp, { throwIfNoEntry: false });
  if (now === undefined || !sameContent(now, written)) {
    rmSync(tmp, { force: true });
    return false;
  }
  renameInto(tmp, path);
  fsyncPath(dirname(path));
  return true;
}

/**
 * Overwrite the content of an existing file in place, then fsync it: the
 * one exception to the rename above, for a small file on FAT that another
 * tool writes in place too (GRUB's stub beside its EFI image, which
 * grub-install rewrites with fopen "w"). FAT has no journal, and vfat's
 * rename over an existing name is two directory updates: a crash between
 * them can leave no `grub.cfg` at all, and the firmware's GRUB then stops
 * at its shell. Written in place, the new bytes go to the cluster the file
 * already has (a stub is smaller than one sector), the size to its
 * directory entry. Written before the size is cut, so a crash in between
 * leaves the new text followed by a tail of the old, never an empty file.
 * The caller keeps the old text elsewhere first (a backup written with
 * replaceFile), since a reader may see a half-written file.
 */
export function overwriteInPlace(path: string, data: string | Uint8Array): void {
  let fd: number | undefined;
  try {
    // No O_CREAT (the file is there, or this is the wrong path), no O_TRUNC (its clusters stay its own), never through a link.
    fd = openSync(path, constants.O_WRONLY | constants.O_NOFOLLOW);
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off, off);
    ftruncateSync(fd, buf.length);
    fsyncSync(fd);
  } catch (err) {
    throw durableError('overwrite', path, err);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Copy `src` over `dest` durably. `beforeRename` runs between the fsync of
 * the copy and the rename (a crash point for tests). The source is read as
 * the path names it: a file inside an environment is opened through
 * src/os/confined.ts first and passed as its /proc/self/fd path.
 */
export async function copyDurable(src: string, dest: string, meta: DurableMeta = {}, beforeRename?: () => void): Promise<void> {
  const tmp = tempPathFor(dest);
  try {
    // Created O_EXCL: a link planted at the temporary name is refused, not followed. A source written
    // meanwhile (a kernel rebuilt in place) fails the copy: nothing torn is renamed into place.
    await copyHeldStill(src, tmp);
    const fd = openSync(tmp, constants.O_RDWR | constants.O_NOFOLLOW);
    try {
      setMeta(fd, meta);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    rmSync(tmp, { force: true });
    throw durableError('copy to', dest, err);
  }
  try {
    beforeRename?.();
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  renameInto(tmp, dest);
  fsyncPath(dirname(dest));
}

/** Remove temporary files a killed run left in `dir`; returns their names. */
export function removeStaleTemps(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return [];
    throw err;
  }
  const stale = names.filter(isDurableTemp);
  for (const n of stale) rmSync(join(dir, n), { force: true });
  return stale;
}
