/**
 * The admin's snapshots of environments as a library: `sysprime snapshot
 * ENV [NAME]`, `list --snapshots`, `destroy ENV@NAME`, and the `ENV@NAME`
 * references `create --from` takes. The backend keeps them (a ZFS snapshot,
 * a read-only Btrfs subvolume under ROOT/.snapshots); retention prunes them
 * (prune.ts, with retention/snapshots.ts); they go with their environment.
 */
import type { Context } from '../context.js';
import type { SnapshotInfo } from '../backends/types.js';
import { SysprimeError } from '../errors.js';
import { checkName, checkSnapshotName } from '../names.js';
import { recordEvent } from '../state/events.js';
import { withLock } from '../state/lock.js';
import { findEnvironment } from './lifecycle.js';
import { kernelsBeforeCopy } from './boot-kernels.js';

/** `20261122T030102Z` (after `prefix`): sorts by time and says when it was taken. */
export function defaultSnapshotName(now: Date, taken: ReadonlySet<string>, prefix = ''): string {
  const base = prefix + now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  if (!taken.has(base)) return base;
  for (let i = 2; ; i++) if (!taken.has(`${base}-${i}`)) return `${base}-${i}`;
}

export async function listSnapshots(ctx: Context): Promise<SnapshotInfo[]> {
  const all = await ctx.backend.listSnapshots();
  return all.sort((a, b) => a.environment.localeCompare(b.environment) || a.createdOrder - b.createdOrder);
}

export async function findSnapshot(ctx: Context, environment: string, name: string): Promise<SnapshotInfo> {
  checkName(environment);
  checkSnapshotName(name);
  const found = (await ctx.backend.listSnapshots()).find((s) => s.environment === environment && s.name === name);
  if (found === undefined) {
    await findEnvironment(ctx, environment); // NOT_FOUND for the environment itself, worded as every verb words it
    throw new SysprimeError('NOT_FOUND', `environment "${environment}" has no snapshot "${name}"`, { hint: '`sysprime list --snapshots` shows the snapshots' });
  }
  return found;
}

/** Take snapshot NAME (default: the time, UTC) of environment ENV as it is now. */
export async function takeSnapshot(ctx: Context, environment: string, name?: string): Promise<SnapshotInfo> {
  checkName(environment);
  if (name !== undefined) checkSnapshotName(name);
  return withLock(ctx.db, 'taking a snapshot', async () => {
    await kernelsBeforeCopy(ctx, await findEnvironment(ctx, environment));
    const chosen = name ?? defaultSnapshotName(new Date(), new Set((await ctx.backend.listSnapshots()).filter((s) => s.environment === environment).map((s) => s.name)));
    const snap = await ctx.backend.takeSnapshot(environment, chosen);
    recordEvent(ctx.db, environment, 'snapshot', { name: snap.name, generation: snap.generation });
    return snap;
  });
}

export async function destroySnapshot(ctx: Context, environment: string, name: string): Promise<void> {
  return withLock(ctx.db, 'destroying a snapshot', async () => {
    await findSnapshot(ctx, environment, name);
    await ctx.backend.destroySnapshot(environment, name);
    recordEvent(ctx.db, environment, 'destroy-snapshot', { name });
  });
}
