/**
 * The boot pool of the OpenZFS "Root on ZFS" guides (Debian, Ubuntu): GRUB
 * reads the kernels from a pool of their own, `bpool`, made with only the
 * features GRUB knows, where each root `rpool/ROOT/<name>` has its boot
 * dataset `bpool/BOOT/<name>` (mountpoint=/boot). The boot dataset is part
 * of its environment: cloned, snapshotted, renamed and destroyed with it.
 *
 * A pool cannot hold a clone of another pool's snapshot, so the boot
 * dataset cannot be one of the environment's children (zsys). It is carried
 * beside it in the same way instead: cloned under the same temporary name in
 * its own pool and renamed into place after the root, the root's rename
 * being the moment the environment exists. Every boot dataset carries the
 * name of its environment (`org.sysprime:boot-of`), written before a rename
 * or at a clone, so that recover() can finish what a kill interrupted when
 * the root already moved, and undo it when it did not:
 *
 * - a temporary boot clone whose process is gone: renamed into place when
 *   its environment exists without a boot dataset (the root was renamed),
 *   else destroyed (the root's temporary clone went the same way); one
 *   without the mark is what an import killed right after its receive
 *   left, and is destroyed;
 * - a boot dataset whose environment is another name: renamed to it when
 *   that environment exists without one, else given its own name back;
 * - a boot dataset marked for destruction (DESTROYING, written before its
 *   root is destroyed): destroyed once its root is gone, else given its
 *   own name back. A boot dataset is never destroyed only because no root
 *   of its name is there: an admin's `zfs rename` of a root must not cost
 *   the kernels.
 *
 * Which pool is the boot pool is written on `<pool>/ROOT` at init
 * (`org.sysprime:boot-pool`): from then on every verb finds it without
 * guessing from the pools that happen to be imported.
 */
import { SysprimeError } from '../../errors.js';
import { checkName } from '../../names.js';
import { processAlive } from '../../process/alive.js';
import { altrootOf, readOne, readTree, zfs, zpool } from './commands.js';
import { destroyWithDependents } from './destroy.js';
import { HOLD_COUNT, releaseForDestroy } from './holds.js';
import { PROP, TEMPORARY_PREFIX, assertInsideRoot, bootContainer, bootDataset, environmentDataset, holderOf, shortSnapshotName, sweepableCopy } from './layout.js';
import { dependentsOf, isSnapshot, localProp, mountTargetsOf, withoutAltroot, type DatasetRecord } from './parse.js';
import type { FstabEntry } from '../../os/mounts.js';

/** `boot-of` of a boot dataset whose environment is being destroyed: no environment's name (names.ts forbids the dot). */
export const DESTROYING = '.destroying';

/** The boot pool recorded on `<pool>/ROOT`, or null: environments keep /boot in their roots. */
export async function recordedBootPool(pool: string): Promise<string | null> {
  const record = await readOne(`${pool}/ROOT`, [PROP.bootPool]);
  return record === null ? null : localProp(record, PROP.bootPool);
}

/**
 * The boot dataset of a root named `name` that init is adopting: the one
 * `<pool>/BOOT/<name>` among the imported pools other than the root's.
 * Null when there is none (the root holds its own /boot); refused when two
 * pools have one, since which one GRUB reads cannot be told. A root that is
 * not the running one never gets the running system's own /boot: a second
 * pool's `ROOT/debian` beside the guide's `bpool/BOOT/debian` is not its
 * partner, and pairing them would clone and snapshot the running system's
 * boot dataset for another pool's environments.
 */
