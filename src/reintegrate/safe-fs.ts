/**
 * Root-confined filesystem access for reintegration.
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
import { closeSync, constants, openSync, fstatSync, fsyncSync, lstatSync, readFileSync, type Stats } from 'node:fs';
import { SysprimeError, errnoOf } from '../errors.js';
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

/** Bytes of a byte-string name, for node:fs calls that take Buffers. */
function nameBytes(name: string): Buffer {
  return Buffer.from(name, 'latin1');
}

/** An open directory below a confined root. */
export class DirHandle {
  constructor(
    readonly fd: number,
    /** Components from the root to this directory (byte strings). */
    readonly comps: readonly string[],
    readonly tree: TreeOptions = {},
  ) {}

  /** Attributes already read in this tree, when its root keeps them. */
  get xattrs(): XattrCache | undefined {
    return this.tree.xattrs;
  }

  /** fsync what was written here now, unless the caller makes the whole tree durable at the end. */
  sync(fd: number): void {
    if (this.tree.deferSync !== true) fsyncSync(fd);
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

  close(): void {
    closeSync(this.fd);
  }
}

/** Names that survive as a command-line argument unchanged (valid UTF-8, no NUL). */
export function isPortableArg(name: string): boolean {
  const bytes = nameBytes(name);
  return !bytes.includes(0) && Buffer.from(bytes.toString('utf8'), 'utf8').equals(bytes);
}

/** A path inside a file descriptor a child process can use. */
export function childFdPath(fd: number): string {
  return `/proc/${process.pid}/fd/${fd}`;
}

export interface TreeOptions {
  /** Attributes read once below the root are not read again while unchanged. */
  xattrs?: XattrCache;
  /**
   * Skip the fsync of each file and directory written: the caller syncs the
   * whole filesystem before relying on the tree (staging into an environment
   * that nothing boots until staging has finished). Writes stay atomic
   * renames either way.
   */
  deferSync?: boolean;
}

export class ConfinedRoot {
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
    closeSync(this.rootFd);
  }

  /**
   * Open the directory at `comps` (components below the root). Returns
   * undefined when a component is missing; `blocked` when one exists but is
   * not a directory (a file, or a symbolic link, which is never followed).
   */
  openDir(comps: readonly string[]): DirHandle | { blocked: string[] } | undefined {
    let fd = openSync(`/proc/self/fd/${this.rootFd}`, O_RDONLY | O_DIRECTORY);
    for (let i = 0; i < comps.length; i++) {
      const next = Buffer.concat([Buffer.from(`/proc/self/fd/${fd}/`), nameBytes(comps[i]!)]);
      let child: number;
      try {
        child = openSync(next, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      } catch (err) {
        closeSync(fd);
        const code = errnoOf(err);
        if (code === 'ENOENT') return undefined;
        if (code === 'ENOTDIR' || code === 'ELOOP') return { blocked: comps.slice(0, i + 1) };
        throw ioError(`open ${displayPath('/' + comps.slice(0, i + 1).join('/'))} below ${this.root}`, err);
      }
      closeSync(fd);
      fd = child;
    }
    return new DirHandle(fd, comps, this.tree);
  }

  /** The parent directory of a manifest path, and the last component. */
  openParent(path: string): { dir: DirHandle | { blocked: string[] } | undefined; name: string } {
    const comps = componentsOf(path);
    const name = comps.pop();
    if (name === undefined) throw new SysprimeError('REFUSED', 'the root directory itself cannot be replaced');
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

export function ioError(what: string, err: unknown): SysprimeError {
  return new SysprimeError('IO', `${what} failed: ${errnoOf(err) ?? (err instanceof Error ? err.message : String(err))}`, {
    hint: 'check that the filesystem is mounted read-write and has room',
    cause: err,
  });
}

/**
 * The text of a regular file inside a tree (`etc/fstab`), never read
 * through a link; null when it is absent, or a link or not a regular file.
 */
export function readTextIn(tree: string, path: string): string | null {
  const comps = componentsOf(path);
  const name = comps.pop();
  if (name === undefined) return null;
  const root = ConfinedRoot.open(tree);
  try {
    const dir = root.openDir(comps);
    if (!isHandle(dir)) return null;
    try {
      const fd = openFileIn(dir, name);
      if (fd === undefined) return null;
      try {
        return readFileSync(fd, 'utf8');
      } finally {
        closeSync(fd);
      }
    } finally {
      dir.close();
    }
  } finally {
    root.close();
  }
}
