/**
 * Turning package trees into a tree on disk. /usr belongs to the store as a
 * whole: a complete new one is built beside the old from hardlinks into the
 * store and swapped in with one exchange, so /usr is never half old, half new.
 * Paths outside /usr (defaults under /etc, the merged-/usr symlinks at the
 * root) are written one by one, atomically, as copies: they are the admin's
 * to edit, and an edit through a hardlink would change the store object and
 * every other tree linked to it.
 */
import { chmod, chown, lchown, link, lstat, mkdir, rename, rm, rmdir, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { SysprimeError, errnoOf } from '../../errors.js';
import { log } from '../../log.js';
import { run } from '../../process/run.js';
import { copyFileIn, splitPath, symlinkIn, withDirInAsync } from '../../os/confined.js';
import { safeInside } from '../rootpath.js';
import { objectKey, type TreeEntry } from './format.js';
import { mkdirsInside, objectPath, type StorePaths } from './store.js';

export const NEW_USR = '.usr.sysprime-new';
export const OLD_USR = '.usr.sysprime-old';

export function isUsrPath(path: string): boolean {
  return path === 'usr' || path.startsWith('usr/');
}

function byPath(a: TreeEntry, b: TreeEntry): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

async function setMeta(path: string, e: TreeEntry): Promise<void> {
  await chown(path, e.uid, e.gid);
  await chmod(path, e.mode);
}

/** Puts back what an interrupted swap left: a /usr must exist, and no half-built one may linger. */
export async function recoverUsrSwap(root: string): Promise<void> {
  const usr = join(root, 'usr');
  const old = join(root, OLD_USR);
  const exists = async (p: string): Promise<boolean> => lstat(p).then(() => true, () => false);
  if (!(await exists(usr)) && (await exists(old))) {
    log.warn(`${usr} is missing after an interrupted update; putting the previous one back`);
    await rename(old, usr);
  }
  await rm(join(root, NEW_USR), { recursive: true, force: true });
  await rm(old, { recursive: true, force: true });
}

/**
 * Builds the complete /usr described by `entries` (all under usr/) at
 * <root>/.usr.sysprime-new. Directories a package did not list are created
 * 0755 root:root.
 */
export async function assembleUsr(root: string, paths: StorePaths, entries: readonly TreeEntry[]): Promise<string> {
  const top = join(root, NEW_USR);
  await rm(top, { recursive: true, force: true });
  const usrEntry = entries.find((e) => e.path === 'usr');
  await mkdir(top, { mode: 0o755 });
  await setMeta(top, usrEntry ?? { path: 'usr', type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0 });
  const made = new Set<string>(['usr']);

  const ensureParent = async (rel: string): Promise<void> => {
    const parts = rel.split('/');
    for (let i = 2; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (made.has(dir)) continue;
      await mkdir(join(top, ...parts.slice(1, i)), { mode: 0o755 });
      made.add(dir);
    }
  };

  for (const e of [...entries].sort(byPath)) {
    if (e.path === 'usr') continue;
    await ensureParent(e.path);
    const dest = join(top, ...e.path.split('/').slice(1));
    if (e.type === 'dir') {
      if (!made.has(e.path)) await mkdir(dest, { mode: 0o755 });
      await setMeta(dest, e);
      made.add(e.path);
    } else if (e.type === 'symlink') {
      await symlink(e.target as string, dest);
      await lchown(dest, e.uid, e.gid);
    } else {
      try {
        await link(objectPath(paths, objectKey(e)), dest);
      } catch (err) {
        if (errnoOf(err) === 'EXDEV') {
          throw new SysprimeError('REFUSED', `cannot hardlink store objects into ${root}/usr: the store and /usr are on different filesystems`, {
            hint: '/var/lib/sysprime/store and /usr must be on the same filesystem of the environment',
            cause: err,
          });
        }
        throw err;
      }
    }
  }
  return top;
}

/**
 * /usr/local is the admin's even in a /usr the store owns (the FHS keeps it
 * out of package managers' reach): unless a package puts files in it, the old
 * one is moved into the new /usr before the swap.
 */
export async function carryOverUsrLocal(root: string, usrEntries: readonly TreeEntry[]): Promise<boolean> {
  if (usrEntries.some((e) => e.path.startsWith('usr/local/'))) return false;
  const old = join(root, 'usr', 'local');
  const st = await lstat(old).catch(() => null);
  if (st === null) return false;
  const dest = join(root, NEW_USR, 'local');
  await rm(dest, { recursive: true, force: true });
  await rename(old, dest);
  return true;
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
 * recoverUsrSwap puts the old /usr back if we die in between.
 */
export async function swapUsr(root: string): Promise<'exchange' | 'rename'> {
  const usr = join(root, 'usr');
  const fresh = join(root, NEW_USR);
  const old = join(root, OLD_USR);
  const st = await lstat(usr).catch((err: unknown) => {
    if (errnoOf(err) === 'ENOENT') return null;
    throw err;
  });
  if (st === null) {
    await rename(fresh, usr);
    return 'rename';
  }
  if (!st.isDirectory()) throw new SysprimeError('REFUSED', `${usr} is not a directory; the store updater replaces /usr as a whole`);
  let how: 'exchange' | 'rename' = 'rename';
  if (await mvCanExchange()) {
    const res = await run('mv', ['--exchange', '--no-target-directory', fresh, usr], { allowFailure: true, timeout: 60_000 });
    if (res.exitCode === 0) {
      how = 'exchange';
      await rename(fresh, old);
    } else {
      log.debug(`mv --exchange failed (${res.stderr.trim()}); renaming instead`);
    }
  }
  if (how === 'rename') {
    await rename(usr, old);
    try {
      await rename(fresh, usr);
    } catch (err) {
      await rename(old, usr);
      throw err;
    }
  }
  await rm(old, { recursive: true, force: true });
  return how;
}

/** Writes the entries outside /usr in place, parents first. Returns the paths written. */
export async function writeOutsideUsr(root: string, paths: StorePaths, entries: readonly TreeEntry[]): Promise<string[]> {
  const written: string[] = [];
  for (const e of [...entries].sort(byPath)) {
    const dest = await safeInside(root, e.path);
    if (e.path.includes('/')) await mkdirsInside(root, e.path.slice(0, e.path.lastIndexOf('/')));
    const existing = await lstat(dest).catch((err: unknown) => {
      if (errnoOf(err) === 'ENOENT') return null;
      throw err;
    });
    if (e.type === 'dir') {
      if (existing !== null && !existing.isDirectory()) await unlink(dest);
      if (existing === null || !existing.isDirectory()) await mkdir(dest, { mode: 0o755 });
      await setMeta(dest, e);
    } else {
      if (existing?.isDirectory()) {
        await rmdir(dest).catch((err: unknown) => {
          throw new SysprimeError('REFUSED', `${dest} is a directory that is not empty; the package wants a ${e.type} there`, { cause: err });
        });
      }
      // Placed through the confined writer: a link anywhere in the tree, even one made since the checks above, is never followed.
      const { parent, name } = splitPath(e.path);
      const owner = { uid: e.uid, gid: e.gid };
      const placed = await withDirInAsync(root, parent, { create: false }, async (dir) => {
        if (e.type === 'symlink') symlinkIn(dir, name, e.target as string, owner);
        else await copyFileIn(dir, name, objectPath(paths, objectKey(e)), e.mode, owner);
        return true;
      });
      if (placed === undefined) throw new SysprimeError('REFUSED', `${parent} is missing in ${root}, so ${e.path} cannot be written`);
    }
    written.push(e.path);
  }
  return written;
}

/**
 * Removes what old package versions had outside /usr and the new ones do not:
 * files and symlinks first, then directories that are left empty, deepest
 * first. Directories directly below the root (/etc, /var) are never removed.
 */
export async function removeOutsideUsr(root: string, old: readonly TreeEntry[], keep: ReadonlySet<string>): Promise<string[]> {
  const removed: string[] = [];
  const gone = old.filter((e) => !keep.has(e.path));
  for (const e of gone.filter((x) => x.type !== 'dir')) {
    const path = await safeInside(root, e.path);
    const st = await lstat(path).catch(() => null);
    if (st === null || st.isDirectory()) continue;
    await unlink(path);
    removed.push(e.path);
  }
  const dirs = gone.filter((x) => x.type === 'dir' && x.path.includes('/')).sort((a, b) => b.path.split('/').length - a.path.split('/').length);
  for (const e of dirs) {
    const path = await safeInside(root, e.path);
    try {
      await rmdir(path);
      removed.push(e.path);
    } catch {
      // not empty (something else lives there) or already gone
    }
  }
  return removed;
}
