/**
 * What `sysprime doctor` finds and what `doctor --fix` repairs, as a
 * library: the command only prints (src/cli/commands/maintenance.ts).
 */
import type { Context } from '../context.js';
import type { EnvironmentInfo } from '../backends/types.js';
import { interruptedOperations } from '../state/journal.js';
import { withLock } from '../state/lock.js';
import { recoverStaging } from '../staging/pipeline.js';
import { importUnfinished, stagingUnfinished } from '../staging/mark.js';
import { bootDrift, syncBootEntries } from './boot-entries.js';
import { BOOT_START_UNIT, bootPartitionOf, zfsBootPartitionProblemOf, zfsBootPoolProblemOf } from './boot-kernels.js';
import { unitsInto, unitsNotEnabled } from './boot-home.js';
import { currentOf, recoverEnvironmentVerbs } from './lifecycle.js';
import { sharedPathsOrWarn, type SharedPathState } from './shared.js';
import { stateHomeProblem } from './state-home.js';

export interface Problem {
  kind: string;
  what: string;
}

/** Problems only the admin can change: `--fix` leaves them, and the exit status says so. */
export const ADMIN_ONLY: ReadonlySet<string> = new Set(['state-not-shared', 'zfs-boot-pool', 'zfs-boot-partition']);

export interface Findings {
  problems: Problem[];
  /** Users' data the current environment holds a copy of: named, but not a problem `--fix` repairs (moving it is the admin's call). */
  shared: SharedPathState[];
}

/** Where environments, pristine snapshots, boot entries and the journal disagree. Changes nothing. */
export async function findProblems(ctx: Context): Promise<Findings> {
  const problems: Problem[] = [];
  const envs = await ctx.backend.listEnvironments();
  for (const e of envs) {
    if (e.pristine === null) problems.push({ kind: 'pristine-missing', what: `"${e.name}" has no pristine snapshot of its generation ${e.generation}: its drift cannot be computed` });
    if (stagingUnfinished(e)) problems.push({ kind: 'staging-unfinished', what: `"${e.name}" is from a staging that did not finish` });
    if (importUnfinished(e)) problems.push({ kind: 'import-unfinished', what: `"${e.name}" is from an import that did not finish (received whole; \`doctor --fix\` or the next verb that changes environments finishes it)` });
  }
  for (const op of interruptedOperations(ctx.db)) {
    problems.push({ kind: 'interrupted', what: `the ${op.kind} started at ${op.started} was interrupted (operation ${op.id})` });
  }
  problems.push(...(await bootDrift(ctx)));
  const stateProblem = await stateHomeProblem(ctx);
  if (stateProblem !== null) problems.push({ kind: 'state-not-shared', what: stateProblem });
  const current = currentOf(envs);
  const bootPool = current === undefined ? null : await zfsBootPoolProblemOf(ctx, current.name);
  if (bootPool !== null) problems.push({ kind: 'zfs-boot-pool', what: `${bootPool.problem}: staging is refused (docs/boot.md, "A ZFS boot pool")` });
  const bootPartition = current === undefined ? null : await zfsBootPartitionProblemOf(ctx, current.name);
  if (bootPartition !== null) problems.push({ kind: 'zfs-boot-partition', what: `${bootPartition.problem}: staging is refused (${bootPartition.hint})` });
  for (const name of await withoutBootStart(ctx, envs)) {
    problems.push({
      kind: 'boot-start-not-enabled',
      what: `"${name}" does not enable ${BOOT_START_UNIT}: /boot is a partition, and booting it would leave another environment's kernels there until a sysprime verb runs`,
    });
  }
  const shared = current ? await sharedPathsOrWarn(ctx, current.name) : [];
  return { problems, shared };
}

/** Every recovery sysprime has, in the order `doctor --fix` runs them; each returns what it did. */
export const RECOVERIES: readonly { name: string; run(ctx: Context): Promise<string[]> }[] = [
  {
    name: 'interrupted stagings',
    async run(ctx) {
      const { createUpdater } = await import('../updaters/registry.js');
      return recoverStaging(ctx, await createUpdater(ctx.config));
    },
  },
  { name: 'interrupted environment verbs', run: (ctx) => recoverEnvironmentVerbs(ctx) },
  { name: "the backend's leftovers", run: (ctx) => ctx.backend.recover() },
  {
    // Machines initialised before init enabled it; a staging then carries the admin's link like any other change.
    name: 'the boot-start unit',
    async run(ctx) {
      const done: string[] = [];
      for (const name of await withoutBootStart(ctx, await ctx.backend.listEnvironments())) {
        await unitsInto(ctx, name, [BOOT_START_UNIT]);
        done.push(`enabled ${BOOT_START_UNIT} in "${name}"`);
      }
      return done;
    },
  },
  {
    name: 'boot entries',
    async run(ctx) {
      const r = await syncBootEntries(ctx);
      if (r.added.length + r.removed.length + r.updated.length === 0) return [];
      return [`boot entries rewritten: added ${r.added.join(', ') || 'none'}, removed ${r.removed.join(', ') || 'none'}, updated ${r.updated.join(', ') || 'none'}`];
    },
  },
];

/** Where /boot is a partition: the environments that hold BOOT_START_UNIT but do not enable it. */
async function withoutBootStart(ctx: Context, envs: readonly EnvironmentInfo[]): Promise<string[]> {
  const current = currentOf(envs);
  if (current === undefined || (await bootPartitionOf(ctx, current.name)) === null) return [];
  const out: string[] = [];
  for (const e of envs) if ((await unitsNotEnabled(ctx, e.name, [BOOT_START_UNIT])).length > 0) out.push(e.name);
  return out;
}

/** Run every recovery, holding the lock; returns what was repaired. */
export async function repair(ctx: Context): Promise<string[]> {
  return withLock(ctx.db, 'repairing', async () => {
    const fixed: string[] = [];
    for (const r of RECOVERIES) fixed.push(...(await r.run(ctx)));
    return fixed;
  });
}
