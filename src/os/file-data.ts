/**
 * The bytes of open regular files, in fixed-size pieces: read whole up to a
 * limit, compared, hashed and copied without ever holding more than a piece
 * or two of a file, whatever its size (a 3 GiB disk image in /home is
 * carried over like a three-line file). Nothing here opens a path: callers
 * pass descriptors they opened through src/os/confined.ts.
 *
 * A copy writes as little as the filesystem allows: a clone of the source's
 * extents where the filesystem can share them, else the bytes with the
 * source's holes kept (copyData says why this way).
 */
import { closeSync, constants, fchmodSync, fstatSync, ftruncate, openSync, read, readSync, write } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { errnoOf } from '../errors.js';

/** One piece of a file: what is read, compared or written at a time. */
export const PIECE = 1 << 20;
/** Zero runs shorter than this are written out: a filesystem block, the smallest hole a file can have. */
const BLOCK = 4096;

let zeros: Buffer | undefined;
function zeroPiece(): Buffer {
  return (zeros ??= Buffer.alloc(PIECE));
}

function readAt(fd: number, buf: Buffer, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buf, 0, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

function writeAt(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => write(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

function truncateTo(fd: number, length: number): Promise<void> {
  return new Promise((resolve, reject) => ftruncate(fd, length, (err) => (err ? reject(err) : resolve())));
}

/** Fill `buf` from `position` as far as the file goes; fewer bytes only at its end. */
async function readFull(fd: number, buf: Buffer, length: number, position: number): Promise<number> {
  let got = 0;
  while (got < length) {
    const n = await readAt(fd, buf.subarray(got), length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/**
 * The whole content of the open file `fd` when it holds at most `limit`
 * bytes; undefined when it holds more. `size` is its size when the caller
 * has just asked. Nothing beyond limit + 1 bytes is ever read, so a file
 * that grows meanwhile cannot make this allocate more.
 */
export function readWhole(fd: number, limit: number, size = fstatSync(fd).size): Buffer | undefined {
  if (size > limit) return undefined;
  // One byte more than the size tells a file that grew from one that ends there.
  let buf = Buffer.allocUnsafe(size + 1);
  let got = 0;
  for (;;) {
    if (got === buf.length) {
      if (got > limit) return undefined;
      const more = Buffer.allocUnsafe(Math.min(limit + 1, got * 2));
      buf.copy(more, 0, 0, got);
      buf = more;
    }
    const n = readSync(fd, buf, got, buf.length - got, got);
    if (n === 0) return buf.subarray(0, got);
    got += n;
  }
}

/** Bytes to compare: an open file, or bytes already in memory. */
export type DataSource = number | Buffer;

function sizeOf(s: DataSource): number {
  return typeof s === 'number' ? fstatSync(s).size : s.length;
}

async function pieceOf(s: DataSource, buf: Buffer, position: number): Promise<Buffer> {
  if (typeof s !== 'number') return s.subarray(position, position + PIECE);
  return buf.subarray(0, await readFull(s, buf, PIECE, position));
}

/** Whether two files (or a file and bytes) hold the same bytes, read a piece at a time and only until they differ. */
export async function sameData(a: DataSource, b: DataSource): Promise<boolean> {
  if (sizeOf(a) !== sizeOf(b)) return false;
  const bufA = typeof a === 'number' ? Buffer.allocUnsafe(PIECE) : Buffer.alloc(0);
  const bufB = typeof b === 'number' ? Buffer.allocUnsafe(PIECE) : Buffer.alloc(0);
  for (let position = 0; ; position += PIECE) {
    const pa = await pieceOf(a, bufA, position);
    const pb = await pieceOf(b, bufB, position);
    if (!pa.equals(pb)) return false;
    if (pa.length < PIECE) return true;
  }
}

/** Feed the bytes of the open file `fd` to `update` a piece at a time (a digest computed as the file streams by). */
export async function eachPiece(fd: number, update: (piece: Buffer) => void): Promise<void> {
  const buf = Buffer.allocUnsafe(PIECE);
  for (let position = 0; ; position += PIECE) {
    const n = await readFull(fd, buf, PIECE, position);
    if (n > 0) update(buf.subarray(0, n));
    if (n < PIECE) return;
  }
}

/**
 * eachPiece for a caller that reads synchronously: the file at `path`;
 * false when there is none. A digest of a kept manifest (tens of MB on a
 * large root) then never holds more than one piece.
 */
export function eachPieceOfPath(path: string, update: (piece: Buffer) => void): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw err;
  }
  try {
    const buf = Buffer.allocUnsafe(PIECE);
    for (let position = 0; ; position += PIECE) {
      let n = 0;
      while (n < PIECE) {
        const got = readSync(fd, buf, n, PIECE - n, position + n);
        if (got === 0) break;
        n += got;
      }
      if (n > 0) update(buf.subarray(0, n));
      if (n < PIECE) return true;
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Gives the memory of `buf` back now. For a large Buffer the caller read
 * and parsed and that nothing else refers to (a kept manifest): V8 frees an
 * ArrayBuffer's bytes only once a full collection finds it dead, and until
 * then tens of MB sit beside what the run allocates next, at its peak.
 * Every view of those bytes is empty afterwards. A Buffer that shares its
 * memory (a slice, Node's pool) is left as it is.
 */
export function releaseBytes(buf: Buffer): void {
  const ab = buf.buffer;
  if (!(ab instanceof ArrayBuffer) || buf.byteOffset !== 0 || ab.byteLength !== buf.length || ab.byteLength < PIECE) return;
  // ES2024 transfer() detaches the buffer, which frees its backing store at once (the lib target here is ES2022).
  (ab as ArrayBuffer & { transfer(length: number): ArrayBuffer }).transfer(0);
}

function isZero(buf: Buffer, start: number, end: number): boolean {
  return buf.compare(zeroPiece(), 0, end - start, start, end) === 0;
}

async function writeAll(fd: number, buf: Buffer, start: number, end: number, position: number): Promise<void> {
  for (let off = start; off < end; ) off += await writeAt(fd, buf, off, end - off, position + (off - start));
}

/** Write one piece read at `position`, leaving its runs of zero blocks unwritten (holes). */
async function writeSparse(fd: number, buf: Buffer, length: number, position: number): Promise<void> {
  if (isZero(buf, 0, length)) return;
  let run = -1;
  for (let b = 0; b < length; b += BLOCK) {
    const e = Math.min(b + BLOCK, length);
    if (isZero(buf, b, e)) {
      if (run >= 0) await writeAll(fd, buf, run, b, position + run);
      run = -1;
    } else if (run < 0) run = b;
  }
  if (run >= 0) await writeAll(fd, buf, run, length, position + run);
}

export type CopyHow = 'cloned' | 'copied';

/**
 * Copy the content of the open regular file `src` into `dst`, a new empty
 * file the caller created (a confined temporary, O_CREAT|O_EXCL), opened for
 * writing. `halfway` runs once about half of the bytes are in `dst` (a crash
 * point for tests). Memory: one piece, whatever the size.
 *
 * First a clone (FICLONE: Btrfs, XFS, OpenZFS with block cloning), which
 * shares the source's extents, holes included, and writes no data. Node has
 * no ioctl; fs.copyFile with COPYFILE_FICLONE_FORCE makes exactly that one
 * call, and takes paths: it is given /proc/self/fd/<src> and
 * /proc/self/fd/<dst>, which the kernel resolves to the two files already
 * open, so nothing swapped in at a name can be read or written. On such a
 * path libuv opens the target with O_WRONLY|O_CREAT (it exists: our
 * temporary), gives it the source's mode (not its owner) before the ioctl,
 * so for that moment the copy is root's with the source's mode; the caller
 * sets owner and mode afterwards. Hence no clone of a set-id source, and on failure tries
 * to unlink the path it was given, which /proc refuses: the temporary stays.
 *
 * Where no clone can be made (another filesystem, ZFS without block
 * cloning, zfs-fuse, a Btrfs nodatacow file), the bytes are copied a piece
 * at a time. Node has no lseek(SEEK_DATA/SEEK_HOLE), so the source's holes
 * are found as what they read as, zeros: blocks of zeros are not written and
 * the length is set with ftruncate, so the copy has holes where the source
 * has them, and also where the source had written zeros (harmless for the
 * content; `cp --sparse=always` does the same). Reading a hole costs the
 * time to zero a page, neither disk nor memory. Not chosen: libuv's own
 * fallback (copy_file_range, then sendfile) writes holes out as zeros on a
 * filesystem that cannot clone, and `cp --reflink=auto --sparse=always`
 * on /proc/<pid>/fd paths would cost a process per file and depend on how
 * each coreutils version treats an existing target.
 */
export async function copyData(src: number, dst: number, halfway?: () => void): Promise<CopyHow> {
  // Never a clone of a set-user-ID or set-group-ID file: libuv gives the target the source's
  // mode before the caller's chown, so for that moment a root-owned set-id file would hold a
  // user's bytes in the user's own directory, and a user racing to run it would be root.
  if ((fstatSync(src).mode & 0o6000) === 0) {
    try {
      await copyFile(`/proc/self/fd/${src}`, `/proc/self/fd/${dst}`, constants.COPYFILE_FICLONE_FORCE);
      halfway?.();
      return 'cloned';
    } catch {
      // Not possible here (EXDEV, EOPNOTSUPP, EINVAL ...): copy the bytes. A real I/O error shows again below, with its path.
    }
  }
  // The failed attempt gave the temporary the source's owner and mode: private again while it fills.
  fchmodSync(dst, 0o600);
  await truncateTo(dst, 0);
  const size = fstatSync(src).size;
  const buf = Buffer.allocUnsafe(PIECE);
  let position = 0;
  let half = halfway === undefined;
  for (;;) {
    const n = await readFull(src, buf, PIECE, position);
    if (n > 0) await writeSparse(dst, buf, n, position);
    position += n;
    if (!half && position >= size / 2) {
      half = true;
      halfway?.();
    }
    if (n < PIECE) break;
  }
  // The length, holes at the end included.
  await truncateTo(dst, position);
  if (!half) halfway?.();
  return 'copied';
}

/** Close `fd`, ignoring a failure: for cleanup paths where an error is already on its way. */
export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed, or the error that brought us here matters more
  }
}
