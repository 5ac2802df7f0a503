/**
 * Checking and repairing a store-built tree: every object of the store is
 * hashed again against the manifests it was installed from, and every file
 * of /usr is checked to be a link to its object. An object changed in place
 * (an edit through any of its links) is named with every /usr path that
 * shares its inode, since all of them changed with it. Repair fetches the
 * damaged objects again from the repository, verified as the updater
 * verifies them, and relinks the paths, all through the confined writer:
 * the updater's code stays the only writer of objects.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream } from 'node:fs';
import { SysprimeError, messageOf } from '../../errors.js';
import { ConfinedRoot, isHandle, lstatIn, openFileIn, renameBetween, replaceWithLinkIn, type DirHandle } from '../../os/confined.js';
import { isUsrPath } from './assemble.js';
import { mergeTrees, objectKey, type PackageManifest, type TreeEntry } from './format.js';
import type { Repository } from './repository.js';
import { fetchInto, ObjectShelf, readInstalled, readStoredManifest, storePaths, writeStoredManifest } from './store.js';
import { run } from '../../process/run.js';

export interface DamagedObject {
  /** The object's key (its name in the store: objects/<aa>/<rest>). */
  key: string;
  /** What its content should hash to, from the manifest. */
  sha256: string;
  problem: 'missing' | 'content' | 'metadata';
  /** What is wrong, for people. */
  detail: string;
  /** Every /usr path that shares the object's inode: they changed with it. */
  sharedBy: string[];
}

export interface DamagedFile {
  /** The path in the tree ("/usr/bin/x"). */
  path: string;
  problem: 'missing' | 'replaced' | 'changed' | 'unlinked';
  detail: string;
}

export interface StoreVerifyReport {
  root: string;
  packages: number;
  objects: number;
  files: number;
  /** Manifests of installed versions missing from the store or not matching their sha256. */
  manifests: string[];
  damagedObjects: DamagedObject[];
  damagedFiles: DamagedFile[];
}

export function isClean(r: StoreVerifyReport): boolean {
  return r.manifests.length === 0 && r.damagedObjects.length === 0 && r.damagedFiles.length === 0;
}