export async function findBootDataset(rootPool: string, name: string, running: { root: boolean; mounts: readonly FstabEntry[] }): Promise<string | null> {
  const pools = (await zpool(['list', '-H', '-o', 'name'])).stdout.split('\n').map((l) => l.trim()).filter((p) => p !== '' && p !== rootPool);
  const found: string[] = [];
  for (const p of pools) {
    const ds = `${bootContainer(p)}/${name}`;
    if (!running.root && mountTargetsOf(running.mounts, ds).includes('/boot')) continue;
    if ((await readOne(ds, ['type'])) !== null) found.push(ds);
  }
  if (found.length > 1) {
    throw new SysprimeError('REFUSED', `the root ${rootPool}/ROOT/${name} has a boot dataset in more than one pool: ${found.join(', ')}`, {
      hint: 'export the boot pool this machine does not boot from, then run sysprime init again',
    });
  }
  return found[0] ?? null;
}

/** The pristine snapshot of `generation` in the boot pool, wherever promotes moved it; null when there is none. */
export async function bootPristine(bootPool: string, generation: number): Promise<string | null> {
  const records = await readTree(bootContainer(bootPool), ['type', PROP.pristine]);
  return records.find((r) => isSnapshot(r) && localProp(r, PROP.pristine) === String(generation))?.name ?? null;
}

/**
 * Clone `snapshot` (a boot dataset's) to the temporary name `temporary` in
 * the boot pool, naming `environment` as its owner, with the source's
 * mountpoint (`/boot`, or `legacy` where an fstab line mounts it) and
 * canmount=noauto: two boot datasets with canmount=on would both be mounted
 * at /boot by zfs-mount.service; the one of the booted root is mounted by
 * sysprime-boot-generator, from the `sysprime.boot=` its boot entry carries
 * (zfs-mount-generator mounts none of several noauto datasets sharing a
 * mount point).
 */
export async function cloneBootDataset(snapshot: string, temporary: string, environment: string, generation: string): Promise<void> {
  const source = await readOne(holderOf(snapshot), ['mountpoint']);
  const shown = source === null ? null : localProp(source, 'mountpoint');
  // Shown below the pool's altroot when it has one (a machine prepared from a rescue system): set as the property says it.
  const mountpoint = shown === null ? '/boot' : withoutAltroot(shown, await altrootOf(holderOf(snapshot).split('/')[0]!));
  await zfs(['clone', '-o', 'canmount=noauto', '-o', `${PROP.bootOf}=${environment}`, '-o', `${PROP.generation}=${generation}`, snapshot, temporary]);
  // Set after creation, as for the root: zfs-fuse mounts a clone created with a mountpoint at once.
  await zfs(['set', `mountpoint=${mountpoint}`, temporary]);
}

/** The temporary name in the boot pool that goes with the root's temporary clone `rootTemporary`. */
export function bootTemporaryFor(bootPool: string, rootTemporary: string): string {
  const last = rootTemporary.slice(rootTemporary.lastIndexOf('/') + 1);
  return `${bootContainer(bootPool)}/${last}`;
}

function isEnvironmentName(name: string): boolean {
  try {
    checkName(name);
    return true;
  } catch {
    return false;
  }
}

const exists = async (ds: string): Promise<boolean> => (await readOne(ds, ['type'])) !== null;

