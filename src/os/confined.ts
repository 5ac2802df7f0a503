/**
 * Root-confined filesystem access: the one way sysprime reads or writes a
 * path inside an environment (reintegration, the first-boot note and unit,
 * reports, what updaters write below a clone's root, kernels read for the
 * ESP). An environment's content is not trusted: the admin's drift and
 * packages put links anywhere in it, and sysprime runs as root on the host.
 *
 * Node has no openat(2), so every path below a root is walked one component
 * at a time: each directory is opened with O_DIRECTORY|O_NOFOLLOW through
 * the magic link `/proc/self/fd/<parent>/<name>`, which the kernel resolves
 * to exactly the directory already open (no re-resolution of the path
 * above it). A component that is a symbolic link fails with ENOTDIR or
 * ELOOP and is refused, so a link planted in a tree can never redirect a
 * read or a write outside the root. Operations on the last component go
 * through the same parent handle and never follow a link there either.
 *
 * Child processes (setfattr, mknod, mkfifo) reach the same directory
 * through `/proc/<our pid>/fd/<fd>/...`. Needs /proc, which every place this
 * runs (a staging host, a booting system after local filesystems) has.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fchownSync, lchownSync, linkSync, mkdirSync, openSync, fstatSync, fsyncSync, lstatSync, readdirSync, readlinkSync, readSync, renameSync, rmdirSync, symlinkSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { SysprimeError, errnoOf, messageOf } from '../errors.js';
import { displayPath } from '../bart/types.js';
import type { XattrCache } from './xattr-cache.js';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = constants;
/** Linux O_PATH: a handle on the inode itself (links, FIFOs) without opening it for I/O. */
export const O_PATH = 0o10000000;

/** Split a manifest path ("/etc/x") into components, refusing `.` and `..`. */
export function componentsOf(path: string): string[] {
  const comps = path.split('/').filter((c) => c !== '');
  for (const c of comps) {
    if (c === '.' || c === '..') {
      throw new SysprimeError('REFUSED', `path ${displayPath(path)} has a '${c}' component`, {
        hint: 'manifest paths are absolute and normalised; regenerate the manifest',
      });
    }
  }
  return comps;
}

/** The components of a manifest path's parent, and its last component (never the root itself). */
function parentComponents(path: string): { comps: string[]; name: string } {
  const comps = componentsOf(path);
  const name = comps.pop();
  if (name === undefined) throw new SysprimeError('REFUSED', 'the root directory itself cannot be replaced');
  return { comps, name };
}

/** Bytes of a byte-string name, for node:fs calls that take Buffers. */
function nameBytes(name: string): Buffer {
  return Buffer.from(name, 'latin1');
}

/** A directory a quiet root keeps open (TreeOptions.quiet), shared by the handles given out on it. */
interface KeptDir {
  fd: number;
  /** Handles on it not closed yet. */
  users: number;
  /** No longer kept (evicted, or the tree's directories changed): closed when its last user closes. */
  dropped: boolean;
}

/** An open directory below a confined root. */
export class DirHandle {
  private released = false;
  /** The filesystem this directory is on, once a write through it was left unsynced (one fstat per handle, not per write). */
  private dev: number | undefined;

  constructor(
    readonly fd: number,
    /** Components from the root to this directory (byte strings). */
    readonly comps: readonly string[],
    readonly tree: TreeOptions,
    /** The root it was opened from: a file found here is found again from it (FileInTree). */
    readonly root: ConfinedRoot,
    /** Set when the descriptor belongs to the root's kept directories, not to this handle. */
    private readonly kept?: KeptDir,
  ) {}

  /** Attributes already read in this tree, when its root keeps them. */
  get xattrs(): XattrCache | undefined {
    return this.tree.xattrs;
  }

  /**
   * fsync an object's metadata or a directory (a new directory, this one
   * after a rename or a removal in it), unless the caller makes the whole
   * filesystem durable at the end (TreeOptions.durable).
   */
  sync(fd: number): void {
    if ((this.tree.durable ?? 'each') === 'each') fsyncSync(fd);
    else this.leftUnsynced();
  }

  /** fsync the content of a regular file just written, before it is renamed into place; not when the caller syncs everything at the end. */
  syncData(fd: number): void {
    if (this.tree.durable !== 'at-end') fsyncSync(fd);
    else this.leftUnsynced();
  }

  /** A write through this directory was not synced: its filesystem is synced at the end (filesystemsToSync). */
  private leftUnsynced(): void {
    this.root.wroteIn(this.fd, (this.dev ??= fstatSync(this.fd).dev));
  }

  /** A path for node:fs calls in this process naming `name` in this directory. */
  entry(name: string): Buffer {
    return Buffer.concat([Buffer.from(`/proc/self/fd/${this.fd}/`), nameBytes(name)]);
  }

  /** The directory itself for this process. */
  get self(): string {
    return `/proc/self/fd/${this.fd}`;
  }

  /**
   * A path a child process can use for `name` (ASCII names only: argv
   * cannot carry bytes that are not UTF-8, so callers use temporary names).
   */
  childEntry(name: string): string {
    if (!isPortableArg(name)) {
      throw new SysprimeError('REFUSED', `name ${displayPath(name)} cannot be passed to a helper program`, {
        hint: 'this attribute is set through a temporary name; report this as a bug',
      });
    }
    return `/proc/${process.pid}/fd/${this.fd}/${name}`;
  }

