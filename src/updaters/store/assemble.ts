/**
 * Turning package trees into a tree on disk. /usr belongs to the store as a
 * whole: a complete new one is built beside the old from hardlinks into the
 * store and swapped in with one exchange, so /usr is never half old, half new.
 * Paths outside /usr (defaults under /etc, the merged-/usr symlinks at the
 * root) are written one by one, atomically, as copies: they are the admin's
 * to edit, and an edit through a hardlink would change the store object and
 * every other tree linked to it.
 */
import { SysprimeError, errnoOf } from '../../errors.js';
import { log } from '../../log.js';
import { run } from '../../process/run.js';
import {
  ConfinedRoot,
  copyFileIn,
  ensureDirIn,
  ioError,
  isHandle,
  linkIn,
  lstatIn,
  openDirIn,
  removeEmptyDirIn,
  removeTreeIn,
  renameBetween,
  renameIn,
  setOwnerModeIn,
  symlinkIn,
  unlinkIn,
  type DirHandle,
} from '../../os/confined.js';
import { isCleanRelative } from '../rootpath.js';
import { objectKey, type TreeEntry } from './format.js';
import { ObjectShelf } from './store.js';

export const NEW_USR = '.usr.sysprime-new';
export const OLD_USR = '.usr.sysprime-old';

export function isUsrPath(path: string): boolean {
  return path === 'usr' || path.startsWith('usr/');
}

function byPath(a: TreeEntry, b: TreeEntry): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

/**
 * Run `fn` on the tree's root directory, opened confined: every path below
 * it is reached one component at a time without following a link (the
 * tree's content, its store included, is not trusted). Syncs are left to
 * the caller's one syncfs at the end (applyStore).
 */
async function inTree<T>(root: string, fn: (top: DirHandle, r: ConfinedRoot) => Promise<T> | T): Promise<T> {
  const r = ConfinedRoot.open(root, { durable: 'at-end' });
  try {
    const top = r.openDir([]);
    if (!isHandle(top)) throw new SysprimeError('NOT_FOUND', `cannot open ${root}`);
    try {
      return await fn(top, r);
    } finally {
      top.close();
    }
  } finally {
    r.close();
  }
}

/** The open directory at `comps` below the root of `r`, which the caller made or checked; refused when it is a link. */
function dirAt(r: ConfinedRoot, comps: readonly string[]): DirHandle {
  const d = r.openDir(comps);
  if (isHandle(d)) return d;
  if (d === undefined) throw ioError(`open /${comps.join('/')} in ${r.root}`, new Error('it is missing'));
  throw new SysprimeError('REFUSED', `/${d.blocked.join('/')} in ${r.root} is not a directory (or a symbolic link, which is not followed)`, {
    hint: 'sysprime does not write through it; replace it with a directory or remove it, then run again',
  });
}

/** Keeps the last directory opened, as entries sorted by path mostly share their parent. */
class ParentCache {
  private key = '';
  private dir: DirHandle | undefined;
  constructor(private readonly r: ConfinedRoot) {}
  get(comps: readonly string[]): DirHandle {
    const key = comps.join('/');
    if (this.dir === undefined || key !== this.key) {
      this.dir?.close();
      this.dir = undefined;
      this.dir = dirAt(this.r, comps);
      this.key = key;
    }
    return this.dir;
  }
  /** Forget the cached directory when `comps` (or one below it) is removed or replaced. */
  drop(): void {
    this.dir?.close();
    this.dir = undefined;
  }
}

/** Puts back what an interrupted swap left: a /usr must exist, and no half-built one may linger. */
export async function recoverUsrSwap(root: string): Promise<void> {
  await inTree(root, (top) => {
    if (lstatIn(top, 'usr') === undefined && lstatIn(top, OLD_USR) !== undefined) {
      log.warn(`${root}/usr is missing after an interrupted update; putting the previous one back`);
      renameIn(top, OLD_USR, 'usr');
    }
    removeTreeIn(top, NEW_USR);
    removeTreeIn(top, OLD_USR);
  });
}

/**
 * Builds the complete /usr described by `entries` (all under usr/) at
 * <root>/.usr.sysprime-new. Directories a package did not list are created
 * 0755 root:root. Every link, directory and symlink is made through the
 * confined writer, and each object is linked from the store as opened
 * there: a link planted in the tree or the store cannot redirect either.
 */
