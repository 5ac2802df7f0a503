/**
 * Filesystem objects as reintegration sees them: read from a confined tree
 * (content, link target, device number, owner, mode, extended attributes)
 * and written into one (a temporary name first, every attribute set, then
 * renamed over the final name).
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
  readFileSync,
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
import { faultPoint } from '../state/journal.js';
import { ioError, lstatIn, openFileIn, openPathIn, type ConfinedRoot, type DirHandle, isHandle } from '../os/confined.js';
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

export interface FsObject {
  type: EntryType;
  st: Stats;
  xattrs: Xattrs;
  /** F */
  content?: Buffer;
  /** L */
  dest?: Buffer;
}

/** What to leave at a path. */
export interface Desired {
  type: EntryType;
  content?: Buffer;
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

export async function readObjectIn(dir: DirHandle, name: string): Promise<FsObject | 'absent'> {
  const st = lstatIn(dir, name);
  if (st === undefined) return 'absent';
  const type = typeOfStats(st);
  const xattrs = dir.xattrs?.get(st) ?? (await xattrsOf(dir, name));
  const obj: FsObject = { type, st, xattrs };
  if (type === 'F') {
    const fd = openFileIn(dir, name);
    if (fd === undefined) return 'absent';
    try {
      obj.content = readFileSync(fd);
      obj.st = fstatSync(fd);
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
export function sameContent(cur: FsObject, want: Desired): boolean {
  if (cur.type !== want.type) return false;
  switch (want.type) {
    case 'F':
      return want.linkTo !== undefined ? cur.st.ino === want.linkTo.ino : cur.content !== undefined && want.content !== undefined && cur.content.equals(want.content);
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
          const content = want.content ?? Buffer.alloc(0);
          const half = content.length >> 1;
          let off = 0;
          while (off < half) off += writeSync(fd, content, off, half - off);
          // The crash tests kill here: a real half-written temporary, which the next run must remove.
          faultPoint('reintegrate', writingPoint(++filesWritten));
          while (off < content.length) off += writeSync(fd, content, off, content.length - off);
          // Owner before mode (chown clears set-id bits), xattrs last (chown drops file capabilities).
          fchownSync(fd, want.uid, want.gid);
          fchmodSync(fd, want.mode);
          await writeXattrs(fd, want.xattrs, await freshXattrs(dir, fd));
          if (want.times) futimesSync(fd, want.times.atime, want.times.mtime);
          dir.sync(fd);
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
    if (st?.isDirectory()) rmdirSync(dir.entry(name));
    else if (st) unlinkSync(dir.entry(name));
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
  const cur = await readObjectIn(dir, name);
  if (cur !== 'absent' && sameContent(cur, want)) return fixMetadata(dir, name, want);
  if (cur !== 'absent' && cur.type === 'D') {
    try {
      rmdirSync(dir.entry(name));
    } catch (err) {
      if (errnoOf(err) === 'ENOTEMPTY' || errnoOf(err) === 'EEXIST') throw new NotEmptyError(name);
      throw ioError(`rmdir ${name}`, err);
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
    if (st.isDirectory()) rmdirSync(dir.entry(name));
    else unlinkSync(dir.entry(name));
  } catch (err) {
    if (errnoOf(err) === 'ENOTEMPTY' || errnoOf(err) === 'EEXIST') return 'not-empty';
    throw ioError(`remove ${name}`, err);
  }
  dir.sync(dir.fd);
  return 'removed';
}

/** Move what is at `name` to `to` in the same directory (never over a directory). */
export function moveAside(dir: DirHandle, name: string, to: string): void {
  try {
    renameSync(dir.entry(name), dir.entry(to));
  } catch (err) {
    throw ioError(`rename ${name} aside`, err);
  }
  dir.sync(dir.fd);
}
