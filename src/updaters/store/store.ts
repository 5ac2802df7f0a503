/**
 * The store inside an environment: /var/lib/sysprime/store, holding
 *   objects/<aa>/<rest>      one inode per (content, mode, uid, gid), hardlinked into /usr
 *   manifests/<sha256>.json  the manifests of the installed package versions
 *   installed.json           which version of each package the tree has
 * It lives in the environment, so each generation's snapshot carries the
 * store its /usr was built from.
 */
import { closeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { SysprimeError } from '../../errors.js';
import { log } from '../../log.js';
import {
  ConfinedRoot,
  copyFileIn,
  ensureDirIn,
  isHandle,
  lstatIn,
  namesIn,
  openDirIn,
  openFileIn,
  readFileAt,
  removeEmptyDirIn,
  removeTreeIn,
  renameBetween,
  unlinkIn,
  writeFileAt,
  type DirHandle,
} from '../../os/confined.js';
import { safeInside } from '../rootpath.js';
import {
  emptyInstalled,
  objectKey,
  parseInstalled,
  parseManifest,
  type InstalledState,
  type PackageManifest,
  type TreeEntry,
} from './format.js';
import type { Repository } from './repository.js';

export const STORE_DIR = 'var/lib/sysprime/store';

export interface StorePaths {
  /** The tree the store is in; every write below it goes through src/os/confined.ts. */
  root: string;
  dir: string;
  objects: string;
  manifests: string;
  installed: string;
}

export async function storePaths(root: string): Promise<StorePaths> {
  const dir = await safeInside(root, STORE_DIR);
  return { root, dir, objects: join(dir, 'objects'), manifests: join(dir, 'manifests'), installed: join(dir, 'installed.json') };
}

export const STORE_COMPS: readonly string[] = STORE_DIR.split('/');

/**
 * The directories of `comps` below the root of `r`, made 0755 where missing
 * (through the confined walker: a link at any of them is refused, never
 * followed). Returns the last one, open, and those it made, outermost first.
 */
export function mkdirsIn(r: ConfinedRoot, comps: readonly string[]): { dir: DirHandle; created: string[][] } {
  const top = r.openDir([]);
  if (!isHandle(top)) throw new SysprimeError('NOT_FOUND', `cannot open ${r.root}`);
  let dir = top;
  const created: string[][] = [];
  try {
    for (const name of comps) {
      const next = ensureDirIn(dir, name);
      if (next.created) created.push([...dir.comps, name]);
      dir.close();
      dir = next.dir;
    }
  } catch (err) {
    dir.close();
    throw err;
  }
  return { dir, created };
}

/** Creates the missing directories of `rel` below root; returns those it created (relative), outermost first. */
export async function mkdirsInside(root: string, rel: string): Promise<string[]> {
  const r = ConfinedRoot.open(root);
  try {
    const { dir, created } = mkdirsIn(r, rel.split('/'));
    dir.close();
    return created.map((c) => c.join('/'));
  } finally {
    r.close();
  }
}

/** Removes directories mkdirsIn made, innermost first, where they are still empty. */
function removeCreated(r: ConfinedRoot, created: readonly string[][]): void {
  for (const comps of [...created].reverse()) {
    const parent = r.openDir(comps.slice(0, -1));
    if (!isHandle(parent)) continue;
    try {
      removeEmptyDirIn(parent, comps[comps.length - 1]!);
    } finally {
      parent.close();
    }
  }
}

/**
 * The store's objects of one tree, reached through the confined walker: a
 * link planted at objects/ or a fan-out directory is refused, so an object
 * is never read from, linked from or written to outside the tree.
 */
export class ObjectShelf {
  private readonly fanouts = new Map<string, DirHandle | undefined>();
  private objects: DirHandle | undefined | null = null;

  constructor(readonly r: ConfinedRoot) {}

  /** objects/, undefined when the store has none yet (made when `create`). */
  private objectsDir(create: boolean): DirHandle | undefined {
    if (this.objects !== null && (this.objects !== undefined || !create)) return this.objects;
    if (create) {
      const made = mkdirsIn(this.r, [...STORE_COMPS, 'objects']);
      this.objects = made.dir;
    } else {
      const d = this.r.openDir([...STORE_COMPS, 'objects']);
      if (d !== undefined && !isHandle(d)) {
        throw new SysprimeError('REFUSED', `/${d.blocked.join('/')} in ${this.r.root} is not a directory (or a symbolic link, which is not followed)`, {
          hint: 'the store of this tree is damaged; remove that path and stage again',
        });
      }
      this.objects = d;
    }
    return this.objects;
  }

  /** The fan-out directory holding `key`, and the object's name in it. */
  dirOf(key: string, create = false): { dir: DirHandle | undefined; name: string } {
    const fan = key.slice(0, 2);
    const name = key.slice(2);
    let dir = this.fanouts.get(fan);
    if (dir === undefined) {
      const objects = this.objectsDir(create);
      if (objects !== undefined) dir = create ? ensureDirIn(objects, fan).dir : openDirIn(objects, fan);
      if (dir !== undefined) this.fanouts.set(fan, dir);
    }
    return { dir, name };
  }

  /** lstat of the object, undefined when absent. */
  stat(key: string): import('node:fs').Stats | undefined {
    const { dir, name } = this.dirOf(key);
    return dir === undefined ? undefined : lstatIn(dir, name);
  }

  /** Run `fn` with a /proc path naming the object's file as opened now; undefined when it is absent or not a regular file. */
  async withObject<T>(key: string, fn: (procPath: string, fd: number) => Promise<T>): Promise<T | undefined> {
    const { dir, name } = this.dirOf(key);
    if (dir === undefined) return undefined;
    const fd = openFileIn(dir, name);
    if (fd === undefined) return undefined;
    try {
      return await fn(`/proc/self/fd/${fd}`, fd);
    } finally {
      closeSync(fd);
    }
  }

  close(): void {
    for (const d of this.fanouts.values()) d?.close();
    this.fanouts.clear();
    this.objects?.close();
    this.objects = null;
  }
}

export async function readInstalled(paths: StorePaths, repository: string): Promise<InstalledState> {
  const bytes = readFileAt(paths.root, `${STORE_DIR}/installed.json`);
  if (bytes === undefined) return emptyInstalled(repository);
  return parseInstalled(bytes.toString('utf8'), paths.installed);
}

/** A manifest kept in the store, or null if it is missing or does not match its name. */
export async function readStoredManifest(paths: StorePaths, sha256: string, expect: { name: string; version: string }): Promise<PackageManifest | null> {
  const file = join(paths.manifests, `${sha256}.json`);
  const bytes = readFileAt(paths.root, `${STORE_DIR}/manifests/${sha256}.json`);
  if (bytes === undefined) return null;
  const text = bytes.toString('utf8');
  if (createHash('sha256').update(text, 'utf8').digest('hex') !== sha256) {
    log.warn(`${file} does not match its sha256; fetching it again`);
    return null;
  }
  return parseManifest(text, file, expect);
}

export async function writeStoredManifest(paths: StorePaths, sha256: string, text: string): Promise<void> {
  writeFileAt(paths.root, `${STORE_DIR}/manifests/${sha256}.json`, text, { mode: 0o644, createParents: true });
}

export async function writeInstalled(paths: StorePaths, state: InstalledState): Promise<void> {
  writeFileAt(paths.root, `${STORE_DIR}/installed.json`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o644 });
}

