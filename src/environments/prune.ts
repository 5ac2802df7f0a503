/**
 * Retention: destroy what the planner (src/retention/plan.ts) lists, then
 * write the boot entries once. The caller holds the lock.
 */
import type { Context } from '../context.js';
import { planPrune, type PrunePlan } from '../retention/plan.js';
import { bootloaderFor, bootable, syncBootEntries } from './boot-entries.js';
import { recordEvent } from './lifecycle.js';
import { log } from '../log.js';

export interface PruneResult {
  plan: PrunePlan;
  destroyed: string[];
  failed: { name: string; error: string }[];
}

export async function pruneEnvironments(ctx: Context, opts: { keep?: number; dryRun?: boolean } = {}): Promise<PruneResult> {
  const all = await ctx.backend.listEnvironments();
  // An environment whose staging has not finished belongs to that staging (or to its recovery).
  const envs = bootable(all);
  const space = await ctx.backend.space();
  const oneShot = (await bootloaderFor(ctx).inspect().catch(() => null))?.oneShotName ?? null;
  const plan = planPrune(envs, {
    keep: opts.keep ?? ctx.config.retention.keep,
    minFreePercent: ctx.config.retention.minFreePercent,
    poolFree: space.free,
    poolSize: space.size,
    oneShot,
  });
  const result: PruneResult = { plan, destroyed: [], failed: [] };
  if (opts.dryRun || plan.destroy.length === 0) return result;
  // Entries first, as destroy does: never an entry that cannot boot.
  const going = plan.destroy.map((d) => d.name);
  await syncBootEntries(ctx, { without: going });
  for (const d of plan.destroy) {
    try {
      await ctx.backend.destroyEnvironment(d.name);
      recordEvent(ctx, d.name, 'prune', { reason: d.reason });
      result.destroyed.push(d.name);
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      log.warn(`prune: could not destroy ${d.name}: ${error}`);
      result.failed.push({ name: d.name, error });
    }
  }
  if (result.failed.length > 0) await syncBootEntries(ctx);
  return result;
}