export async function assembleUsr(root: string, entries: readonly TreeEntry[]): Promise<string> {
  await inTree(root, (top, r) => {
    removeTreeIn(top, NEW_USR);
    const usrEntry = entries.find((e) => e.path === 'usr') ?? { path: 'usr', type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0 };
    ensureDirIn(top, NEW_USR, 0o755).dir.close();
    setOwnerModeIn(top, NEW_USR, usrEntry, usrEntry.mode);
    const made = new Set<string>(['usr']);
    const shelf = new ObjectShelf(r);
    const parents = new ParentCache(r);
    // usr/a/b -> [.usr.sysprime-new, a, b]
    const compsOf = (rel: string): string[] => [NEW_USR, ...rel.split('/').slice(1)];
    try {
      const ensureParent = (rel: string): void => {
        const parts = rel.split('/');
        for (let i = 2; i < parts.length; i++) {
          const dir = parts.slice(0, i).join('/');
          if (made.has(dir)) continue;
          ensureDirIn(parents.get(compsOf(parts.slice(0, i - 1).join('/'))), parts[i - 1]!, 0o755).dir.close();
          made.add(dir);
        }
      };
      for (const e of [...entries].sort(byPath)) {
        if (e.path === 'usr') continue;
        if (!isCleanRelative(e.path)) throw new SysprimeError('REFUSED', `path ${JSON.stringify(e.path)} would leave the tree ${root}`);
        ensureParent(e.path);
        const comps = compsOf(e.path);
        const name = comps.pop() as string;
        const parent = parents.get(comps);
        if (e.type === 'dir') {
          if (!made.has(e.path)) ensureDirIn(parent, name, 0o755).dir.close();
          setOwnerModeIn(parent, name, e, e.mode);
          made.add(e.path);
        } else if (e.type === 'symlink') {
          symlinkIn(parent, name, e.target as string, e);
        } else {
          const { dir, name: objectName } = shelf.dirOf(objectKey(e));
          if (dir === undefined) throw ioError(`link /${e.path} in ${root}`, new Error('its store object is missing'));
          try {
            linkIn(dir, objectName, parent, name);
          } catch (err) {
            if (errnoOf(err) === 'EXDEV') {
              throw new SysprimeError('REFUSED', `cannot hardlink store objects into ${root}/usr: the store and /usr are on different filesystems`, {
                hint: '/var/lib/sysprime/store and /usr must be on the same filesystem of the environment',
                cause: err,
              });
            }
            throw ioError(`link /${e.path} in ${root}`, err);
          }
        }
      }
    } finally {
      parents.drop();
      shelf.close();
    }
  });
  return `${root}/${NEW_USR}`;
}

/**
 * /usr/local is the admin's even in a /usr the store owns (the FHS keeps it
 * out of package managers' reach): unless a package puts files in it, the old
 * one is moved into the new /usr before the swap.
 */
export async function carryOverUsrLocal(root: string, usrEntries: readonly TreeEntry[]): Promise<boolean> {
  if (usrEntries.some((e) => e.path.startsWith('usr/local/'))) return false;
  return inTree(root, (top) => {
    const usr = lstatIn(top, 'usr')?.isDirectory() ? openDirIn(top, 'usr') : undefined;
    if (usr === undefined) return false;
    try {
      if (lstatIn(usr, 'local') === undefined) return false;
      const fresh = openDirIn(top, NEW_USR);
      if (fresh === undefined) return false;
      try {
        removeTreeIn(fresh, 'local');
        renameBetween(usr, 'local', fresh, 'local');
      } finally {
        fresh.close();
      }
      return true;
    } finally {
      usr.close();
    }
  });
}

/** Moves a carried-over /usr/local back into the old /usr (after a failed build, before the new one is removed). */
export async function putBackUsrLocal(root: string): Promise<void> {
  await inTree(root, (top) => {
    const fresh = lstatIn(top, NEW_USR)?.isDirectory() ? openDirIn(top, NEW_USR) : undefined;
    const usr = lstatIn(top, 'usr')?.isDirectory() ? openDirIn(top, 'usr') : undefined;
    try {
      if (fresh !== undefined && usr !== undefined && lstatIn(fresh, 'local') !== undefined && lstatIn(usr, 'local') === undefined) {
        renameBetween(fresh, 'local', usr, 'local');
      }
    } finally {
      fresh?.close();
      usr?.close();
    }
  });
}

let exchangeSupport: Promise<boolean> | undefined;

/** coreutils 9.5 and later can exchange two paths (renameat2 RENAME_EXCHANGE) with `mv --exchange`. */
export function mvCanExchange(): Promise<boolean> {
  exchangeSupport ??= run('mv', ['--help'], { allowFailure: true, timeout: 10_000 }).then(
    (r) => r.stdout.includes('--exchange'),
    () => false,
  );
  return exchangeSupport;
}

/** For tests: forget what was probed. */
export function forgetExchangeProbe(): void {
  exchangeSupport = undefined;
}

/**
 * Swaps <root>/.usr.sysprime-new in as <root>/usr and removes the old one.
 * One RENAME_EXCHANGE when `mv --exchange` exists and the filesystem supports
 * it; otherwise two renames. The second leaves a moment without /usr, which is
 * harmless here: the tree is a clone that nothing runs from, and
 * recoverUsrSwap puts the old /usr back if we die in between. `mv` is given
 * the root as the directory this process holds open, so it renames exactly
 * the two names in it.
 */
