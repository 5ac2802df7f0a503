/**
 * `sysprime store verify [--repair]` as library calls: find the environment,
 * reach its tree, and check (or repair) the store-built /usr in it. The
 * checking and the writing are the store updater's (src/updaters/store/verify.ts).
 */
import type { Context } from '../context.js';
import { SysprimeError } from '../errors.js';
import { acquireLock } from '../state/lock.js';
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
      const repair = await repairStoreTree(tree.path, openRepository(location as string, { timeoutSeconds: ctx.config.update.timeout }));
      return { environment: env.name, report: repair.after, repair };
    } finally {
      await tree.release();
    }
  } finally {
    lock?.release();
  }
}