/** Finish or undo what a kill left in the boot pool (see the top of this file); returns what was done. */
export async function recoverBootPool(pool: string, bootPool: string): Promise<string[]> {
  const done: string[] = [];
  const container = bootContainer(bootPool);
  let records: DatasetRecord[];
  try {
    records = await readTree(container, ['type', PROP.bootOf]);
  } catch {
    return done;
  }
  for (const r of records) {
    if (isSnapshot(r)) continue;
    const rest = r.name.slice(container.length + 1);
    if (rest === '' || rest.includes('/') || !r.name.startsWith(`${container}/`)) continue;
    const owner = localProp(r, PROP.bootOf);
    // A temporary of a dead process without its mark: an import killed between its receive and the mark (never renamed).
    if (owner === null && rest.startsWith(TEMPORARY_PREFIX) && !processAlive(Number(/-(\d+)-[0-9a-f]+$/.exec(rest)?.[1] ?? '0'))) {
      for (const line of await destroyWithDependents(bootPool, r.name, null, container)) done.push(line);
      continue;
    }
    if (owner === null) continue;
    // Not an environment's name: a pristine tree's read-only boot clone (openPristine), never renamed into place.
    const valid = isEnvironmentName(owner);
    const ownBoot = valid ? bootDataset(bootPool, owner) : null;
    const rootThere = valid && (await exists(environmentDataset(pool, owner)));
    if (rest.startsWith(TEMPORARY_PREFIX)) {
      const pid = Number(/-(\d+)-[0-9a-f]+$/.exec(rest)?.[1] ?? '0');
      if (processAlive(pid)) continue;
      if (rootThere && ownBoot !== null && !(await exists(ownBoot))) {
        await zfs(['rename', r.name, ownBoot]);
        done.push(`renamed ${r.name} to ${ownBoot}: its environment ${owner} was made`);
      } else {
        for (const line of await destroyWithDependents(bootPool, r.name, null, container)) done.push(line);
      }
      continue;
    }
    if (owner === DESTROYING) {
      if (!(await exists(environmentDataset(pool, rest)))) {
        for (const line of await destroyWithDependents(bootPool, r.name, null, container)) done.push(line);
      } else {
        await zfs(['set', `${PROP.bootOf}=${rest}`, r.name]);
        done.push(`${r.name} belongs to ${rest} again: its destroy did not happen`);
      }
      continue;
    }
    if (owner !== rest) {
      if (rootThere && ownBoot !== null && !(await exists(ownBoot))) {
        await zfs(['rename', r.name, ownBoot]);
        done.push(`renamed ${r.name} to ${ownBoot}, as its environment was`);
      } else if (await exists(environmentDataset(pool, rest))) {
        await zfs(['set', `${PROP.bootOf}=${rest}`, r.name]);
        done.push(`${r.name} belongs to ${rest} again: its rename did not happen`);
      }
    }
  }
  done.push(...(await sweepBootSnapshots(pool, bootPool)));
  return done;
}

/**
 * Snapshots of the boot pool whose partner in the root pool is gone, and
 * that no clone needs: copy snapshots, and the pristine of a generation
 * whose root pristine was destroyed. A boot snapshot is only ever the other
 * half of a root one.
 */
export async function sweepBootSnapshots(pool: string, bootPool: string): Promise<string[]> {
  const done: string[] = [];
  const container = bootContainer(bootPool);
  const [boot, roots] = await Promise.all([
    readTree(container, ['type', 'origin', PROP.pristine, PROP.snapshot, HOLD_COUNT]).catch(() => [] as DatasetRecord[]),
    readTree(`${pool}/ROOT`, ['type', PROP.pristine]).catch(() => [] as DatasetRecord[]),
  ]);
  const rootPristines = new Set(roots.filter((r) => isSnapshot(r)).map((r) => localProp(r, PROP.pristine)).filter((g): g is string => g !== null));
  const rootSnapshots = new Set(roots.filter((r) => isSnapshot(r)).map((r) => r.name.slice(`${pool}/ROOT/`.length)));
  for (const r of boot) {
    if (!isSnapshot(r) || dependentsOf(boot, r.name).length > 0) continue;
    const gen = localProp(r, PROP.pristine);
    const unusedCopy = sweepableCopy(shortSnapshotName(r.name), (pid) => processAlive(pid));
    const orphanPristine = gen !== null && !rootPristines.has(gen);
    // An admin's snapshot (`sysprime snapshot`) whose root half a kill never took, or a destroy already removed.
    const orphanSnapshot = localProp(r, PROP.snapshot) !== null && !rootSnapshots.has(r.name.slice(`${container}/`.length));
    if (!unusedCopy && !orphanPristine && !orphanSnapshot) continue;
    await releaseForDestroy([r], () => true);
    await zfs(['destroy', assertInsideRoot(bootPool, r.name, container)]);
    done.push(`destroyed ${r.name}`);
  }
  return done;
}
