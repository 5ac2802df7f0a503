/**
 * Retention: destroy what the planners (src/retention/plan.ts for
 * environments, src/retention/snapshots.ts for the admin's snapshots) list, with
 * the boot entries written first, as a journaled operation: a crash between
 * the entries and the destruction, or between two destructions, is undone
 * at the next run by writing the entries again for the environments that
 * are still there (and finishing a half-destroyed one: backend.recover()).
 * Before it plans, it undoes what dead processes left mounted (a killed
 * shell's chroot, a stale private mount), so a mount nobody owns keeps no
 * environment. The caller holds the lock.
 */
import type { Context } from '../context.js';
import { planPrune, type PrunePlan } from '../retention/plan.js';
import { planSnapshotPrune, type SnapshotPrunePlan } from '../retention/snapshots.js';
import { bootloaderFor, bootable, syncBootEntries } from './boot-entries.js';
import { recordEvent } from '../state/events.js';
import { recoverOperations, runOperation, type Json, type OperationSpec } from '../state/journal.js';
import { withLock } from '../state/lock.js';
import { faultPoint } from '../process/fault.js';
import { log } from '../log.js';
import { messageOf } from '../errors.js';
import { isAuto, isPinned } from './annotations.js';
import { forgetManifestsOfGone } from './kept-manifests.js';
import { recoverDeadShells } from './shell-lock.js';

export interface PruneResult {
  plan: PrunePlan;
  /** The admin's snapshots: which stay, which go. */
  snapshots: SnapshotPrunePlan;
  destroyed: string[];
  /** Snapshots destroyed, as `ENV@NAME`. */
  snapshotsDestroyed: string[];
  /** Environments (by name) and snapshots (`ENV@NAME`) that could not be destroyed. */
  failed: { name: string; error: string }[];
}

export interface PruneOptions {
  keep?: number;
  keepDays?: number;
  keepAuto?: number;
  keepSnapshots?: number;
  dryRun?: boolean;
}

interface PruneParams extends Json {
  destroy: { name: string; reason: string }[];
  /** Absent in a journal an older version wrote. */
  snapshots?: { environment: string; name: string }[];
}

/** Fault point after the n-th snapshot is destroyed (1-based). */
export function snapshotDestroyedPoint(n: number): string {
  return `snapshot-destroyed-${n}`;
}

/** Fault point after the n-th environment is destroyed (1-based): between two destructions. */
export function destroyedPoint(n: number): string {
  return `destroyed-${n}`;
}

export const PRUNE: OperationSpec<Context> = {
  kind: 'prune',
  steps: [
    {
      name: 'entries',
      title: 'remove the boot entries of the environments that go',
      async run(ctx, p) {
        // Entries first, as destroy does: never an entry that cannot boot.
        await syncBootEntries(ctx, { without: (p as PruneParams).destroy.map((d) => d.name) });
      },
      async undo(ctx) {
        // Whatever is still there gets its entry back; what is gone has none.
        await syncBootEntries(ctx);
      },
    },
    {
      name: 'destroy',
      title: 'destroy the environments',
      async run(ctx, p) {
        const destroyed: string[] = [];
        const failed: { name: string; error: string }[] = [];
        for (const d of (p as PruneParams).destroy) {
          try {
            await ctx.backend.destroyEnvironment(d.name);
            recordEvent(ctx.db, d.name, 'prune', { reason: d.reason });
            destroyed.push(d.name);
            faultPoint(PRUNE.kind, destroyedPoint(destroyed.length));
          } catch (err) {
            const error = messageOf(err);
            log.warn(`prune: could not destroy ${d.name}: ${error}`);
            failed.push({ name: d.name, error });
          }
        }
        // The ones that stay need their entries back.
        if (failed.length > 0) await syncBootEntries(ctx);
        await forgetManifestsOfGone(ctx);
        return { destroyed, failed };
      },
      async undo(ctx) {
        // A destruction cut short leaves a half-destroyed dataset or subvolume under a temporary name.
        for (const line of await ctx.backend.recover()) log.info(`recovered: ${line}`);
      },
    },
    {
      name: 'snapshots',
      title: "destroy the admin's snapshots beyond retention",
      async run(ctx, p, data) {
        const snapshotsDestroyed: string[] = [];
        const failed = [...((data['failed'] as PruneResult['failed'] | undefined) ?? [])];
        for (const s of (p as PruneParams).snapshots ?? []) {
          const id = `${s.environment}@${s.name}`;
          try {
            await ctx.backend.destroySnapshot(s.environment, s.name);
            recordEvent(ctx.db, s.environment, 'prune-snapshot', { name: s.name });
            snapshotsDestroyed.push(id);
            faultPoint(PRUNE.kind, snapshotDestroyedPoint(snapshotsDestroyed.length));
          } catch (err) {
            // ZFS keeps a snapshot an environment was made from (create --from ENV@NAME): said, and left.
            const error = messageOf(err);
            log.warn(`prune: could not destroy snapshot ${id}: ${error}`);
            failed.push({ name: id, error });
          }
        }
        return { snapshotsDestroyed, failed };
      },
      async undo(ctx) {
        // A deletion cut short leaves a `.partial-` subvolume (Btrfs); a ZFS snapshot goes at once or not at all.
        for (const line of await ctx.backend.recover()) log.info(`recovered: ${line}`);
      },
    },
  ],
};

