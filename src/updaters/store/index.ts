/**
 * The store updater: sysprime's own content-addressed package store, for
 * image-like systems whose /usr belongs entirely to the packages. The
 * repository says which version of each package a tree should have; apply()
 * makes the tree so, with /usr replaced in one swap.
 */
import { lstat } from 'node:fs/promises';
import type { Config } from '../../config/schema.js';
import { SysprimeError } from '../../errors.js';
import { log } from '../../log.js';
import { run } from '../../process/run.js';
import { installReadOnlyUsr } from './read-only-usr.js';
import type { UpdateOptions, UpdateResult, Updater } from '../types.js';
import { assembleUsr, carryOverUsrLocal, isUsrPath, putBackUsrLocal, recoverUsrSwap, removeOutsideUsr, swapUsr, writeOutsideUsr } from './assemble.js';
import { checkIndexSource, mergeTrees, planChanges, summarize, STORE_FORMAT, type InstalledState, type PackageManifest } from './format.js';
import { readPublicKey } from '../../signing/keys.js';
import { openRepository, type IndexTrust, type Repository } from './repository.js';
import {
  collectGarbage,
  ensureObjects,
  mkdirsInside,
  readInstalled,
  readStoredManifest,
  storePaths,
  writeInstalled,
  writeStoredManifest,
  STORE_DIR,
  type StorePaths,
} from './store.js';

export interface StoreApplyReport extends UpdateResult {
  objectsFetched: number;
  objectsCollected: number;
  swap: 'exchange' | 'rename' | 'none';
}

/** Whom the index must be signed by, from [update]: the key files are read each time, so a rotation needs no restart. */
export function indexTrust(config: Config): IndexTrust {
  return { keys: config.update.trustedKeys.map((p) => readPublicKey(p)), allowUnsigned: config.update.allowUnsigned };
}

export function createStoreUpdater(config: Config): Updater {
  const location = config.update.repository;
  const needRepository = (): string => {
    if (location === undefined || location.trim() === '') {
      throw new SysprimeError('CONFIG', 'update.method = "store" needs update.repository', {
        hint: 'set [update] repository = "/path/or/https://url" in sysprime.toml',
      });
    }
    return location;
  };
  return {
    method: 'store',
    describe: () => `store repository ${location ?? '(not set)'}`,
    probe: async () => {
      await openRepository(needRepository(), { timeoutSeconds: config.update.timeout, trust: indexTrust(config) }).readIndex();
    },
    apply: (opts: UpdateOptions) =>
      applyStore(openRepository(needRepository(), { timeoutSeconds: opts.timeout, signal: opts.signal, trust: indexTrust(config) }), opts.root, {
        repositoryId: config.update.repositoryId,
      }),
  };
}

async function manifestsFor(repo: Repository, paths: StorePaths, wanted: Array<{ name: string; version: string; sha: string }>) {
  const out: Array<{ manifest: PackageManifest; sha: string; text: string | null }> = [];
  for (const w of wanted) {
    const stored = await readStoredManifest(paths, w.sha, w);
    if (stored !== null) out.push({ manifest: stored, sha: w.sha, text: null });
    else {
      const fetched = await repo.readManifest(w.sha, w);
      out.push({ manifest: fetched.manifest, sha: w.sha, text: fetched.text });
    }
  }
  return out;
}

/** Brings the tree at `root` to what the repository publishes. */
export async function applyStore(repo: Repository, root: string, opts: { repositoryId?: string | undefined } = {}): Promise<StoreApplyReport> {
  const rootStat = await lstat(root).catch(() => null);
  if (rootStat === null || !rootStat.isDirectory()) throw new SysprimeError('NOT_FOUND', `the tree to update, ${root}, does not exist`);
  const paths = await storePaths(root);
  const index = await repo.readIndex();
  const installed = await readInstalled(paths, repo.location);
  checkIndexSource(index, installed, repo.location, opts.repositoryId);
  const changes = planChanges(index, installed);
  if (changes.length === 0) {
    return { changed: false, packages: [], summary: summarize(changes), objectsFetched: 0, objectsCollected: 0, swap: 'none' };
  }
  log.info(summarize(changes));
  await recoverUsrSwap(root);

  const wanted = Object.entries(index.packages).map(([name, p]) => ({ name, version: p.current, sha: p.versions[p.current] as string }));
  const next = await manifestsFor(repo, paths, wanted);
  const previous = await manifestsFor(
    repo,
    paths,
    Object.entries(installed.packages).map(([name, p]) => ({ name, version: p.version, sha: p.manifest })),
  );
  const tree = mergeTrees(next.map((n) => n.manifest));
  const entries = [...tree.values()];
  const oldEntries = previous.flatMap((p) => p.manifest.entries);

  // Until the objects are in, nothing in the tree has changed.
  const objectsFetched = await ensureObjects(root, paths, repo, entries);

  let swap: StoreApplyReport['swap'] = 'none';
  const usrEntries = entries.filter((e) => isUsrPath(e.path));
  let carried = false;
  const ownsUsr = usrEntries.length > 0 || oldEntries.some((e) => isUsrPath(e.path));
  try {
    if (ownsUsr) await assembleUsr(root, usrEntries);
    await writeOutsideUsr(
      root,
      entries.filter((e) => !isUsrPath(e.path)),
    );
    if (ownsUsr) {
      carried = await carryOverUsrLocal(root, usrEntries);
      swap = await swapUsr(root);
    }
  } catch (err) {
    // Put a carried-over /usr/local back before the half-built /usr is removed.
    if (carried) await putBackUsrLocal(root).catch(() => undefined);
    await recoverUsrSwap(root);
    throw err;
  }
  await removeOutsideUsr(
    root,
    oldEntries.filter((e) => !isUsrPath(e.path)),
    new Set(entries.map((e) => e.path)),
  );

  await mkdirsInside(root, STORE_DIR);
  for (const n of next) if (n.text !== null) await writeStoredManifest(paths, n.sha, n.text);
  const state: InstalledState = {
    format: STORE_FORMAT,
    repository: repo.location,
    serial: index.serial,
    ...(index.id === undefined ? {} : { repositoryId: index.id }),
    packages: Object.fromEntries(next.map((n) => [n.manifest.name, { version: n.manifest.version, manifest: n.sha }])),
  };
  await writeInstalled(paths, state);
  const objectsCollected = await collectGarbage(
    paths,
    next.map((n) => n.manifest),
    new Set(next.map((n) => n.sha)),
  );
  if (ownsUsr) installReadOnlyUsr(root);
  // The writes above skipped their fsyncs (thousands of links); one syncfs makes them all durable.
  await run('sync', ['--file-system', root]);
  return { changed: true, packages: changes, summary: summarize(changes), objectsFetched, objectsCollected, swap };
}