async function sha256Of(procPath: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(procPath)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The installed manifests, and the names of those missing or damaged in the store. */
async function installedManifests(root: string): Promise<{ manifests: PackageManifest[]; bad: Array<{ name: string; version: string; sha: string }>; count: number }> {
  const paths = await storePaths(root);
  const installed = await readInstalled(paths, '');
  const manifests: PackageManifest[] = [];
  const bad: Array<{ name: string; version: string; sha: string }> = [];
  for (const [name, p] of Object.entries(installed.packages)) {
    const m = await readStoredManifest(paths, p.manifest, { name, version: p.version }).catch(() => null);
    if (m === null) bad.push({ name, version: p.version, sha: p.manifest });
    else manifests.push(m);
  }
  return { manifests, bad, count: Object.keys(installed.packages).length };
}

/** Runs `fn` on the parent directory of `rel` in the tree, opened confined; undefined when it is missing or below a link. */
function inParent<T>(r: ConfinedRoot, rel: string, fn: (dir: DirHandle, name: string) => T): T | undefined {
  const comps = rel.split('/');
  const name = comps.pop() as string;
  const dir = r.openDir(comps);
  if (!isHandle(dir)) return undefined;
  try {
    return fn(dir, name);
  } finally {
    dir.close();
  }
}

/** Checks the store and the /usr of the tree at `root` (read-only). */
export async function verifyStoreTree(root: string): Promise<StoreVerifyReport> {
  const { manifests, bad, count } = await installedManifests(root);
  if (count === 0) {
    throw new SysprimeError('NOT_FOUND', `${root} has no packages from a sysprime store (no /var/lib/sysprime/store/installed.json)`, {
      hint: 'only an environment the store updater built can be verified',
    });
  }
  const entries = [...mergeTrees(manifests).values()].filter((e) => e.type === 'file');
  const byKey = new Map<string, TreeEntry[]>();
  for (const e of entries) byKey.set(objectKey(e), [...(byKey.get(objectKey(e)) ?? []), e]);
  const report: StoreVerifyReport = {
    root,
    packages: count,
    objects: byKey.size,
    files: entries.filter((e) => isUsrPath(e.path)).length,
    manifests: bad.map((b) => `${b.name} ${b.version} (manifests/${b.sha}.json)`),
    damagedObjects: [],
    damagedFiles: [],
  };
  const r = ConfinedRoot.open(root);
  const shelf = new ObjectShelf(r);
  try {
    for (const [key, users] of byKey) {
      const want = users[0] as TreeEntry;
      const st = shelf.stat(key);
      const usr = users.filter((e) => isUsrPath(e.path));
      // Which /usr paths are this very inode (found whatever the object's state).
      const sharing = (dev: number, ino: number): string[] =>
        usr
          .filter((e) => inParent(r, e.path, (dir, name) => {
            const s = lstatIn(dir, name);
            return s !== undefined && s.dev === dev && s.ino === ino;
          }) === true)
          .map((e) => `/${e.path}`);
      if (st === undefined || !st.isFile()) {
        report.damagedObjects.push({ key, sha256: want.sha256 as string, problem: 'missing', detail: st === undefined ? 'missing from the store' : 'not a regular file', sharedBy: [] });
      } else {
        const got = await shelf.withObject(key, (p) => sha256Of(p));
        if (got !== want.sha256) {
          report.damagedObjects.push({
            key,
            sha256: want.sha256 as string,
            problem: 'content',
            detail: `its content changed: sha256 ${got ?? '(unreadable)'}, the manifest says ${want.sha256}`,
            sharedBy: sharing(st.dev, st.ino),
          });
        } else if ((st.mode & 0o7777) !== want.mode || st.uid !== want.uid || st.gid !== want.gid) {
          report.damagedObjects.push({
            key,
            sha256: want.sha256 as string,
            problem: 'metadata',
            detail: `its mode or owner changed: ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}, the manifest says ${want.mode.toString(8)} ${want.uid}:${want.gid}`,
            sharedBy: sharing(st.dev, st.ino),
          });
        }
      }
      for (const e of usr) {
        const found = inParent(r, e.path, (dir, name) => {
          const s = lstatIn(dir, name);
          if (s === undefined) return { problem: 'missing' as const, detail: 'missing' };
          if (!s.isFile()) return { problem: 'replaced' as const, detail: 'no longer a regular file' };
          if (st !== undefined && s.dev === st.dev && s.ino === st.ino) return null;
          return { fd: openFileIn(dir, name) };
        });
        if (found === null) continue;
        if (found === undefined) {
          report.damagedFiles.push({ path: `/${e.path}`, problem: 'missing', detail: 'its directory is missing or not a directory' });
          continue;
        }
        if (!('fd' in found)) {
          report.damagedFiles.push({ path: `/${e.path}`, problem: found.problem, detail: found.detail });
          continue;
        }
        // Not the object's inode: an edit that replaced the file (an editor's rename), or a copy.
        let got: string | null = null;
        if (found.fd !== undefined) {
          try {
            got = await sha256Of(`/proc/self/fd/${found.fd}`);
          } finally {
            closeSync(found.fd);
          }
        }
        if (got === e.sha256) report.damagedFiles.push({ path: `/${e.path}`, problem: 'unlinked', detail: 'the store\'s content, but a copy instead of a link to its object' });
        else report.damagedFiles.push({ path: `/${e.path}`, problem: 'changed', detail: `replaced by other content (sha256 ${got ?? 'unreadable'})` });
      }
    }
  } finally {
    shelf.close();
    r.close();
  }
  return report;
}

export interface StoreRepairReport {
  before: StoreVerifyReport;
  after: StoreVerifyReport;
  objectsFetched: number;
  pathsRelinked: string[];
  manifestsFetched: number;
}

/**
 * Repairs what verifyStoreTree finds: manifests and damaged objects are
 * fetched again from `repo` (checked against their sha256 as they arrive)
 * and moved over the damaged ones (a new inode: the damaged one is left to
 * the paths still linked to it until they are relinked), then every /usr
 * path of a damaged object, and every damaged /usr file, is replaced by a
 * link to its object. Outside /usr the files are the admin's and are left.
 */
export async function repairStoreTree(root: string, repo: Repository): Promise<StoreRepairReport> {
  const paths = await storePaths(root);
  let manifestsFetched = 0;
  const first = await installedManifests(root);
  for (const b of first.bad) {
    const fetched = await repo.readManifest(b.sha, b);
    await writeStoredManifest(paths, b.sha, fetched.text);
    manifestsFetched++;
  }
  const before = await verifyStoreTree(root);
  const { manifests } = await installedManifests(root);
  const entries = [...mergeTrees(manifests).values()].filter((e) => e.type === 'file');
  const damaged = new Set(before.damagedObjects.map((o) => o.key));
  const relink = new Set(before.damagedFiles.map((f) => f.path.slice(1)));
  const byKey = new Map<string, TreeEntry>();
  for (const e of entries) {
    const key = objectKey(e);
    byKey.set(key, e);
    if (damaged.has(key) && isUsrPath(e.path)) relink.add(e.path);
  }
  const pathsRelinked: string[] = [];
  const r = ConfinedRoot.open(root, { durable: 'at-end' });
  const shelf = new ObjectShelf(r);
  try {
    if (damaged.size > 0) {
      await fetchInto(r, paths, repo, [...damaged].map((k) => [k, byKey.get(k) as TreeEntry]), (incoming, key, fanout, name) => {
        renameBetween(incoming, key, fanout, name);
      }, shelf);
    }
    for (const e of entries.filter((x) => relink.has(x.path)).sort((a, b) => (a.path < b.path ? -1 : 1))) {
      const { dir, name: objectName } = shelf.dirOf(objectKey(e));
      if (dir === undefined) throw new SysprimeError('IO', `the store object of /${e.path} is missing after the repair`);
      const done = inParent(r, e.path, (parent, name) => {
        try {
          replaceWithLinkIn(dir, objectName, parent, name);
        } catch (err) {
          throw new SysprimeError('IO', `cannot put /${e.path} back: ${messageOf(err)}`, {
            hint: 'a directory in its place is left as it is; remove it and repair again',
            cause: err,
          });
        }
        return true;
      });
      if (done === undefined) throw new SysprimeError('REFUSED', `the directory of /${e.path} is missing or not a directory in ${root}; repair does not write through a link`);
      pathsRelinked.push(`/${e.path}`);
    }
  } finally {
    shelf.close();
    r.close();
  }
  await run('sync', ['--file-system', root]);
  const after = await verifyStoreTree(root);
  return { before, after, objectsFetched: damaged.size, pathsRelinked, manifestsFetched };
}

export interface StoreFileFacts {
  /** The store package that installed the path. */
  package: string;
  /**
   * For a /usr file: the other /usr paths that are the same inode now (one
   * store object). An edit in place of one changed them all, and the store.
   */
  sharedWith: string[];
}

/**
 * For drift: of `paths` (manifest byte strings, "/usr/bin/x"), those the
 * store installed in the tree at `root`, with their package and the paths
 * sharing their object. An empty map for a tree the store did not build.
 */
export async function storeFactsOf(root: string, paths: readonly string[]): Promise<Map<string, StoreFileFacts>> {
  const out = new Map<string, StoreFileFacts>();
  if (paths.length === 0) return out;
  let manifests: PackageManifest[];
  try {
    manifests = (await installedManifests(root)).manifests;
  } catch {
    return out; // no store, or its state is damaged: `store verify` says so
  }
  if (manifests.length === 0) return out;
  const wanted = new Set(paths);
  const asPath = (rel: string): string => `/${Buffer.from(rel, 'utf8').toString('latin1')}`;
  const byKey = new Map<string, string[]>();
  const keyOf = new Map<string, string>();
  for (const m of manifests) {
    for (const e of m.entries) {
      const p = asPath(e.path);
      if (wanted.has(p) && !out.has(p)) out.set(p, { package: m.name, sharedWith: [] });
      if (e.type === 'file' && isUsrPath(e.path)) {
        const key = objectKey(e);
        byKey.set(key, [...(byKey.get(key) ?? []), p]);
        keyOf.set(p, key);
      }
    }
  }
  const r = ConfinedRoot.open(root);
  try {
    const inode = (p: string): string | undefined =>
      inParent(r, p.slice(1), (dir, name) => {
        const st = lstatIn(dir, name);
        return st?.isFile() ? `${st.dev}:${st.ino}` : undefined;
      });
    for (const [p, facts] of out) {
      const key = keyOf.get(p);
      if (key === undefined) continue;
      const mine = inode(p);
      if (mine === undefined) continue;
      facts.sharedWith = (byKey.get(key) ?? []).filter((q) => q !== p && inode(q) === mine).sort();
    }
  } finally {
    r.close();
  }
  return out;
}
