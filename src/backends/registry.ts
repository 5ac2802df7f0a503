/**
 * Which backend serves this machine: the configured one, or the filesystem
 * of `/` when the configuration does not say. A plain list, first match wins.
 */
import { readFileSync } from 'node:fs';
import type { Config, BackendKind } from '../config/schema.js';
import { SysprimeError } from '../errors.js';
import type { Backend, RootLocation } from './types.js';
import { run } from '../process/run.js';
import { mountAt, parseMounts } from '../os/mounts.js';
import { createZfsBackend } from './zfs/index.js';
import { createBtrfsBackend } from './btrfs/index.js';
import { DEFAULT_SHARED_SUBVOLUMES } from './btrfs/layout.js';

interface BackendEntry {
  kind: BackendKind;
  /** Does the running root live on this kind of filesystem? */
  matchesRoot(rootFsType: string): boolean;
  create(config: Config, root: RootMount | null): Backend;
}

export interface RootMount {
  fstype: string;
  source: string;
}

const BACKENDS: readonly BackendEntry[] = [
  {
    kind: 'zfs',
    matchesRoot: (t) => t === 'zfs' || t === 'fuse.zfs',
    create(config, root) {
      const pool = config.zfs.pool ?? (root !== null && this.matchesRoot(root.fstype) ? root.source.split('/')[0] : undefined);
      if (!pool) throw new SysprimeError('CONFIG', 'no ZFS pool configured and none found under /', { hint: 'set [zfs] pool in sysprime.toml' });
      // Private mounts per pool: two pools on one machine never share a mount point.
      return createZfsBackend({ pool, stateDir: `/run/sysprime/zfs/${pool}` });
    },
  },
  {
    kind: 'btrfs',
    matchesRoot: (t) => t === 'btrfs',
    create: (config, root) => createBtrfsBackend(btrfsOptions(config, root)),
  },
];

/**
 * Where the Btrfs backend finds the top-level subvolume: `[btrfs] top`, and
 * the device to mount there when nothing is, which defaults to the device
 * of `/` when `/` is Btrfs (the usual single-filesystem machine needs no
 * configuration). A root on another filesystem lends no device.
 */
export function btrfsOptions(config: Config, root: RootMount | null): { top: string; device?: string; sharedSubvolumes?: string[] } {
  const device = config.btrfs.device ?? (root?.fstype === 'btrfs' && root.source.startsWith('/dev/') ? root.source : undefined);
  const shared = config.btrfs.sharedSubvolumes;
  return {
    top: config.btrfs.top,
    ...(device !== undefined ? { device } : {}),
    ...(shared.length > 0 ? { sharedSubvolumes: [...DEFAULT_SHARED_SUBVOLUMES, ...shared] } : {}),
  };
}

/** Filesystem type and source of the mount at `/`, from the kernel's own table. */
export function rootMount(mountsText = readFileSync('/proc/self/mounts', 'utf8')): RootMount | null {
  const root = mountAt(parseMounts(mountsText), '/');
  return root === undefined ? null : { fstype: root.fsType, source: root.source };
}

/** Whether the running root lives on the environments' pool or filesystem (the installer's root before adoption does). */
export async function runsFromPool(pool: RootLocation): Promise<boolean> {
  const root = rootMount();
  if (root === null || root.fstype !== pool.fs) return false;
  if (pool.fs === 'zfs') return root.source.split('/')[0] === pool.pool;
  const uuid = (await run('findmnt', ['-n', '-o', 'UUID', '--mountpoint', '/'], { allowFailure: true })).stdout.trim();
  return uuid !== '' && uuid === pool.uuid;
}

export function selectBackend(config: Config): Backend {
  const root = rootMount();
  if (config.backend !== undefined) {
    const entry = BACKENDS.find((b) => b.kind === config.backend)!;
    return entry.create(config, root);
  }
  const entry = root ? BACKENDS.find((b) => b.matchesRoot(root.fstype)) : undefined;
  if (!entry || !root) {
    throw new SysprimeError('CONFIG', `the root filesystem is ${root?.fstype ?? 'unknown'}, not ZFS or Btrfs, and no backend is configured`, {
      hint: 'set backend = "btrfs" or "zfs" (and [btrfs] top or [zfs] pool) in sysprime.toml, or pass --config',
    });
  }
  return entry.create(config, root);
}
