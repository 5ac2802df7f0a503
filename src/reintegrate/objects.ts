/**
 * Filesystem objects as reintegration sees them: read from a confined tree
 * (content, link target, device number, owner, mode, extended attributes)
 * and written into one (a temporary name first, every attribute set, then
 * renamed over the final name).
 *
 * A file's content is held in memory only when it is small (INLINE_MAX);
 * a larger one is remembered where it is (FileInTree) and compared, hashed
 * and copied a piece at a time (src/os/file-data.ts): a copy is a clone
 * where the filesystem can share extents, else the bytes with the holes
 * kept. So a user's 3 GiB disk image costs a few MiB of memory, and a
 * sparse file no more disk in the new environment than in the old.
 */
import {
  chmodSync,
  chownSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  futimesSync,
  lchownSync,
  linkSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import type { EntryType } from '../bart/types.js';
import { errnoOf, SysprimeError } from '../errors.js';
import { run } from '../process/run.js';
import { faultPoint } from '../process/fault.js';
import { changedWhileRead, FileInTree, ioError, sameFileState, settledStat, lstatIn, openFileIn, openPathIn, type ConfinedRoot, type DirHandle, isHandle } from '../os/confined.js';
import { closeQuietly, copyData, eachPiece, readWhole, sameData, type CopyHow, type DataSource } from '../os/file-data.js';
import { createHasher, hashBytes } from '../bart/hash.js';
import type { HashAlgorithm } from '../bart/types.js';
import { readXattrsOf, writeXattrs, xattrsEqual, type Xattrs } from '../os/xattrs.js';

export function typeOfStats(st: Stats): EntryType {
  if (st.isFile()) return 'F';
  if (st.isDirectory()) return 'D';
  if (st.isSymbolicLink()) return 'L';
  if (st.isFIFO()) return 'P';
  if (st.isSocket()) return 'S';
  if (st.isBlockDevice()) return 'B';
  return 'C';
}

/** Files up to this size are read whole when found (most of /etc); larger ones stay where they are until needed. */
export const INLINE_MAX = 1 << 20;

/** A regular file's bytes: in memory when small, else the file itself, read a piece at a time when needed. */
export type Content = Buffer | FileInTree;

export function sizeOfContent(c: Content): number {
  return Buffer.isBuffer(c) ? c.length : c.size;
}

/** Run `fn` on the file open; what it read counts only if the file did not change meanwhile. */
async function withOpen<T>(f: FileInTree, fn: (fd: number) => Promise<T>): Promise<T> {
  const fd = f.open();
  try {
    const out = await fn(fd);
    f.checkUnchanged(fd);
    return out;
  } finally {
    closeSync(fd);
  }
}

function withData<T>(c: Content, fn: (d: DataSource) => Promise<T>): Promise<T> {
  return Buffer.isBuffer(c) ? fn(c) : withOpen(c, fn);
}

/** Whether two contents hold the same bytes (a large file is read a piece at a time, until the first difference). */
export async function sameBytes(a: Content, b: Content): Promise<boolean> {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  if (sizeOfContent(a) !== sizeOfContent(b)) return false;
  if (a instanceof FileInTree && b instanceof FileInTree && a.isInode(b.st)) return true;
  return withData(a, (da) => withData(b, (db) => sameData(da, db)));
}

/** The content's digest, as a manifest records it (a large file hashed as it streams by). */
export async function digestOf(alg: HashAlgorithm, c: Content): Promise<string> {
  if (Buffer.isBuffer(c)) return hashBytes(alg, c);
  const h = createHasher(alg);
  await withOpen(c, (fd) => eachPiece(fd, (piece) => h.update(piece)));
  return h.digest();
}

/** The content whole, when it is at most `limit` bytes (for merges, which need all of it); undefined when larger. */
export async function bytesWithin(c: Content, limit: number): Promise<Buffer | undefined> {
  if (Buffer.isBuffer(c)) return c.length <= limit ? c : undefined;
  if (c.size > limit) return undefined;
  return withOpen(c, async (fd) => readWhole(fd, limit));
}

export interface FsObject {
  type: EntryType;
  st: Stats;
  xattrs: Xattrs;
  /** F */
  content?: Content;
  /** L */
  dest?: Buffer;
}

/** What to leave at a path. */
export interface Desired {
  type: EntryType;
  content?: Content;
  dest?: Buffer;
  rdev?: number;
  mode: number;
  uid: number;
  gid: number;
  xattrs: Xattrs;
  /** Times to give a written file or link (the admin's, for copies). */
  times?: { atime: Date; mtime: Date };
  /** Hard link to this existing path in the target instead of writing the content again. */
  linkTo?: { dir: DirHandle; name: string; ino: number };
}

export type ReadResult = FsObject | 'absent' | 'blocked';

/** Read the object at a manifest path in a confined tree, never following a link. */
export async function readObject(root: ConfinedRoot, path: string): Promise<ReadResult> {
  const { dir, name } = root.openParent(path);
  if (!isHandle(dir)) return dir === undefined ? 'absent' : 'blocked';
  try {
    return await readObjectIn(dir, name);
  } finally {
    dir.close();
  }
}

/**
 * The extended attributes (ACLs included) of the object at a manifest path,
 * without its content: what a copy takes from the update's version.
 * undefined when nothing is there (or a component is not a directory).
 */
export async function readXattrsAt(root: ConfinedRoot, path: string): Promise<Xattrs | undefined> {
  const { dir, name } = root.openParent(path);
  if (!isHandle(dir)) return undefined;
  try {
    const st = lstatIn(dir, name);
    if (st === undefined) return undefined;
    return dir.xattrs?.get(st) ?? (await xattrsOf(dir, name));
  } finally {
    dir.close();
  }
}

/**
 * The object at `name` in `dir`. With `size`, a regular file of another
 * size is not opened: what the caller compares it with cannot be its bytes
 * (no content then).
 */
export async function readObjectIn(dir: DirHandle, name: string, size?: number): Promise<FsObject | 'absent'> {
  const st = lstatIn(dir, name);
  if (st === undefined) return 'absent';
  const type = typeOfStats(st);
  const xattrs = dir.xattrs?.get(st) ?? (await xattrsOf(dir, name));
  const obj: FsObject = { type, st, xattrs };
  if (type === 'F' && size !== undefined && st.size !== size) return obj;
  if (type === 'F') {
    const fd = openFileIn(dir, name);
    if (fd === undefined) return 'absent';
    try {
      // A small file is read whole now; one written while it was read is read again, once.
      for (let tries = 0; ; tries++) {
        obj.st = settledStat(fd);
        const whole = readWhole(fd, INLINE_MAX, obj.st.size);
        if (whole === undefined) {
          obj.content = new FileInTree(dir, name, obj.st);
          break;
        }
        if (sameFileState(obj.st, fstatSync(fd))) {
          obj.content = whole;
          break;
        }
        if (tries === 1) throw changedWhileRead('/' + [...dir.comps, name].join('/'), dir.root.root);
      }
    } finally {
      closeSync(fd);
    }
  } else if (type === 'L') {
    obj.dest = readlinkSync(dir.entry(name), { encoding: 'buffer' });
  }
  return obj;
}

export async function xattrsOf(dir: DirHandle, name: string): Promise<Xattrs> {
  const pfd = openPathIn(dir, name);
  if (pfd === undefined) return new Map();
  try {
    return await readXattrsOf(pfd);
  } finally {
    closeSync(pfd);
  }
}

/** Same type and same content (bytes, link target or device number); metadata aside. */
export async function sameContent(cur: FsObject, want: Desired): Promise<boolean> {
  if (cur.type !== want.type) return false;
  switch (want.type) {
    case 'F':
      return want.linkTo !== undefined ? cur.st.ino === want.linkTo.ino : cur.content !== undefined && want.content !== undefined && (await sameBytes(cur.content, want.content));
    case 'L':
      return cur.dest !== undefined && want.dest !== undefined && cur.dest.equals(want.dest);
    case 'B':
    case 'C':
      return cur.st.rdev === want.rdev;
    default:
      return true;
  }
}

/** Bring owner, mode and xattrs of an existing object to `want`. True when something changed. */
export async function fixMetadata(dir: DirHandle, name: string, want: Desired): Promise<boolean> {
  const pfd = openPathIn(dir, name);
  if (pfd === undefined) throw ioError(`open ${name}`, new Error('vanished'));
  try {
    let st = fstatSync(pfd);
    const isLink = st.isSymbolicLink();
    let changed = false;
    const viaFd = `/proc/self/fd/${pfd}`;
    if (st.uid !== want.uid || st.gid !== want.gid) {
      // A link's owner through its own name (lchown does not follow it); anything else through the handle.
      if (isLink) lchownSync(dir.entry(name), want.uid, want.gid);
      else chownSync(viaFd, want.uid, want.gid);
      changed = true;
      st = fstatSync(pfd);
    }
    if (!isLink && (st.mode & 0o7777) !== want.mode) {
      chmodSync(viaFd, want.mode);
      changed = true;
    }
    // chown drops capabilities and chmod rewrites an ACL's mask, within the same coarse ctime tick maybe: read afresh.
    if (changed) dir.xattrs?.forget(st);
    const cur = dir.xattrs?.get(st) ?? (await readXattrsOf(pfd));
    if (!xattrsEqual(cur, want.xattrs)) {
      changed = (await writeXattrs(pfd, want.xattrs, cur)) || changed;
      dir.xattrs?.forget(st);
    }
    return changed;
  } finally {
    closeSync(pfd);
  }
}

/**
 * The attributes an object just made in `dir` starts with. Only a default
 * ACL or a security module's label on the directory can give it any
 * (childrenInherit), so when the directory's attributes are known and have
 * neither, there is nothing to read.
 */
async function freshXattrs(dir: DirHandle, fd: number): Promise<Xattrs> {
  const cache = dir.xattrs;
  if (cache === undefined || (await cache.childrenInherit(dir.fd, readXattrsOf))) return readXattrsOf(fd);
  return new Map();
}

const EMPTY = Buffer.alloc(0);

let counter = 0;
let filesWritten = 0;

/** Fault point in the middle of the n-th file this process writes (1-based), half its bytes written; see state/journal.ts. */
export function writingPoint(n: number): string {
  return `writing-${n}`;
}

export function tempName(): string {
  return `.sysprime-tmp-${process.pid}-${(counter++).toString(36)}`;
}

function major(rdev: number): number {
  return Number(((BigInt(rdev) >> 8n) & 0xfffn) | ((BigInt(rdev) >> 32n) & ~0xfffn));
}
function minor(rdev: number): number {
  return Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & ~0xffn));
}

