/**
 * Going back without losing today's edits (`sysprime rollback ENV`): make an
 * environment of an older generation the default, with the admin's changes
 * made on the current environment carried over to it. The carrying is the
 * reintegration engine (src/reintegrate/session.ts) run towards the older
 * generation: base is the pristine state of the current generation, ours the
 * current environment as it is, theirs the pristine state of the older one,
 * and the plan is applied onto the older environment. Same merge, conflict
 * and report rules as staging; a file the admin changed that the older
 * generation ships differently is merged, or kept as the admin's with the
 * older one beside it (`.sysprime-new`).
 *
 * Before anything is written, the older environment's state is kept as its
 * snapshot `rollback-<UTC time>`: the exact environment it was can be made
 * again with `create --from ENV@rollback-...`.
 *
 * Crash safety: the snapshot is one backend call; the reintegration is
 * recorded (a killed one is finished by running it again, as `reintegrate`
 * is); the activation is journaled. Running the same rollback again after a
 * kill finishes it; it takes a second snapshot (of the half-carried state),
 * and the first one still holds the state before.
 */
import type { Context } from '../context.js';
import type { EnvironmentInfo, SnapshotInfo } from '../backends/types.js';
import { SysprimeError } from '../errors.js';
import { faultPoint } from '../process/fault.js';
import { checkName } from '../names.js';
import { recordEvent } from '../state/events.js';
import { withLock } from '../state/lock.js';
import { planBetween, reintegrateInto, type PlanResult, type StagingReintegration } from '../reintegrate/session.js';
import { activateEnvironment, currentEnvironment, findEnvironment, listEnvironments, refuseUnfinished } from './lifecycle.js';
import { refuseOpenShell } from './shell-lock.js';
import { defaultSnapshotName } from './snapshots.js';

export const ROLLBACK_KIND = 'rollback';
/** Kill points (`kill:rollback:<point>`): after the snapshot, after the reintegration. */
export const ROLLBACK_POINTS = ['snapshot-taken', 'reintegrated'] as const;

export interface RollbackSides {
  from: EnvironmentInfo;
  to: EnvironmentInfo;
}

/** The environments of a rollback to `target` (default: the newest of the latest older generation), refused unless older. */
export async function rollbackSides(ctx: Context, target?: string): Promise<RollbackSides> {
  if (target !== undefined) checkName(target);
  const from = await currentEnvironment(ctx);
  let to: EnvironmentInfo;
  if (target !== undefined) to = await findEnvironment(ctx, target);
  else {
    const older = (await listEnvironments(ctx)).filter((e) => e.generation < from.generation && e.generation >= 0);
    const newest = older.sort((a, b) => b.generation - a.generation || b.createdOrder - a.createdOrder)[0];
    if (newest === undefined) {
      throw new SysprimeError('NOT_FOUND', `no environment of an older generation than "${from.name}" (generation ${from.generation}) to go back to`, {
        hint: '`sysprime list` shows the generations; `create --from ENV@pristine` makes one from a pristine state that is still kept',
      });
    }
    to = newest;
  }
  if (to.name === from.name) {
    throw new SysprimeError('REFUSED', `"${to.name}" is the current environment already`, { hint: 'name an environment of an older generation' });
  }
  if (to.generation >= from.generation) {
    const newer = to.generation > from.generation;
    throw new SysprimeError('REFUSED', `"${to.name}" (generation ${to.generation}) is ${newer ? 'newer than' : 'of the same generation as'} "${from.name}" (generation ${from.generation}): rollback goes to an older generation`, {
      hint: newer
        ? `to carry the changes forward, \`sysprime reintegrate --to ${to.name}\`, then \`sysprime activate ${to.name}\``
        : `carry them with \`sysprime reintegrate --to ${to.name}\`, or just \`sysprime activate ${to.name}\``,
    });
  }
  refuseUnfinished(to);
  return { from, to };
}

/** What a rollback would carry, written nowhere. */
export async function planRollback(ctx: Context, target?: string): Promise<RollbackSides & { plan: PlanResult['plan'] }> {
  const sides = await rollbackSides(ctx, target);
  const { plan } = await planBetween(ctx, sides.from, sides.to);
  return { ...sides, plan };
}

export interface RollbackResult extends RollbackSides {
  /** The older environment's state before the rollback wrote into it. */
  snapshot: SnapshotInfo;
  carried: StagingReintegration;
}

export async function rollback(ctx: Context, target?: string): Promise<RollbackResult> {
  return withLock(ctx.db, 'rolling back', async () => {
    const { from, to } = await rollbackSides(ctx, target);
    refuseOpenShell(ctx, to.name, 'roll back to');
    const taken = new Set((await ctx.backend.listSnapshots()).filter((s) => s.environment === to.name).map((s) => s.name));
    const snapshot = await ctx.backend.takeSnapshot(to.name, defaultSnapshotName(new Date(), taken, 'rollback-'));
    faultPoint(ROLLBACK_KIND, 'snapshot-taken');
    const tree = await ctx.backend.openEnvironment(to.name);
    let carried: StagingReintegration;
    try {
      carried = await reintegrateInto(ctx, from, to, tree.path);
    } finally {
      await tree.release();
    }
    faultPoint(ROLLBACK_KIND, 'reintegrated');
    const activated = await activateEnvironment(ctx, to.name);
    recordEvent(ctx.db, to.name, 'rollback', { from: from.name, generation: to.generation, snapshot: snapshot.name, counts: carried.report.counts });
    return { from, to: activated, snapshot, carried };
  });
}