async function inParallel<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async (): Promise<void> => {
    while (failed === undefined && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed;
}

/**
 * Makes sure the store holds an object for every file entry. Content is
 * fetched into a private incoming directory and verified there; only when
 * every object arrived intact are they moved into objects/, so a corrupt or
 * missing object leaves the tree exactly as it was (directories this call
 * created are removed again). Every write goes through the confined writer.
 * Returns how many objects were added.
 */
export async function ensureObjects(root: string, paths: StorePaths, repo: Repository, files: readonly TreeEntry[]): Promise<number> {
  const wanted = new Map<string, TreeEntry>();
  for (const e of files) if (e.type === 'file') wanted.set(objectKey(e), e);
  const r = ConfinedRoot.open(root, { durable: 'at-end' });
  const shelf = new ObjectShelf(r);
  try {
    const missing: Array<[string, TreeEntry]> = [];
    for (const [key, e] of wanted) {
      const st = shelf.stat(key);
      if (st === undefined || !st.isFile() || st.size !== e.size) missing.push([key, e]);
    }
    if (missing.length === 0) return 0;
    await fetchInto(r, paths, repo, missing, (incoming, key, fanout, name) => {
      // rename replaces whatever is at the name (a wrong-sized object) with the verified one.
      renameBetween(incoming, key, fanout, name);
    }, shelf);
    return missing.length;
  } finally {
    shelf.close();
    r.close();
  }
}

/**
 * Fetches the content of `items` from the repository into
 * <store>/incoming-<pid> (verified as it arrives), gives each key its own
 * copy with its mode and owner, and hands each to `place` with its fan-out
 * directory. On failure the incoming directory and the directories made for
 * it are removed and the error is thrown.
 */
export async function fetchInto(
  r: ConfinedRoot,
  paths: StorePaths,
  repo: Repository,
  items: ReadonlyArray<[string, TreeEntry]>,
  place: (incoming: DirHandle, key: string, fanout: DirHandle, name: string) => void,
  shelf: ObjectShelf,
): Promise<void> {
  const incomingName = `incoming-${process.pid}`;
  const { dir: store, created } = mkdirsIn(r, STORE_COMPS);
  try {
    removeTreeIn(store, incomingName);
    const { dir: incoming } = ensureDirIn(store, incomingName, 0o700);
    created.push([...STORE_COMPS, incomingName]);
    try {
      const byContent = new Map<string, Array<[string, TreeEntry]>>();
      for (const item of items) {
        const sha = item[1].sha256 as string;
        byContent.set(sha, [...(byContent.get(sha) ?? []), item]);
      }
      await inParallel([...byContent.entries()], 8, async ([sha, users]) => {
        const first = users[0] as [string, TreeEntry];
        const content = `content-${sha}`;
        // The repository writes a new file there (O_EXCL), through the descriptor of the directory just made.
        await repo.fetchObject(sha, first[1].size, `${incoming.self}/${content}`);
        for (const [key, e] of users) await copyFileIn(incoming, key, `${incoming.self}/${content}`, e.mode, { uid: e.uid, gid: e.gid });
        unlinkIn(incoming, content);
      });
      for (const [key] of items) {
        const { dir, name } = shelf.dirOf(key, true);
        place(incoming, key, dir as DirHandle, name);
      }
    } finally {
      incoming.close();
    }
    removeTreeIn(store, incomingName);
  } catch (err) {
    try {
      removeTreeIn(store, incomingName);
      removeCreated(r, created);
    } catch (cleanup) {
      log.warn(`could not remove ${paths.dir}/${incomingName}: ${String(cleanup)}`);
    }
    throw err;
  } finally {
    store.close();
  }
}

/** Removes objects and manifests nothing installed refers to. Returns how many objects went. */
export async function collectGarbage(paths: StorePaths, installed: readonly PackageManifest[], manifestShas: ReadonlySet<string>): Promise<number> {
  const keep = new Set<string>();
  for (const m of installed) for (const e of m.entries) if (e.type === 'file') keep.add(objectKey(e));
  let removed = 0;
  const r = ConfinedRoot.open(paths.root, { durable: 'at-end' });
  try {
    const store = r.openDir([...STORE_COMPS]);
    if (!isHandle(store)) return 0;
    try {
      const objects = lstatIn(store, 'objects')?.isDirectory() ? openDirIn(store, 'objects') : undefined;
      if (objects !== undefined) {
        try {
          for (const fanout of namesIn(objects)) {
            if (!lstatIn(objects, fanout)?.isDirectory()) {
              // Not a directory the updater made (a planted link, say): removed itself, never followed.
              removeTreeIn(objects, fanout);
              continue;
            }
            const dir = openDirIn(objects, fanout);
            if (dir === undefined) continue;
            try {
              for (const rest of namesIn(dir)) {
                if (keep.has(fanout + rest)) continue;
                removeTreeIn(dir, rest);
                removed++;
              }
            } finally {
              dir.close();
            }
            removeEmptyDirIn(objects, fanout);
          }
        } finally {
          objects.close();
        }
      }
      const manifests = lstatIn(store, 'manifests')?.isDirectory() ? openDirIn(store, 'manifests') : undefined;
      if (manifests !== undefined) {
        try {
          for (const name of namesIn(manifests)) if (!manifestShas.has(name.replace(/\.json$/, ''))) removeTreeIn(manifests, name);
        } finally {
          manifests.close();
        }
      }
      // Leftovers of an interrupted fetch.
      for (const name of namesIn(store)) if (name.startsWith('incoming-')) removeTreeIn(store, name);
    } finally {
      store.close();
    }
  } finally {
    r.close();
  }
  return removed;
}