export async function swapUsr(root: string): Promise<'exchange' | 'rename'> {
  return inTree(root, async (top) => {
    const st = lstatIn(top, 'usr');
    if (st === undefined) {
      renameIn(top, NEW_USR, 'usr');
      return 'rename';
    }
    if (!st.isDirectory()) throw new SysprimeError('REFUSED', `${root}/usr is not a directory; the store updater replaces /usr as a whole`);
    let how: 'exchange' | 'rename' = 'rename';
    if (await mvCanExchange()) {
      const res = await run('mv', ['--exchange', '--no-target-directory', top.childEntry(NEW_USR), top.childEntry('usr')], { allowFailure: true, timeout: 60_000 });
      if (res.exitCode === 0) {
        how = 'exchange';
        renameIn(top, NEW_USR, OLD_USR);
      } else {
        log.debug(`mv --exchange failed (${res.stderr.trim()}); renaming instead`);
      }
    }
    if (how === 'rename') {
      renameIn(top, 'usr', OLD_USR);
      try {
        renameIn(top, NEW_USR, 'usr');
      } catch (err) {
        renameIn(top, OLD_USR, 'usr');
        throw err;
      }
    }
    removeTreeIn(top, OLD_USR);
    return how;
  });
}

/** The directories of `rel`'s parent below the root, made 0755 where missing (never through a link); open. */
function parentOf(r: ConfinedRoot, rel: string): { dir: DirHandle; name: string } {
  const parts = rel.split('/');
  const name = parts.pop() as string;
  let dir = dirAt(r, []);
  for (const part of parts) {
    try {
      const next = ensureDirIn(dir, part);
      dir.close();
      dir = next.dir;
    } catch (err) {
      dir.close();
      throw err;
    }
  }
  return { dir, name };
}

/** Writes the entries outside /usr in place, parents first, all through the confined writer. Returns the paths written. */
export async function writeOutsideUsr(root: string, entries: readonly TreeEntry[]): Promise<string[]> {
  const written: string[] = [];
  await inTree(root, async (_top, r) => {
    const shelf = new ObjectShelf(r);
    try {
      for (const e of [...entries].sort(byPath)) {
        if (!isCleanRelative(e.path)) throw new SysprimeError('REFUSED', `path ${JSON.stringify(e.path)} would leave the tree ${root}`);
        const { dir, name } = parentOf(r, e.path);
        try {
          const existing = lstatIn(dir, name);
          if (e.type === 'dir') {
            if (existing !== undefined && !existing.isDirectory()) unlinkIn(dir, name);
            if (existing === undefined || !existing.isDirectory()) ensureDirIn(dir, name, 0o755).dir.close();
            setOwnerModeIn(dir, name, e, e.mode);
          } else {
            if (existing?.isDirectory() && !removeEmptyDirIn(dir, name)) {
              throw new SysprimeError('REFUSED', `${root}/${e.path} is a directory that is not empty; the package wants a ${e.type} there`);
            }
            // A copy, not a link: outside /usr the file is the admin's to edit.
            if (e.type === 'symlink') symlinkIn(dir, name, e.target as string, e);
            else {
              const done = await shelf.withObject(objectKey(e), async (object) => {
                await copyFileIn(dir, name, object, e.mode, { uid: e.uid, gid: e.gid });
                return true;
              });
              if (done === undefined) throw ioError(`write /${e.path} in ${root}`, new Error('its store object is missing'));
            }
          }
        } finally {
          dir.close();
        }
        written.push(e.path);
      }
    } finally {
      shelf.close();
    }
  });
  return written;
}

/**
 * Removes what old package versions had outside /usr and the new ones do not:
 * files and symlinks first, then directories that are left empty, deepest
 * first. Directories directly below the root (/etc, /var) are never removed.
 * Below a link or a missing directory there is nothing of ours to remove.
 */
export async function removeOutsideUsr(root: string, old: readonly TreeEntry[], keep: ReadonlySet<string>): Promise<string[]> {
  const removed: string[] = [];
  const gone = old.filter((e) => !keep.has(e.path) && isCleanRelative(e.path));
  await inTree(root, (_top, r) => {
    const inParent = (rel: string, fn: (dir: DirHandle, name: string) => void): void => {
      const comps = rel.split('/');
      const name = comps.pop() as string;
      const dir = r.openDir(comps);
      if (!isHandle(dir)) return;
      try {
        fn(dir, name);
      } finally {
        dir.close();
      }
    };
    for (const e of gone.filter((x) => x.type !== 'dir')) {
      inParent(e.path, (dir, name) => {
        const st = lstatIn(dir, name);
        if (st === undefined || st.isDirectory()) return;
        unlinkIn(dir, name);
        removed.push(e.path);
      });
    }
    const dirs = gone.filter((x) => x.type === 'dir' && x.path.includes('/')).sort((a, b) => b.path.split('/').length - a.path.split('/').length);
    for (const e of dirs) {
      // Not empty (something else lives there) or already gone: kept.
      inParent(e.path, (dir, name) => {
        if (removeEmptyDirIn(dir, name)) removed.push(e.path);
      });
    }
  });
  return removed;
}
