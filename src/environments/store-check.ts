/**
 * `sysprime store verify [--repair]` as library calls: find the environment,
 * reach its tree, and check (or repair) the store-built /usr in it. The
 * checking and the writing are the store updater's (src/updaters/store/verify.ts).
 */
import { mkdirSync, rmdirSync } from 'node:fs';
import type { Context } from '../context.js';
import { SysprimeError } from '../errors.js';
import { run } from '../process/run.js';
import { acquireLock } from '../state/lock.js';
import { indexTrust } from '../updaters/store/index.js';
import { openRepository } from '../updaters/store/repository.js';
import { repairStoreTree, verifyStoreTree, type StoreRepairReport, type StoreVerifyReport } from '../updaters/store/verify.js';
import { currentEnvironment, findEnvironment } from './lifecycle.js';

export interface StoreCheck {
  environment: string;
  report: StoreVerifyReport;
  /** Set when repair was asked for. */
  repair: StoreRepairReport | null;
}

export async function checkEnvironmentStore(ctx: Context, name: string | undefined, opts: { repair: boolean }): Promise<StoreCheck> {
  const env = name === undefined ? await currentEnvironment(ctx) : await findEnvironment(ctx, name);
  const location = ctx.config.update.repository;
  if (opts.repair && (location === undefined || location.trim() === '')) {
    throw new SysprimeError('CONFIG', 'repairing a store-built /usr needs update.repository, to fetch the damaged objects again', {
      hint: 'set [update] repository in sysprime.toml to the store repository the environment was built from',
    });
  }
  // Repair writes into an environment: no staging or other repair meanwhile.
  const lock = opts.repair ? acquireLock(ctx.db, `repairing the store of ${env.name}`) : null;
  try {
    const tree = await ctx.backend.openEnvironment(env.name);
    try {
      if (!opts.repair) return { environment: env.name, report: await verifyStoreTree(tree.path), repair: null };
      const repo = openRepository(location as string, { timeoutSeconds: ctx.config.update.timeout, trust: indexTrust(ctx.config) });
      const repair = await underReadOnlyUsr(tree.path, (root) => repairStoreTree(root, repo));
      return { environment: env.name, report: { ...repair.after, root: tree.path }, repair };
    } finally {
      await tree.release();
    }
  } finally {
    lock?.release();
  }
}

/**
 * Run `fn` on a path where the tree at `root` is writable below /usr. The
 * running environment is reached as `/` (ZFS), and there /usr is the
 * read-only bind mount the store's usr.mount makes: a bind mount of `/`
 * alone (not recursive, so without the /usr mount on it), private to
 * sysprime, reaches the same files writable. Any other tree is sysprime's
 * own mount of the environment, which has no /usr mount on it.
 */
async function underReadOnlyUsr<T>(root: string, fn: (root: string) => Promise<T>): Promise<T> {
  if (root !== '/') return fn(root);
  const dir = `/run/sysprime/store-repair-${process.pid}`;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    await run('mount', ['--bind', '--make-private', '/', dir], { timeout: 60_000 });
    try {
      return await fn(dir);
    } finally {
      await run('umount', [dir], { timeout: 60_000 });
    }
  } finally {
    rmdirSync(dir);
  }
}