  /**
   * A directory below this one was removed or renamed (by sysprime, through
   * this handle): a quiet root forgets the directories it kept open, which
   * may name other directories now.
   */
  dirsChanged(): void {
    this.root.dirsChanged();
  }

  close(): void {
    if (this.kept === undefined) {
      closeSync(this.fd);
      return;
    }
    // Twice would take a use from another handle and close the descriptor under it.
    if (this.released) return;
    this.released = true;
    this.kept.users--;
    if (this.kept.dropped && this.kept.users === 0) closeSync(this.kept.fd);
  }
}

/** Names that survive as a command-line argument unchanged (valid UTF-8, no NUL). */
function isPortableArg(name: string): boolean {
  const bytes = nameBytes(name);
  return !bytes.includes(0) && Buffer.from(bytes.toString('utf8'), 'utf8').equals(bytes);
}

export interface TreeOptions {
  /** Attributes read once below the root are not read again while unchanged. */
  xattrs?: XattrCache;
  /**
   * How writes are made durable; writes stay atomic renames either way.
   * `each` (the default): every file and directory written is fsynced, and
   * the directory after each rename or removal. `file-data`: only the
   * content of each regular file, before it is renamed into place, so that
   * after a power loss every path holds its old object or its new one,
   * never a file whose name arrived before its bytes (a crash between two
   * transactions keeps renames and metadata in order; only file data can
   * lag); the caller syncs each filesystem written once at the end
   * (filesystemsToSync), before it counts the work as done (a
   * reintegration that applies its plan again after an interruption).
   * `at-end`: nothing per write, the same syncs at the end (staging into an
   * environment that nothing boots until staging has finished, and that a
   * crash undoes whole).
   */
  durable?: 'each' | 'file-data' | 'at-end';
  /**
   * Nothing but sysprime, through this root, changes the tree while it is
   * open: a read-only pristine snapshot, or a new environment being staged,
   * which nothing runs yet. Directories opened below it are kept open
   * (KEPT_DIRS, the most recently used) and found again without walking
   * from the root: a reintegration of thousands of files otherwise opens
   * each directory of each path a dozen times. A link is still never
   * followed (each directory was opened the confined way once), and a
   * directory removed or renamed through the root drops them all
   * (dirsChanged). Never for a running system's tree, which others change.
   */
  quiet?: boolean;
}

/** Directories a quiet root keeps open: the paths a plan touches, in order, come back to few directories at a time. */
const KEPT_DIRS = 64;

export class ConfinedRoot {
  private closed = false;
  /** Quiet roots: directories kept open by their components joined with '/' (least recently used first). */
  private readonly kept = new Map<string, KeptDir>();
  /** Writes not synced one by one (TreeOptions.durable): a directory kept open on each filesystem written, by device. */
  private readonly unsynced = new Map<number, number>();

  private constructor(
    readonly root: string,
    private readonly rootFd: number,
    readonly tree: TreeOptions,
  ) {}

  get xattrs(): XattrCache | undefined {
    return this.tree.xattrs;
  }

  /** The root itself is trusted (it is a mount point the caller chose); everything below is not. */
  static open(root: string, tree: TreeOptions = {}): ConfinedRoot {
    try {
      return new ConfinedRoot(root, openSync(root, O_RDONLY | O_DIRECTORY), tree);
    } catch (err) {
      throw new SysprimeError('NOT_FOUND', `cannot open ${root} as a directory: ${errnoOf(err) ?? String(err)}`, {
        hint: 'check that the environment is mounted at that path',
        cause: err,
      });
    }
  }

  close(): void {
    this.closed = true;
    this.dirsChanged();
    for (const fd of this.unsynced.values()) closeSync(fd);
    this.unsynced.clear();
    closeSync(this.rootFd);
  }

  /** A write through the directory `dirFd`, on the filesystem `dev`, was not synced: that filesystem is among those to sync (filesystemsToSync). */
  wroteIn(dirFd: number, dev: number): void {
    if (!this.unsynced.has(dev)) this.unsynced.set(dev, openSync(`/proc/self/fd/${dirFd}`, O_RDONLY | O_DIRECTORY));
  }

  /**
   * Paths a helper program can open (`sync --file-system`) on each
   * filesystem written below this root without a sync of each write: the
   * root's own, and any mounted below it that a write reached (a child
   * dataset holding a shared path). Valid until the root is closed.
   */
  filesystemsToSync(): string[] {
    return [...this.unsynced.values()].map((fd) => `/proc/${process.pid}/fd/${fd}`);
  }

  /** Forget the directories kept open (a quiet root's), closing each as its last handle closes. */
  dirsChanged(): void {
    for (const k of this.kept.values()) this.drop(k);
    this.kept.clear();
  }

  private drop(k: KeptDir): void {
    k.dropped = true;
    if (k.users === 0) closeSync(k.fd);
  }

  /**
   * Open the directory at `comps` (components below the root). Returns
   * undefined when a component is missing; `blocked` when one exists but is
   * not a directory (a file, or a symbolic link, which is never followed).
   */
  openDir(comps: readonly string[]): DirHandle | { blocked: string[] } | undefined {
    // Once closed, the descriptor number may name another directory: never walk from it.
    if (this.closed) throw new Error(`${this.root} was opened as a confined root and closed already`);
    return this.tree.quiet === true ? this.openKept(comps) : this.walk(comps);
  }

