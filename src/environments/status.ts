/**
 * What `sysprime status` shows, as data: the running and next environment,
 * failed boots, the last staging, the daemon, reintegration reports, shared
 * data at risk. The command only prints it (src/cli/commands/status.ts).
 */
import type { Context } from '../context.js';
import type { EnvironmentInfo } from '../backends/types.js';
import type { InspectedEntry } from '../bootloaders/types.js';
import { lastOperation, needsRecovery, type OperationRow } from '../state/journal.js';
import { acquireLock, lockHolder, type Lock, type LockOwner } from '../state/lock.js';
import { isSysprimeError } from '../errors.js';
import { faultPoint } from '../process/fault.js';
import { latestReports, type ReportHeader } from '../state/reports.js';
import { liveSchedule, type ScheduledJob } from '../state/schedule.js';
import { recoverStaging } from '../staging/pipeline.js';
import { bootloaderFor } from './boot-entries.js';
import { currentOf, listEnvironments } from './lifecycle.js';
import { sharedPathsOrWarn, type SharedPathState } from './shared.js';
import { eventsOf } from '../state/events.js';
import { lastHealth } from '../health/history.js';

export interface Status {
  envs: EnvironmentInfo[];
  /** The running environment (else the pool's default). */
  current: EnvironmentInfo | undefined;
  /** What boots next: the one-shot, else the bootloader's default, else the filesystem's. */
  next: EnvironmentInfo | undefined;
  /** Entries whose tries are used up: the bootloader passes over them. */
  failedBoots: InspectedEntry[];
  lastStage: OperationRow | undefined;
  /** A live process holding the lock, and what it does. */
  busy: LockOwner | null;
  /** The daemon's jobs, while it runs. */
  scheduled: ScheduledJob[];
  /** The latest reintegration report of each environment still there. */
  reintegration: ReportHeader[];
  /** Users' data the current environment holds a copy of (docs/shared-data.md). */
  shared: SharedPathState[];
  /** What the recovery of an interrupted staging did on the way. */
  recovered: string[];
  /** The last health checks of each environment that has had any (docs/fleet.md). */
  health: { environment: string; result: 'good' | 'bad'; at: string; reasons: string[] }[];
}

/** The lock for status's recovery, or null when a live process holds it (then that one is running). */
function takeLockIfFree(ctx: Context): Lock | null {
  try {
    return acquireLock(ctx.db, 'recovering');
  } catch (err) {
    if (isSysprimeError(err, 'BUSY')) return null;
    throw err;
  }
}

export async function getStatus(ctx: Context): Promise<Status> {
  // A staging that died is finished (undone) here too, unless a live process holds the lock: that one is running.
  const recovered: string[] = [];
  if (needsRecovery(ctx.db, 'stage')) {
    // Whether another process holds the lock is asked by taking it, never before: a staging that starts between
    // a look and the take holds it, and status reports it (`busy`) instead of failing BUSY.
    faultPoint('status', 'lock');
    const lock = takeLockIfFree(ctx);
    if (lock !== null) {
      try {
        const { createUpdater } = await import('../updaters/registry.js');
        recovered.push(...(await recoverStaging(ctx, await createUpdater(ctx.config))));
      } finally {
        lock.release();
      }
    }
  }
  const envs = await listEnvironments(ctx);
  const current = currentOf(envs);
  // What the bootloader will really do: an entry whose tries are used
  // up is passed over, and the machine falls back by itself.
  const boot = await bootloaderFor(ctx)
    .then((loader) => loader.inspect())
    .catch(() => null);
  const failedBoots = (boot?.entries ?? []).filter((e) => e.counting.state === 'bad');
  const next = envs.find((e) => e.name === boot?.oneShotName) ?? envs.find((e) => e.name === boot?.defaultName) ?? envs.find((e) => e.isDefault);
  return {
    envs,
    current,
    next,
    failedBoots,
    lastStage: lastOperation(ctx.db, 'stage'),
    busy: lockHolder(ctx.db),
    scheduled: liveSchedule(ctx.db),
    reintegration: latestReports(ctx.db).filter((r) => envs.some((e) => e.name === r.environment)),
    shared: current ? await sharedPathsOrWarn(ctx, current.name) : [],
    recovered,
    health: envs.flatMap((e) => {
      const h = lastHealth(eventsOf(ctx.db, e.name));
      return h ? [{ environment: e.name, ...h }] : [];
    }),
  };
}

