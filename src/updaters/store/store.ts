/**
 * The store inside an environment: /var/lib/sysprime/store, holding
 *   objects/<aa>/<rest>      one inode per (content, mode, uid, gid), hardlinked into /usr
 *   manifests/<sha256>.json  the manifests of the installed package versions
 *   installed.json           which version of each package the tree has
 * It lives in the environment, so each generation's snapshot carries the
 * store its /usr was built from.
 */
import { chmod, chown, copyFile, lstat, mkdir, readdir, rename, rm, rmdir } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { SysprimeError, errnoOf } from '../../errors.js';
import { log } from '../../log.js';
import { readFileAt, writeFileAt } from '../../os/confined.js';
import { safeInside } from '../rootpath.js';
import {
  emptyInstalled,
  objectKey,
  objectRelPath,
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

export function objectPath(paths: StorePaths, key: string): string {
  return join(paths.dir, objectRelPath(key));
}

/** Creates the missing directories of `rel` below root; returns those it created, outermost first. */
export async function mkdirsInside(root: string, rel: string): Promise<string[]> {
  const created: string[] = [];
  let current = '';
  for (const part of rel.split('/')) {
    current = current === '' ? part : `${current}/${part}`;
    const path = await safeInside(root, current);
    try {
      const st = await lstat(path);
      if (!st.isDirectory()) throw new SysprimeError('REFUSED', `${path} is not a directory`);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
      await mkdir(path, { mode: 0o755 });
      created.push(path);
    }
  }
  return created;
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

async function present(path: string, size: number): Promise<boolean> {
  try {
    const st = await lstat(path);
    return st.isFile() && st.size === size;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw err;
  }
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
 * created are removed again). Returns how many objects were added.
 */
export async function ensureObjects(root: string, paths: StorePaths, repo: Repository, files: readonly TreeEntry[]): Promise<number> {
  const wanted = new Map<string, TreeEntry>();
  for (const e of files) if (e.type === 'file') wanted.set(objectKey(e), e);
  const missing: Array<[string, TreeEntry]> = [];
  for (const [key, e] of wanted) if (!(await present(objectPath(paths, key), e.size))) missing.push([key, e]);
  if (missing.length === 0) return 0;

  const created = await mkdirsInside(root, `${STORE_DIR}/incoming-${process.pid}`);
  const incoming = join(paths.dir, `incoming-${process.pid}`);
  try {
    const byContent = new Map<string, Array<[string, TreeEntry]>>();
    for (const item of missing) {
      const sha = item[1].sha256 as string;
      byContent.set(sha, [...(byContent.get(sha) ?? []), item]);
    }
    await inParallel([...byContent.entries()], 8, async ([sha, users]) => {
      const first = users[0] as [string, TreeEntry];
      const content = join(incoming, `content-${sha}`);
      await repo.fetchObject(sha, first[1].size, content);
      for (const [key, e] of users) {
        const staged = join(incoming, key);
        await copyFile(content, staged);
        await chown(staged, e.uid, e.gid);
        await chmod(staged, e.mode);
      }
      await rm(content);
    });
    for (const [key] of missing) {
      const dest = objectPath(paths, key);
      await mkdir(dirname(dest), { recursive: true, mode: 0o755 });
      await rename(join(incoming, key), dest);
    }
    await rm(incoming, { recursive: true, force: true });
  } catch (err) {
    await rm(incoming, { recursive: true, force: true });
    for (const dir of created.reverse()) await rmdir(dir).catch(() => undefined);
    throw err;
  }
  return missing.length;
}

/** Removes objects and manifests nothing installed refers to. Returns how many objects went. */
export async function collectGarbage(paths: StorePaths, installed: readonly PackageManifest[], manifestShas: ReadonlySet<string>): Promise<number> {
  const keep = new Set<string>();
  for (const m of installed) for (const e of m.entries) if (e.type === 'file') keep.add(objectKey(e));
  let removed = 0;
  for (const fanout of await readdir(paths.objects).catch(() => [] as string[])) {
    const dir = join(paths.objects, fanout);
    for (const rest of await readdir(dir).catch(() => [] as string[])) {
      if (keep.has(fanout + rest)) continue;
      await rm(join(dir, rest), { force: true });
      removed++;
    }
    await rmdir(dir).catch(() => undefined);
  }
  for (const name of await readdir(paths.manifests).catch(() => [] as string[])) {
    if (!manifestShas.has(name.replace(/\.json$/, ''))) await rm(join(paths.manifests, name), { force: true });
  }
  for (const name of await readdir(paths.dir).catch(() => [] as string[])) {
    // Leftovers of an interrupted fetch.
    if (name.startsWith('incoming-')) await rm(join(paths.dir, name), { recursive: true, force: true });
  }
  return removed;
}