  /** openDir of a quiet root: each directory on the way found among the kept ones, or opened from its parent and kept. */
  private openKept(comps: readonly string[]): DirHandle | { blocked: string[] } | undefined {
    let key = '';
    let k = this.keep(key, () => openSync(`/proc/self/fd/${this.rootFd}`, O_RDONLY | O_DIRECTORY))!;
    for (let i = 0; i < comps.length; i++) {
      const parent = k;
      key = i === 0 ? comps[0]! : `${key}/${comps[i]!}`;
      let failed: unknown;
      const child = this.keep(key, () => {
        try {
          return openSync(Buffer.concat([Buffer.from(`/proc/self/fd/${parent.fd}/`), nameBytes(comps[i]!)]), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        } catch (err) {
          failed = err;
          return -1;
        }
      });
      if (child === undefined) {
        const code = errnoOf(failed);
        if (code === 'ENOENT') return undefined;
        if (code === 'ENOTDIR' || code === 'ELOOP') return { blocked: comps.slice(0, i + 1) };
        throw ioError(`open ${displayPath('/' + comps.slice(0, i + 1).join('/'))} below ${this.root}`, failed);
      }
      k = child;
    }
    k.users++;
    return new DirHandle(k.fd, comps, this.tree, this, k);
  }

  /** The kept directory at `key`, most recently used now; opened (`open`, -1 when it cannot be) and kept when it is not. */
  private keep(key: string, open: () => number): KeptDir | undefined {
    const had = this.kept.get(key);
    if (had !== undefined) {
      this.kept.delete(key);
      this.kept.set(key, had);
      return had;
    }
    const fd = open();
    if (fd < 0) return undefined;
    const k: KeptDir = { fd, users: 0, dropped: false };
    this.kept.set(key, k);
    // The least recently used go (never the parent just used to open this one: it is the next most recent);
    // one in use stays open until its last handle closes.
    for (const [old, v] of this.kept) {
      if (this.kept.size <= KEPT_DIRS) break;
      this.kept.delete(old);
      this.drop(v);
    }
    return k;
  }

  private walk(comps: readonly string[]): DirHandle | { blocked: string[] } | undefined {
    // The first component is opened from the root's own handle; a handle of the root itself is opened only for
    // the root (the caller closes what it gets): two calls fewer for every path, of the dozens a file costs.
    let fd = -1;
    for (let i = 0; i < comps.length; i++) {
      const next = Buffer.concat([Buffer.from(`/proc/self/fd/${fd < 0 ? this.rootFd : fd}/`), nameBytes(comps[i]!)]);
      let child: number;
      try {
        child = openSync(next, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      } catch (err) {
        if (fd >= 0) closeSync(fd);
        const code = errnoOf(err);
        if (code === 'ENOENT') return undefined;
        if (code === 'ENOTDIR' || code === 'ELOOP') return { blocked: comps.slice(0, i + 1) };
        throw ioError(`open ${displayPath('/' + comps.slice(0, i + 1).join('/'))} below ${this.root}`, err);
      }
      if (fd >= 0) closeSync(fd);
      fd = child;
    }
    if (fd < 0) fd = openSync(`/proc/self/fd/${this.rootFd}`, O_RDONLY | O_DIRECTORY);
    return new DirHandle(fd, comps, this.tree, this);
  }

  /** The parent directory of a manifest path, and the last component. */
  openParent(path: string): { dir: DirHandle | { blocked: string[] } | undefined; name: string } {
    const { comps, name } = parentComponents(path);
    return { dir: this.openDir(comps), name };
  }
}

export function isHandle(d: DirHandle | { blocked: string[] } | undefined): d is DirHandle {
  return d instanceof DirHandle;
}

/** lstat of `name` in `dir`, undefined when absent. */
export function lstatIn(dir: DirHandle, name: string): Stats | undefined {
  try {
    return lstatSync(dir.entry(name));
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw ioError(`lstat ${displayPath(name)}`, err);
  }
}

/**
 * Open a regular file for reading without following a link; undefined when
 * it is absent or not a regular file (a FIFO never blocks: O_NONBLOCK).
 */
export function openFileIn(dir: DirHandle, name: string): number | undefined {
  let fd: number;
  try {
    fd = openSync(dir.entry(name), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENXIO' || code === 'EACCES') return undefined;
    throw ioError(`open ${displayPath(name)}`, err);
  }
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    return undefined;
  }
  return fd;
}

/** A handle on the inode itself (any type, links included), for xattrs through /proc. */
export function openPathIn(dir: DirHandle, name: string): number | undefined {
  try {
    return openSync(dir.entry(name), O_PATH | O_NOFOLLOW);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw ioError(`open ${displayPath(name)}`, err);
  }
}

/**
 * Whether `now` (a fresh fstat) is still the file `then` described: same
 * inode of the same filesystem, size, modification and change time. The
 * change time catches a write whose mtime was put back (`touch -r`): no
 * one but the kernel sets it. Equal up to the filesystem's timestamp
 * granularity: a write in the same clock tick as the first look, at the
 * same size, is not seen.
 */
export function sameFileState(then: Stats, now: Stats): boolean {
  return now.dev === then.dev && now.ino === then.ino && now.size === then.size && now.mtimeMs === then.mtimeMs && now.ctimeMs === then.ctimeMs;
}

/**
 * How long after a file's last change its timestamps can still be those of
 * a write to come. The kernel stamps a write with its coarse clock, which
 * moves a tick at a time (1/HZ: 1 to 10 ms); a filesystem that keeps whole
 * seconds (ext4 with 128-byte inodes, FUSE filesystems that round, FAT with
 * 2 s) moves slower still. Told apart by the file's own times: no
 * sub-second part in either means such a filesystem (wrong once in a
 * million for a nanosecond one: it then waits longer, nothing worse).
 */
function racyWindow(st: Stats): number {
  return st.ctimeMs % 1000 === 0 && st.mtimeMs % 1000 === 0 ? 2000 : 20;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * The state of the open file `fd` to hold it against later
 * (`sameFileState`), taken once its change time is older than a clock
 * tick. A file changed within the tick sysprime first looks at it is
 * "racily clean" (git's word for the same problem): a write at the same
 * size later in that tick leaves size, mtime and ctime as they were, so
 * no later look could see it. Waiting until the clock has moved past the
 * last change closes that: any write after this stat stamps a later
 * ctime. Costs nothing for a file changed before (almost every file), and
 * up to one window for the rare one changed just now. A change time in
 * the future (a clock set back) needs no wait: any write moves it back
 * to now. A file written without pause is given up on after three looks;
 * the check after its read then fails it.
 */
export function settledStat(fd: number): Stats {
  let st = fstatSync(fd);
  for (let tries = 0; tries < 3; tries++) {
    const window = racyWindow(st);
    const age = Date.now() - st.ctimeMs;
    if (age >= window || age <= -window) return st;
    Atomics.wait(sleeper, 0, 0, Math.ceil(window - age) + 1);
    st = fstatSync(fd);
  }
  return st;
}

const changedErrors = new WeakSet<Error>();

/** The error for a file that changed while sysprime was reading, comparing or copying it (`root`: the tree it is in). */
export function changedWhileRead(path: string, root?: string): SysprimeError {
  const err = new SysprimeError('IO', `${displayPath(path)}${root === undefined ? '' : ` in ${root}`} changed while sysprime was reading it`, {
    hint: 'it was written, replaced or removed meanwhile; run again to carry it as it is then',
  });
  changedErrors.add(err);
  return err;
}

/** Whether `err` is changedWhileRead's: reading the file again, once it is still, may succeed. */
export function isChangedWhileRead(err: unknown): boolean {
  return err instanceof Error && changedErrors.has(err);
}

/**
 * A regular file found below a confined root, remembered instead of read:
 * its bytes are read only when a comparison or a copy needs them, a piece
 * at a time (src/os/file-data.ts), so a file of any size is never held in
 * memory. It is found again the way it was found first, component by
 * component from the root, and only if it is still that file (device,
 * inode, size, modification and change time); otherwise it changed in
 * between, and the caller is told so rather than handed other bytes. After
 * reading through the descriptor (a comparison, a digest, a copy) the
 * caller asks again (`checkUnchanged`): a write during the read would
 * otherwise leave a torn copy counted as carried.
 */
export class FileInTree {
  private readonly root: ConfinedRoot;
  private readonly comps: readonly string[];

  constructor(
    dir: DirHandle,
    private readonly name: string,
    readonly st: Stats,
  ) {
    this.root = dir.root;
    this.comps = dir.comps;
  }

  get size(): number {
    return this.st.size;
  }

  /** Whether `st` is this very file (same inode of the same filesystem). */
  isInode(st: Stats): boolean {
    return st.dev === this.st.dev && st.ino === this.st.ino;
  }

  private changed(): SysprimeError {
    return changedWhileRead('/' + [...this.comps, this.name].join('/'), this.root.root);
  }

  /** A descriptor on the file, for reading; the caller closes it. */
  open(): number {
    const dir = this.root.openDir(this.comps);
    let fd: number | undefined;
    if (isHandle(dir)) {
      try {
        fd = openFileIn(dir, this.name);
      } finally {
        dir.close();
      }
    }
    if (fd !== undefined) {
      if (sameFileState(this.st, fstatSync(fd))) return fd;
      closeSync(fd);
    }
    throw this.changed();
  }

  /** After reading through `fd` (from open()): throws "changed while sysprime was reading it" if the file was written meanwhile. */
  checkUnchanged(fd: number): void {
    if (!sameFileState(this.st, fstatSync(fd))) throw this.changed();
  }
}

export function ioError(what: string, err: unknown): SysprimeError {
  return new SysprimeError('IO', `${what} failed: ${errnoOf(err) ?? messageOf(err)}`, {
    hint: 'check that the filesystem is mounted read-write and has room',
    cause: err,
  });
}

/**
 * mkdir -p below a confined root (new directories get `mode`); refuses a
 * component that is a link or not a directory. Returns the last directory.
 */
function ensureDirectories(root: ConfinedRoot, comps: readonly string[], mode = 0o755): DirHandle {
  for (let i = 0; i <= comps.length; i++) {
    const d = root.openDir(comps.slice(0, i));
    if (isHandle(d)) {
      if (i === comps.length) return d;
      try {
        mkdirSync(d.entry(comps[i]!), mode);
      } catch (err) {
        if (errnoOf(err) !== 'EEXIST') throw ioError(`mkdir ${displayPath('/' + comps.slice(0, i + 1).join('/'))} in ${root.root}`, err);
      } finally {
        d.close();
      }
      continue;
    }
    if (d === undefined) throw ioError(`open ${displayPath('/' + comps.slice(0, i).join('/'))} in ${root.root}`, new Error('missing'));
    throw new SysprimeError('REFUSED', `${displayPath('/' + d.blocked.join('/'))} in ${root.root} is not a directory (or a symbolic link, which is not followed)`, {
      hint: 'sysprime does not write through it; replace it with a directory or remove it, then run again',
    });
  }
  throw new Error('unreachable');
}

export interface Owner {
  uid: number;
  gid: number;
}

/** A temporary name in a directory sysprime writes into; never the name of anything else there. */
function confinedTempName(): string {
  return `.sysprime-tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/**
 * Replace `name` in `dir` with a regular file holding `content`: a new
 * temporary name created with O_EXCL|O_NOFOLLOW (so nothing planted there is
 * opened), written, fsynced, renamed over `name` (rename replaces a link at
 * `name`, it never writes through it), then the directory is fsynced. Unless
 * the tree defers its syncs to one syncfs at the end.
 */
export function writeFileIn(dir: DirHandle, name: string, content: Buffer, mode: number, owner?: Owner): void {
  const tmp = confinedTempName();
  let fd: number;
  try {
    fd = openSync(dir.entry(tmp), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  } catch (err) {
    throw ioError(`create a file in ${displayPath('/' + dir.comps.join('/'))}`, err);
  }
  try {
    let off = 0;
    while (off < content.length) off += writeSync(fd, content, off, content.length - off);
    // chown before chmod (chown clears setuid and setgid); the mode exactly as asked, whatever the umask.
    if (owner !== undefined) fchownSync(fd, owner.uid, owner.gid);
    fchmodSync(fd, mode);
    dir.syncData(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(dir.entry(tmp));
    throw ioError(`write ${displayPath('/' + [...dir.comps, name].join('/'))}`, err);
  }
  closeSync(fd);
  try {
    renameSync(dir.entry(tmp), dir.entry(name));
  } catch (err) {
    unlinkSync(dir.entry(tmp));
    throw ioError(`rename into ${displayPath('/' + [...dir.comps, name].join('/'))}`, err);
  }
  dir.sync(dir.fd);
}

/** Replace `name` in `dir` with a symbolic link to `target` (through a temporary name, then rename). */
export function symlinkIn(dir: DirHandle, name: string, target: string, owner?: Owner): void {
  replaceThroughTemp(dir, name, (tmp) => {
    symlinkSync(target, tmp);
    if (owner !== undefined) lchownSync(tmp, owner.uid, owner.gid);
  });
}

/**
 * Make a new entry under a temporary name in `dir` (`make` gets its path),
 * then rename it over `name`: the name is never missing, and whatever was
 * there (a link included) is replaced, never written through. On failure
 * the temporary is removed.
 */
function replaceThroughTemp(dir: DirHandle, name: string, make: (tmp: Buffer) => void): void {
  const tmp = dir.entry(confinedTempName());
  try {
    make(tmp);
    renameSync(tmp, dir.entry(name));
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // it was not made; nothing to remove
    }
    throw ioError(`link ${displayPath('/' + [...dir.comps, name].join('/'))}`, err);
  }
  dir.sync(dir.fd);
}

/** Rename `from` to `to` within `dir` (neither is followed if it is a link). */
export function renameIn(dir: DirHandle, from: string, to: string): void {
  dir.dirsChanged();
  try {
    renameSync(dir.entry(from), dir.entry(to));
  } catch (err) {
    throw ioError(`rename ${displayPath('/' + [...dir.comps, from].join('/'))}`, err);
  }
  dir.sync(dir.fd);
}

/** Remove `name` from `dir` (a link is removed itself, never what it points at); false when it was absent. */
export function unlinkIn(dir: DirHandle, name: string): boolean {
  try {
    unlinkSync(dir.entry(name));
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw ioError(`remove ${displayPath('/' + [...dir.comps, name].join('/'))}`, err);
  }
  dir.sync(dir.fd);
  return true;
}

/**
 * Open the directory `name` in `dir` (never through a link); undefined when
 * it is absent, a REFUSED error when it is a link or not a directory.
 */
export function openDirIn(dir: DirHandle, name: string): DirHandle | undefined {
  let fd: number;
  try {
    fd = openSync(dir.entry(name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') return undefined;
    if (code === 'ENOTDIR' || code === 'ELOOP') {
      const what = lstatIn(dir, name)?.isSymbolicLink() ? 'a symlink, which sysprime does not follow' : 'not a directory';
      throw new SysprimeError('REFUSED', `${displayPath('/' + [...dir.comps, name].join('/'))} in ${dir.root.root} is ${what}`, {
        hint: 'sysprime does not write through it; replace it with a directory or remove it, then run again',
      });
    }
    throw ioError(`open ${displayPath('/' + [...dir.comps, name].join('/'))}`, err);
  }
  return new DirHandle(fd, [...dir.comps, name], dir.tree, dir.root);
}

/**
 * The directory `name` in `dir`, made (with `mode`, exactly) when absent;
 * `created` says which. A link or non-directory at the name is refused.
 */
export function ensureDirIn(dir: DirHandle, name: string, mode = 0o755): { dir: DirHandle; created: boolean } {
  let created = false;
  try {
    mkdirSync(dir.entry(name), mode);
    created = true;
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw ioError(`mkdir ${displayPath('/' + [...dir.comps, name].join('/'))}`, err);
  }
  const child = openDirIn(dir, name);
  if (child === undefined) throw ioError(`open ${displayPath('/' + [...dir.comps, name].join('/'))}`, new Error('it vanished'));
  if (created) {
    // mkdir's mode passes through the umask; the mode asked for is the mode meant.
    fchmodSync(child.fd, mode);
    dir.sync(dir.fd);
  }
  return { dir: child, created };
}

/**
 * Set owner and mode of `name` in `dir` without following a link: through a
 * descriptor for files and directories (chown first: it clears setuid and
 * setgid), lchown alone for a symbolic link (its mode means nothing).
 */
export function setOwnerModeIn(dir: DirHandle, name: string, owner: Owner, mode: number): void {
  const st = lstatIn(dir, name);
  if (st === undefined) throw ioError(`chown ${displayPath('/' + [...dir.comps, name].join('/'))}`, new Error('it is missing'));
  try {
    if (st.isSymbolicLink()) {
      lchownSync(dir.entry(name), owner.uid, owner.gid);
      return;
    }
    // Only files and directories get here (a link was handled above); O_NONBLOCK: a FIFO swapped in never blocks.
    const fd = openSync(dir.entry(name), O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    try {
      fchownSync(fd, owner.uid, owner.gid);
      fchmodSync(fd, mode);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if (err instanceof SysprimeError) throw err;
    throw ioError(`set owner and mode of ${displayPath('/' + [...dir.comps, name].join('/'))}`, err);
  }
}

/**
 * Make `toName` in `toDir` a hard link to `fromName` in `fromDir` (both
 * directories confined; link(2) never follows a link at the source, and
 * refuses anything already at the destination).
 */
export function linkIn(fromDir: DirHandle, fromName: string, toDir: DirHandle, toName: string): void {
  linkSync(fromDir.entry(fromName), toDir.entry(toName));
}

/**
 * Replace `name` in `dir` with a hard link to `fromName` in `fromDir`:
 * linked under a temporary name, then renamed over `name`, so the name is
 * never missing and whatever was there (a link included) is replaced, never
 * written through.
 */
export function replaceWithLinkIn(fromDir: DirHandle, fromName: string, dir: DirHandle, name: string): void {
  replaceThroughTemp(dir, name, (tmp) => linkSync(fromDir.entry(fromName), tmp));
}

/** Rename `from` in `fromDir` to `to` in `toDir` (same filesystem; neither name is followed). */
export function renameBetween(fromDir: DirHandle, from: string, toDir: DirHandle, to: string): void {
  fromDir.dirsChanged();
  toDir.dirsChanged();
  try {
    renameSync(fromDir.entry(from), toDir.entry(to));
  } catch (err) {
    throw ioError(`rename ${displayPath('/' + [...fromDir.comps, from].join('/'))} to ${displayPath('/' + [...toDir.comps, to].join('/'))}`, err);
  }
  toDir.sync(toDir.fd);
  if (fromDir.fd !== toDir.fd) fromDir.sync(fromDir.fd);
}

/** The names in `dir` (byte strings), unsorted. */
export function namesIn(dir: DirHandle): string[] {
  return readdirSync(dir.self, { encoding: 'buffer' }).map((b) => b.toString('latin1'));
}

/** Remove the empty directory `name` from `dir`; false when it is absent or not empty. */
export function removeEmptyDirIn(dir: DirHandle, name: string): boolean {
  dir.dirsChanged();
  try {
    rmdirSync(dir.entry(name));
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT' || code === 'ENOTEMPTY' || code === 'EEXIST') return false;
    throw ioError(`remove ${displayPath('/' + [...dir.comps, name].join('/'))}`, err);
  }
  dir.sync(dir.fd);
  return true;
}

/**
 * rm -rf of `name` in `dir`, confined: every directory below is opened
 * without following links before its entries are removed through it, so a
 * link swapped in for a directory meanwhile is removed itself and nothing
 * outside is touched. False when `name` was absent.
 */
export function removeTreeIn(dir: DirHandle, name: string): boolean {
  const st = lstatIn(dir, name);
  if (st === undefined) return false;
  if (st.isDirectory()) {
    dir.dirsChanged();
    let child: DirHandle | undefined;
    try {
      child = openDirIn(dir, name);
    } catch (err) {
      // Replaced by something else since the lstat: remove that instead, unfollowed.
      if (!(err instanceof SysprimeError && err.code === 'REFUSED')) throw err;
    }
    if (child !== undefined) {
      try {
        for (const d of readdirSync(child.self, { encoding: 'buffer', withFileTypes: true })) {
          const n = d.name.toString('latin1');
          // What the directory lists as anything but a directory is unlinked without an lstat first (most of a
          // tree: an lstat each was a fifth of removing a /usr): unlink never follows a link, and a directory
          // swapped in since the listing fails it and is removed as one.
          if (d.isDirectory() || !unlinkNonDirectoryIn(child, n)) removeTreeIn(child, n);
        }
      } finally {
        child.close();
      }
      try {
        rmdirSync(dir.entry(name));
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') throw ioError(`remove ${displayPath('/' + [...dir.comps, name].join('/'))}`, err);
      }
      dir.sync(dir.fd);
      return true;
    }
  }
  try {
    unlinkSync(dir.entry(name));
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') return true;
    throw ioError(`remove ${displayPath('/' + [...dir.comps, name].join('/'))}`, err);
  }
  dir.sync(dir.fd);
  return true;
}

/**
 * Unlink `name` in `dir` when it is not a directory; false when it is one
 * (or the type of its file does not let it be unlinked), for the caller to
 * remove as a tree. Absent counts as removed.
 */
function unlinkNonDirectoryIn(dir: DirHandle, name: string): boolean {
  try {
    unlinkSync(dir.entry(name));
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') return true;
    if (code === 'EISDIR' || code === 'EPERM') return false;
    throw ioError(`remove ${displayPath('/' + [...dir.comps, name].join('/'))}`, err);
  }
  dir.sync(dir.fd);
  return true;
}

/** The target of the link `name` in `dir`. */
export function readlinkIn(dir: DirHandle, name: string): string {
  return readlinkSync(dir.entry(name), 'latin1');
}

/**
 * The whole content of the regular file `name` in `dir`, never through a
 * link; undefined when it is absent, a link or not a regular file. For small
 * files (notes, configuration), not for kernels: those are streamed from the
 * descriptor openFileIn gives.
 */
export function readFileIn(dir: DirHandle, name: string): Buffer | undefined {
  const fd = openFileIn(dir, name);
  if (fd === undefined) return undefined;
  try {
    const chunks: Buffer[] = [];
    const buf = Buffer.alloc(1 << 16);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      chunks.push(Buffer.from(buf.subarray(0, n)));
    }
    return Buffer.concat(chunks);
  } finally {
    closeSync(fd);
  }
}

/** Open the directory at `path` (absolute, inside the tree `r`), creating it when asked; undefined when absent. */
function openDirAt(r: ConfinedRoot, root: string, path: string, opts: { create: boolean; mode?: number }): DirHandle | undefined {
  const comps = componentsOf(path);
  if (opts.create) return ensureDirectories(r, comps, opts.mode);
  const d = r.openDir(comps);
  if (d === undefined) return undefined;
  if (!isHandle(d)) {
    throw new SysprimeError('REFUSED', `${displayPath('/' + d.blocked.join('/'))} in ${root} is not a directory (or a symbolic link, which is not followed)`, {
      hint: 'sysprime does not read or write through it; replace it with a directory or remove it',
    });
  }
  return d;
}

/**
 * Run `fn` on the directory at `path` (an absolute path inside the tree at
 * `root`), which is created when `create` is set. Returns undefined when the
 * directory is absent and not created.
 */
export function withDirIn<T>(root: string, path: string, opts: { create: boolean; mode?: number }, fn: (dir: DirHandle) => T): T | undefined {
  const r = ConfinedRoot.open(root);
  try {
    const dir = openDirAt(r, root, path, opts);
    if (dir === undefined) return undefined;
    try {
      return fn(dir);
    } finally {
      dir.close();
    }
  } finally {
    r.close();
  }
}

/** withDirIn for asynchronous work: the directory stays open until `fn` has settled. */
export async function withDirInAsync<T>(root: string, path: string, opts: { create: boolean; mode?: number }, fn: (dir: DirHandle) => Promise<T>): Promise<T | undefined> {
  const r = ConfinedRoot.open(root);
  try {
    const dir = openDirAt(r, root, path, opts);
    if (dir === undefined) return undefined;
    try {
      return await fn(dir);
    } finally {
      dir.close();
    }
  } finally {
    r.close();
  }
}

/** The name an open file had when opened, for a message (a /proc/self/fd path says nothing to a person). */
function nameOf(fd: number, src: string): string {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return src;
  }
}

/**
 * Copy the file at `src` to a new file `dest` (created O_EXCL: nothing
 * already there, a link included, is opened), counting the copy only if
 * the source held still: it is opened once, copied through that
 * descriptor, and its state before (`settledStat`) and after must be the
 * same (`sameFileState`, as for reintegration's copies). Otherwise throws
 * "changed while sysprime was reading it", `dest` left for the caller to
 * remove (it is a temporary name). `src` is followed: a host path, or a
 * /proc/self/fd link to a file already opened confined. Streams, or
 * clones where the filesystem can, whatever the size.
 */
export async function copyHeldStill(src: string, dest: string | Buffer): Promise<void> {
  const sfd = openSync(src, O_RDONLY | O_NONBLOCK);
  try {
    const before = settledStat(sfd);
    if (!before.isFile()) throw new SysprimeError('REFUSED', `${nameOf(sfd, src)} is not a regular file; it is not copied`);
    await copyFile(`/proc/self/fd/${sfd}`, dest, constants.COPYFILE_EXCL);
    if (!sameFileState(before, fstatSync(sfd))) throw changedWhileRead(nameOf(sfd, src));
  } finally {
    closeSync(sfd);
  }
}

/**
 * Replace `name` in `dir` with a copy of `src`, a path outside any
 * environment (a store object, sysprime's own file, a kernel) or a
 * /proc/self/fd path of a file opened inside one. Same steps as
 * writeFileIn; the copy is copyHeldStill's: a kernel rebuilt in place
 * while it is copied to /boot fails the copy, it never arrives torn.
 */
export async function copyFileIn(dir: DirHandle, name: string, src: string, mode: number, owner?: Owner): Promise<void> {
  const tmp = confinedTempName();
  try {
    await copyHeldStill(src, dir.entry(tmp));
    const fd = openSync(dir.entry(tmp), constants.O_RDWR | constants.O_NOFOLLOW);
    try {
      if (owner !== undefined) fchownSync(fd, owner.uid, owner.gid);
      fchmodSync(fd, mode);
      dir.syncData(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(dir.entry(tmp), dir.entry(name));
  } catch (err) {
    try {
      unlinkSync(dir.entry(tmp));
    } catch {
      // nothing was created
    }
    if (err instanceof SysprimeError) throw err;
    throw ioError(`copy into ${displayPath('/' + [...dir.comps, name].join('/'))}`, err);
  }
  dir.sync(dir.fd);
}

/** The parent directory and last component of a path inside a tree ("/etc/x" or "etc/x"). */
export function splitPath(path: string): { parent: string; name: string } {
  const comps = componentsOf(path);
  const name = comps.pop();
  if (name === undefined) throw new SysprimeError('REFUSED', 'the root directory itself cannot be replaced');
  return { parent: '/' + comps.join('/'), name };
}

/** Replace the file at `path` inside the tree at `root`, creating missing parents (0755) when asked. */
export function writeFileAt(root: string, path: string, content: Buffer | string, meta: { mode: number; owner?: Owner; createParents?: boolean }): void {
  const { parent, name } = splitPath(path);
  const done = withDirIn(root, parent, { create: meta.createParents === true }, (dir) => {
    writeFileIn(dir, name, typeof content === 'string' ? Buffer.from(content, 'utf8') : content, meta.mode, meta.owner);
    return true;
  });
  if (done === undefined) throw ioError(`write ${displayPath(path)} in ${root}`, new Error(`${displayPath(parent)} is missing`));
}

/** The content of the regular file at `path` inside the tree at `root`; undefined when absent, a link or not a file. */
export function readFileAt(root: string, path: string): Buffer | undefined {
  const { parent, name } = splitPath(path);
  return withDirIn(root, parent, { create: false }, (dir) => readFileIn(dir, name));
}

/**
 * The text of the regular file at `path` inside the tree at `root` (a
 * configuration file sysprime consults: fstab, kernel/cmdline); null when it
 * is absent, a link, not a regular file, or below a link or a non-directory.
 */
export function readTextAt(root: string, path: string): string | null {
  const { parent, name } = splitPath(path);
  const r = ConfinedRoot.open(root);
  try {
    const dir = r.openDir(componentsOf(parent));
    if (!isHandle(dir)) return null;
    try {
      return readFileIn(dir, name)?.toString('utf8') ?? null;
    } finally {
      dir.close();
    }
  } finally {
    r.close();
  }
}

/**
 * Run `fn` with a path naming the regular file at `path` inside the tree at
 * `root` as it is opened now (a /proc/self/fd path: whatever replaces the
 * name meanwhile, `fn` reads this file) and its size. Undefined when it is
 * absent, a link, not a regular file, or below a link.
 */
export async function withFileAt<T>(root: string, path: string, fn: (procPath: string, size: number) => Promise<T>): Promise<T | undefined> {
  const { parent, name } = splitPath(path);
  const r = ConfinedRoot.open(root);
  try {
    const dir = r.openDir(componentsOf(parent));
    if (!isHandle(dir)) return undefined;
    let fd: number | undefined;
    try {
      fd = openFileIn(dir, name);
    } finally {
      dir.close();
    }
    if (fd === undefined) return undefined;
    try {
      return await fn(`/proc/self/fd/${fd}`, fstatSync(fd).size);
    } finally {
      closeSync(fd);
    }
  } finally {
    r.close();
  }
}

/**
 * Read ahead the attributes of these manifest paths below a root, and of
 * the directories holding them, into the root's cache. Paths that are
 * missing or below something that is not a directory are left for the
 * caller to find when it gets there. Paths in a row in one directory share
 * its handle: what is read is kept by inode (and ctime), so an entry found
 * through a directory renamed meanwhile is still the one read.
 */
export async function readAhead(root: ConfinedRoot, paths: Iterable<string>): Promise<void> {
  const cache = root.xattrs;
  if (cache === undefined) return;
  function* handles(): Generator<number> {
    let dir: DirHandle | undefined;
    let dirKey: string | undefined;
    try {
      for (const path of paths) {
        const { comps, name } = parentComponents(path);
        const key = comps.join('/');
        if (key !== dirKey) {
          dir?.close();
          dir = undefined;
          dirKey = key;
          const d = root.openDir(comps);
          if (!isHandle(d)) continue;
          dir = d;
          // The directory's own attributes: fill() closes what it is given, so a descriptor of its own.
          yield openSync(dir.self, O_RDONLY | O_DIRECTORY);
        }
        if (dir === undefined) continue;
        try {
          const entry = openPathIn(dir, name);
          if (entry !== undefined) yield entry;
        } catch {
          // Unreadable here: the caller meets it again and reports it.
        }
      }
    } finally {
      dir?.close();
    }
  }
  await cache.fill(handles());
}