/** Undo a prune a dead process left half-done. */
export async function recoverPrune(ctx: Context): Promise<string[]> {
  return recoverOperations(ctx.db, PRUNE, ctx);
}

export async function pruneEnvironments(ctx: Context, opts: PruneOptions = {}): Promise<PruneResult> {
  // A dry run reads only; the real one holds the lock, as staging does.
  if (opts.dryRun) return prune(ctx, opts);
  return withLock(ctx.db, 'pruning', () => prune(ctx, opts));
}

async function prune(ctx: Context, opts: PruneOptions): Promise<PruneResult> {
  if (!opts.dryRun) {
    for (const line of await recoverPrune(ctx)) log.warn(`recovered: ${line}`);
    // What dead processes left mounted (a shell killed with -9, a verb cut short) is undone first, under the lock:
    // each environment is judged by what really holds it, not kept as "mounted" for a mount nobody owns.
    try {
      for (const line of [...(await recoverDeadShells(ctx)), ...(await ctx.backend.recover())]) log.info(`recovered: ${line}`);
    } catch (err) {
      log.warn(`prune: what a dead process left mounted could not be undone (${messageOf(err)}); an environment still mounted is kept`);
    }
  }
  const all = await ctx.backend.listEnvironments();
  // An environment whose staging has not finished belongs to that staging (or to its recovery).
  const space = await ctx.backend.space();
  const loader = await bootloaderFor(ctx);
  const boot = await loader.inspect().catch(() => null);
  // The bootloader's own default counts as the default too: while a ZFSBootMenu one-shot waits,
  // bootfs names the one-shot target and the default to return to lives only in the bootloader.
  const envs = bootable(all).map((e) => ({ ...e, isDefault: e.isDefault || e.name === boot?.defaultName, pinned: isPinned(e), auto: isAuto(e) }));
  const esp = await loader.espUsage?.().catch((err: unknown) => {
    log.warn(`prune: the ESP's free space is unknown (${messageOf(err)}); its rule is skipped`);
    return undefined;
  });
  const plan = planPrune(envs, {
    keep: opts.keep ?? ctx.config.retention.keep,
    keepDays: opts.keepDays ?? ctx.config.retention.keepDays,
    keepAuto: opts.keepAuto ?? ctx.config.retention.keepAuto,
    now: new Date(),
    minFreePercent: ctx.config.retention.minFreePercent,
    poolFree: space.free,
    poolSize: space.size,
    oneShot: boot?.oneShotName ?? null,
    ...(esp === undefined ? {} : { esp }),
  });
  const snapshots = planSnapshotPrune(await ctx.backend.listSnapshots(), {
    keepSnapshots: opts.keepSnapshots ?? ctx.config.retention.keepSnapshots,
    keepDays: opts.keepDays ?? ctx.config.retention.keepDays,
    now: new Date(),
    pinned: new Set(all.filter((e) => isPinned(e)).map((e) => e.name)),
    going: new Set(plan.destroy.map((d) => d.name)),
  });
  const result: PruneResult = { plan, snapshots, destroyed: [], snapshotsDestroyed: [], failed: [] };
  if (opts.dryRun || (plan.destroy.length === 0 && snapshots.destroy.length === 0)) return result;
  const params: PruneParams = {
    destroy: plan.destroy.map((d) => ({ name: d.name, reason: d.reason })),
    snapshots: snapshots.destroy.map((d) => ({ environment: d.environment, name: d.name })),
  };
  const done = await runOperation(ctx.db, PRUNE, ctx, params);
  if (done.completed) {
    result.destroyed = done.data['destroyed'] as string[];
    result.snapshotsDestroyed = (done.data['snapshotsDestroyed'] as string[] | undefined) ?? [];
    result.failed = done.data['failed'] as PruneResult['failed'];
  }
  return result;
}
