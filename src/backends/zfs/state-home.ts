/**
 * The state database's own dataset on ZFS (`Backend.stateHome`; init's side
 * is src/environments/state-home.ts):
 *
 *   <pool>/sysprime         canmount=off, mountpoint=none, org.sysprime:state-home=parent
 *   <pool>/sysprime/state   canmount=on, mountpoint=<state dir>, org.sysprime:state-home=database
 *
 * (the name is explained in layout.ts). No fstab line: zfs-mount.service
 * (`zfs mount -a`) mounts every dataset with canmount=on at its mountpoint,
 * whichever environment booted; the environments themselves are
 * canmount=noauto, mounted at `/` by the initramfs.
 *
 * ZFS mounts on an empty directory only (zfs-fuse always, and `zfs mount -O`
 * kills its daemon; OpenZFS when overlay=off), and the state directory holds
 * the root's copy of the database. So the dataset is made with
 * canmount=noauto and mounted beside it (`<state dir>.sysprime-new`), init
 * copies the database in and removes the root's copy, and finish() mounts
 * the dataset on the empty directory and sets canmount=on. Every step can be
 * taken again, so the next init finishes whatever a crash left.
 */
import { realpath, rmdir } from 'node:fs/promises';
import { SysprimeError } from '../../errors.js';
import { isAtOrBelow, mountHolding, readMounts } from '../../os/mounts.js';
import { faultPoint } from '../../process/fault.js';
import type { StateHome } from '../types.js';
import { altrootOf, readOne, zfs } from './commands.js';
import { PROP, rootDataset, stateHomeDataset, stateHomeParent } from './layout.js';
import { isZfsMount, localProp, mountTargetsOf, prop, withoutAltroot } from './parse.js';

export async function findStateHome(pool: string, stateDir: string): Promise<StateHome | null> {
  // The mount tables name real directories.
  const target = await realpath(stateDir);
  const ds = stateHomeDataset(pool);
  const parent = stateHomeParent(pool);
  const holding = mountHolding(await readMounts(), target);
  if (holding === undefined) return null;
  const record = await readOne(ds, ['canmount', PROP.stateHome]);
  const ours = record !== null && localProp(record, PROP.stateHome) === 'database';
  const oursThere = ours && holding.mountPoint === target && isZfsMount(holding) && holding.source === ds;
  // Anything else mounted at the state directory (the admin's own dataset, another filesystem) is already a home: never mounted over.
  if (!oursThere && holding.mountPoint === target) return null;
  // On a dataset outside the environments (the guide's shared ones) or on another filesystem, every environment already sees the same database.
  if (!oursThere && (!isZfsMount(holding) || !holding.source.startsWith(`${rootDataset(pool)}/`))) return null;

  // With an altroot (a pool imported with -R) mountpoints take effect below it: the property is the path without it.
  const altroot = await altrootOf(pool);
  const mountpoint = withoutAltroot(target, altroot);
  if (mountpoint === '/' || (altroot !== null && !isAtOrBelow(target, altroot))) {
    throw new SysprimeError('REFUSED', `no dataset of pool ${pool} can be mounted at the state directory ${target}${altroot !== null ? ` (the pool's altroot is ${altroot})` : ''}`, {
      hint: 'set [state] dir in sysprime.toml to a directory below the root, such as /var/lib/sysprime/state',
    });
  }
  if (record !== null && !ours) {
    throw new SysprimeError('REFUSED', `the state database ${target} is inside ${holding.source}, and ${ds}, the dataset sysprime would give it, already exists and was not made by sysprime: it is left alone`, {
      hint: `if it is meant for the state database, move the database into it and mount it there yourself (zfs set mountpoint=${mountpoint} ${ds}); otherwise rename it; then run init again`,
    });
  }
  const parentRecord = await readOne(parent, [PROP.stateHome]);
  if (parentRecord !== null && localProp(parentRecord, PROP.stateHome) !== 'parent') {
    throw new SysprimeError('REFUSED', `the state database ${target} is inside ${holding.source}, and ${parent}, where sysprime would make its dataset, already exists and was not made by sysprime: it is left alone`, {
      hint: `give the state database a dataset of your own mounted there (zfs create -o mountpoint=${mountpoint} ${pool}/NAME, the database moved into it), or rename ${parent}; then run init again`,
    });
  }

  const beside = `${target}.sysprime-new`;
  const besideMountpoint = `${mountpoint}.sysprime-new`;
  const targetsNow = async (): Promise<string[]> => mountTargetsOf(await readMounts(), ds);
  return {
    id: ds,
    ready: oursThere && record !== null && prop(record, 'canmount') === 'on',
    fstabLine: null,
    async ensure() {
      const done: string[] = [];
      if ((await readOne(parent, ['type'])) === null) {
        await zfs(['create', '-o', 'canmount=off', '-o', 'mountpoint=none', '-o', `${PROP.stateHome}=parent`, parent]);
        done.push(`created ${parent} (canmount=off, mountpoint=none) to hold the state database's dataset`);
      }
      if ((await readOne(ds, ['type'])) === null) {
        // Marked by the command that creates it: it never exists unmarked. canmount=noauto until finish():
        // a boot before then leaves it unmounted, and the root's copy the database.
        await zfs(['create', '-o', 'canmount=noauto', '-o', `mountpoint=${besideMountpoint}`, '-o', `${PROP.stateHome}=database`, ds]);
        done.push(`created ${ds} for the state database`);
        faultPoint('backend:zfs', 'state-home-created');
      }
      // Mounted at the state directory already: an init that was interrupted after finish() mounted it.
      if ((await targetsNow()).includes(target)) return { done, beside: null };
      // Filled beside the state directory: the root's copy is still in it, and ZFS mounts on an empty directory only
      // (zfs-fuse always; OpenZFS with overlay=off, at every boot), so the copy must leave it first.
      const now = await readOne(ds, ['mountpoint']);
      if (now === null || withoutAltroot(prop(now, 'mountpoint') ?? '', altroot) !== besideMountpoint) {
        if ((await targetsNow()).length > 0) await zfs(['unmount', ds]);
        await zfs(['set', `mountpoint=${besideMountpoint}`, ds]);
      }
      if (!(await targetsNow()).includes(beside)) {
        await zfs(['mount', ds]);
        done.push(`mounted ${ds} at ${beside} to copy the database in`);
        faultPoint('backend:zfs', 'state-home-mounted');
      }
      return { done, beside };
    },
    async finish() {
      const done: string[] = [];
      if (!(await targetsNow()).includes(target)) {
        if ((await targetsNow()).length > 0) await zfs(['unmount', ds]);
        await zfs(['set', `mountpoint=${mountpoint}`, ds]);
        faultPoint('backend:zfs', 'state-home-mountpoint-set');
        await zfs(['mount', ds]);
        done.push(`mounted ${ds} at ${target}`);
        await rmdir(beside).catch(() => undefined);
        faultPoint('backend:zfs', 'state-home-in-place');
      }
      // Last: from now on every boot mounts it, whichever environment it boots.
      const now = await readOne(ds, ['canmount']);
      if (now === null || prop(now, 'canmount') !== 'on') {
        await zfs(['set', 'canmount=on', ds]);
        done.push(`set canmount=on on ${ds}: zfs-mount.service mounts it at ${mountpoint} in every environment`);
      }
      return done;
    },
  };
}
