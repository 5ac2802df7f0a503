/**
 * What this machine's ZFS can do, found by asking it rather than assuming:
 * zfs-fuse (pool version 23) and OpenZFS 2.x differ in how a dataset whose
 * mountpoint is `/` can be mounted elsewhere, and in whether `zfs diff`
 * exists.
 */
import { access, constants } from 'node:fs/promises';
import { SysprimeError } from '../../errors.js';
import { poolMissing, zfs, zpool } from './commands.js';

export interface ZfsCapabilities {
  /** `zfs version` answers (OpenZFS 0.8 and later); zfs-fuse does not know the command. */
  implementation: 'openzfs' | 'zfs-fuse';
  /**
   * `mount -t zfs -o zfsutil DATASET DIR` works (OpenZFS ships mount.zfs), so a
   * private mount leaves the mountpoint property alone. Without it the
   * property is changed for the time of the mount and put back afterwards.
   */
  mountHelper: boolean;
  /** `zfs diff` exists (OpenZFS): drift can ask ZFS what changed instead of walking the tree. */
  diff: boolean;
}

const MOUNT_HELPERS = ['/sbin/mount.zfs', '/usr/sbin/mount.zfs', '/bin/mount.zfs', '/usr/bin/mount.zfs'];

async function executable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export async function detectCapabilities(): Promise<ZfsCapabilities> {
  const version = await zfs(['version'], { allowFailure: true });
  const implementation = version.exitCode === 0 ? 'openzfs' : 'zfs-fuse';
  let mountHelper = false;
  if (implementation === 'openzfs') {
    for (const p of MOUNT_HELPERS) if (await executable(p)) mountHelper = true;
  }
  // zfs-fuse answers "unrecognized command 'diff'"; OpenZFS complains about the missing snapshot.
  const diff = await zfs(['diff'], { allowFailure: true });
  return { implementation, mountHelper, diff: !/unrecognized command/i.test(`${diff.stderr}\n${diff.stdout}`) };
}

/**
 * Tools installed, daemon reachable (commands.ts says so when not), pool
 * imported. Never writes. Answers the pool's GUID, which names the pool
 * itself wherever and under whatever name it is imported (read in the same
 * call, so the state database's owner costs no process of its own).
 */
export async function probePool(pool: string): Promise<string> {
  await zfs(['list', '-H', '-o', 'name', '-d', '0', pool], { allowFailure: true });
  try {
    const res = await zpool(['list', '-H', '-o', 'name,guid', pool]);
    const guid = res.stdout.trim().split('\t')[1] ?? '';
    if (!/^\d+$/.test(guid)) throw new SysprimeError('BACKEND', `\`zpool list -o guid ${pool}\` answered ${JSON.stringify(res.stdout.trim())}, not a pool GUID`);
    return guid;
  } catch (err) {
    if (poolMissing(err)) {
      throw new SysprimeError('NOT_FOUND', `ZFS pool ${JSON.stringify(pool)} does not exist or is not imported`, {
        hint: '`zpool list` shows the imported pools; `zpool import` lists the others; set zfs.pool in sysprime.toml',
        cause: err,
      });
    }
    throw err;
  }
}