/**
 * Fill the new temporary `fd` with `content`. The crash tests kill inside,
 * half of it on disk (a clone is whole at once): a real half-written
 * temporary, which the next run must remove.
 */
async function writeContent(fd: number, content: Content): Promise<CopyHow> {
  const halfway = () => faultPoint('reintegrate', writingPoint(++filesWritten));
  if (!Buffer.isBuffer(content)) {
    const src = content.open();
    try {
      const how = await copyData(src, fd, halfway);
      // Written to during the copy (a running VM's disk image): the copy may be torn. Not carried:
      // the error fails the item, and the caller removes the temporary, so nothing torn is left.
      content.checkUnchanged(src);
      return how;
    } finally {
      closeQuietly(src);
    }
  }
  const half = content.length >> 1;
  let off = 0;
  while (off < half) off += writeSync(fd, content, off, half - off);
  halfway();
  while (off < content.length) off += writeSync(fd, content, off, content.length - off);
  return 'copied';
}

/** Create the object under a temporary name in `dir`, with every attribute set. Returns the name. */
async function createTemp(dir: DirHandle, want: Desired): Promise<string> {
  const tmp = tempName();
  const entry = dir.entry(tmp);
  try {
    switch (want.type) {
      case 'F': {
        if (want.linkTo !== undefined) {
          linkSync(want.linkTo.dir.entry(want.linkTo.name), entry);
          return tmp;
        }
        const fd = openSync(entry, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        try {
          const how = await writeContent(fd, want.content ?? Buffer.alloc(0));
          // Owner before mode (chown clears set-id bits), xattrs last (chown drops file capabilities).
          fchownSync(fd, want.uid, want.gid);
          fchmodSync(fd, want.mode);
          await writeXattrs(fd, want.xattrs, await freshXattrs(dir, fd));
          if (want.times) futimesSync(fd, want.times.atime, want.times.mtime);
          else if (how === 'cloned') {
            // A clone starts with the source's times; a file written now has now's, as a written one does.
            const now = new Date();
            futimesSync(fd, now, now);
          }
          dir.syncData(fd);
        } finally {
          closeSync(fd);
        }
        return tmp;
      }
      case 'D': {
        mkdirSync(entry, 0o700);
        const fd = openSync(entry, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
        try {
          fchownSync(fd, want.uid, want.gid);
          fchmodSync(fd, want.mode);
          await writeXattrs(fd, want.xattrs, await freshXattrs(dir, fd));
          dir.sync(fd);
        } finally {
          closeSync(fd);
        }
        return tmp;
      }
      case 'L':
        symlinkSync(want.dest ?? Buffer.alloc(0), entry);
        lchownSync(entry, want.uid, want.gid);
        if (want.times) lutimesSync(entry, want.times.atime, want.times.mtime);
        break;
      case 'P':
        await run('mkfifo', ['-m', '600', dir.childEntry(tmp)]);
        break;
      case 'B':
      case 'C':
        await run('mknod', ['-m', '600', dir.childEntry(tmp), want.type === 'B' ? 'b' : 'c', String(major(want.rdev ?? 0)), String(minor(want.rdev ?? 0))]);
        break;
      default:
        throw new SysprimeError('REFUSED', 'sockets cannot be recreated', { hint: 'the program that owns the socket creates it when it starts' });
    }
    // Links, FIFOs and devices: owner, mode and xattrs through an O_PATH handle.
    const pfd = openPathIn(dir, tmp)!;
    try {
      const viaFd = `/proc/self/fd/${pfd}`;
      if (want.type !== 'L') {
        chownSync(viaFd, want.uid, want.gid);
        chmodSync(viaFd, want.mode);
      }
      await writeXattrs(pfd, want.xattrs, await freshXattrs(dir, pfd));
    } finally {
      closeSync(pfd);
    }
    return tmp;
  } catch (err) {
    removeQuietly(dir, tmp);
    throw err;
  }
}

function removeQuietly(dir: DirHandle, name: string): void {
  try {
    const st = lstatIn(dir, name);
    if (st?.isDirectory()) {
      rmdirSync(dir.entry(name));
      dir.dirsChanged();
    } else if (st) unlinkSync(dir.entry(name));
  } catch {
    // Best effort: a leftover temporary name is harmless and reported by nothing else.
  }
}

export class NotEmptyError extends Error {}

/**
 * Leave `want` at `name` in `dir`: nothing when it is already there, the
 * metadata alone when only that differs, else a new object under a
 * temporary name renamed over the old one. A directory in the way is
 * removed only when empty (NotEmptyError otherwise).
 */
export async function place(dir: DirHandle, name: string, want: Desired): Promise<boolean> {
  // A file of another size than the bytes wanted is replaced without being read (most of an admin's edits).
  const size = want.type === 'F' && want.linkTo === undefined ? sizeOfContent(want.content ?? EMPTY) : undefined;
  const cur = await readObjectIn(dir, name, size);
  if (cur !== 'absent' && (await sameContent(cur, want))) return fixMetadata(dir, name, want);
  if (cur !== 'absent' && cur.type === 'D') {
    try {
      rmdirSync(dir.entry(name));
    } catch (err) {
      if (errnoOf(err) === 'ENOTEMPTY' || errnoOf(err) === 'EEXIST') throw new NotEmptyError(name);
      throw ioError(`rmdir ${name}`, err);
    } finally {
      dir.dirsChanged();
    }
  }
  const tmp = await createTemp(dir, want);
  try {
    if (cur !== 'absent' && cur.type !== 'D' && want.type === 'D') unlinkSync(dir.entry(name));
    renameSync(dir.entry(tmp), dir.entry(name));
  } catch (err) {
    removeQuietly(dir, tmp);
    throw ioError(`rename into ${name}`, err);
  }
  dir.sync(dir.fd);
  return true;
}

/** Remove what is at `name`: a directory only when empty. 'absent' when nothing was there. */
export function removeEntry(dir: DirHandle, name: string): 'removed' | 'absent' | 'not-empty' {
  const st = lstatIn(dir, name);
  if (st === undefined) return 'absent';
  try {
    if (st.isDirectory()) {
      dir.dirsChanged();
      rmdirSync(dir.entry(name));
    } else unlinkSync(dir.entry(name));
  } catch (err) {
    if (errnoOf(err) === 'ENOTEMPTY' || errnoOf(err) === 'EEXIST') return 'not-empty';
    throw ioError(`remove ${name}`, err);
  }
  dir.sync(dir.fd);
  return 'removed';
}

/** Move what is at `name` to `to` in the same directory (never over a directory). */
export function moveAside(dir: DirHandle, name: string, to: string): void {
  dir.dirsChanged();
  try {
    renameSync(dir.entry(name), dir.entry(to));
  } catch (err) {
    throw ioError(`rename ${name} aside`, err);
  }
  dir.sync(dir.fd);
}
