/**
 * Destroying a dataset that other environments were cloned from.
 *
 * ZFS cannot destroy a snapshot a clone depends on, so the dependent clone is
 * promoted first: it takes over the snapshots up to its origin, and the old
 * dataset becomes its clone. A promote fails when a snapshot that moves has
 * the name of one the clone already has (every environment has its own
 * `@sysprime-pristine`), so those are renamed beforehand (parse.planPromote).
 * Afterwards the moved snapshots and the pristine of the environment's
 * generation go too, unless a clone still depends on one or it is the
 * pristine of a generation some environment still has.
 *
 * An environment with child datasets was cloned child by child, so each
 * child's snapshots have clones of their own: promoting the environment's
 * clone moves only its own snapshots. Every dataset of the tree is
 * therefore taken in turn, parents first, until none has a dependent left.
 *
 * A boot dataset (`<boot pool>/BOOT/<name>`) is destroyed the same way, with
 * its pool and `BOOT` as the container: its clones are the other
 * environments' boot datasets, promoted as their roots are.
 */
import { SysprimeError } from '../../errors.js';
import { faultPoint } from '../../process/fault.js';
import { readTree, zfs } from './commands.js';
import { HOLD_COUNT, releaseForDestroy } from './holds.js';
import { PROP, assertInsideRoot, rootDataset } from './layout.js';
import { childDatasetsOf, dependentsOf, leftoverSnapshots, planPromote, prop, snapshotsOf, type DatasetRecord } from './parse.js';
import { processAlive } from '../../process/alive.js';

const PROPS = ['type', 'origin', 'guid', 'createtxg', 'creation', PROP.pristine, PROP.generation, HOLD_COUNT] as const;

function readPool(pool: string): Promise<DatasetRecord[]> {
  // Pool-wide: a clone outside ROOT/ depends on our snapshots just as well.
  return readTree(pool, PROPS);
}

/** Destroy `dataset` (and its snapshots) after promoting its dependents; returns what was done. */
export async function destroyWithDependents(pool: string, dataset: string, generation: number | null = null, container: string = rootDataset(pool)): Promise<string[]> {
  assertInsideRoot(pool, dataset, container);
  const done: string[] = [];
  let records = await readPool(pool);
  const tree = [dataset, ...childDatasetsOf(records, dataset)];
  const ownSnapshots = tree.flatMap((d) => snapshotsOf(records, d));
  const guids = new Set(ownSnapshots.map((s) => prop(s, 'guid')).filter((g): g is string => g !== null));

  const rootPrefix = `${container}/`;
  const outside = ownSnapshots.flatMap((s) => dependentsOf(records, s.name)).filter((d) => !d.startsWith(rootPrefix));
  if (outside.length > 0) {
    throw new SysprimeError('REFUSED', `cannot destroy ${dataset}: ${outside.join(', ')} outside ${rootPrefix} is a clone of one of its snapshots`, {
      hint: `promote or destroy ${outside[0]} first (zfs promote ${outside[0]})`,
    });
  }

  let promotes = 0;
  for (const member of tree) {
    // Each promote moves at least one snapshot off `member`, so this ends.
    const count = snapshotsOf(records, member).length;
    for (let i = 0; i <= count; i++) {
      const step = planPromote(records, pool, member, container);
      if (step === null) break;
      for (const r of step.renames) {
        await zfs(['rename', r.from, r.to]);
        done.push(`renamed ${r.from} to ${r.to}`);
      }
      await zfs(['promote', step.clone]);
      done.push(`promoted ${step.clone}`);
      faultPoint('backend:zfs', `destroy-promoted-${++promotes}`);
      records = await readPool(pool);
    }
    if (planPromote(records, pool, member, container) !== null) {
      throw new SysprimeError('BACKEND', `snapshots of ${member} still have clones after promoting its dependents`, {
        hint: `look at \`zfs list -t all -o name,origin -r ${pool}\``,
      });
    }
  }

  // Its pristine snapshots carry sysprime's hold (holds.ts): released right before they go with it.
  await releaseForDestroy(records, (name) => tree.some((d) => name.startsWith(`${d}@`)));
  await zfs(['destroy', '-r', assertInsideRoot(pool, dataset, container)]);
  done.push(`destroyed ${dataset}`);
  faultPoint('backend:zfs', 'destroy-destroyed');

  records = await readPool(pool);
  const leftovers = leftoverSnapshots(records, pool, guids, generation, container, (pid) => processAlive(pid));
  await releaseForDestroy(records, (name) => leftovers.includes(name));
  for (const snap of leftovers) {
    await zfs(['destroy', assertInsideRoot(pool, snap, container)]);
    done.push(`destroyed ${snap}`);
  }
  return done;
}
