/**
 * The filesystem a Btrfs backend works on, as one handle the backend's
 * modules share: the top-level subvolume mounted at `top` (mounted by the
 * backend itself when `[btrfs] device` is set), what is mounted of it, its
 * subvolumes, and the one place subvolumes are deleted. Everything is read
 * again on each call; nothing is cached, so another tool changing the
 * filesystem cannot make the backend act on a stale picture.
 */
import { lstat, mkdir, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { SysprimeError, errnoOf, messageOf } from '../../errors.js';
import { log } from '../../log.js';
import { run } from '../../process/run.js';
import { faultPoint } from '../../process/fault.js';
import { mountAt, mountsAtOrBelow, parseMountinfo, unmountOrder, type MountinfoEntry } from '../../os/mounts.js';
import { PRISTINE_DIR, ROOT_DIR, SNAPSHOT_DIR, environmentPath, DEFAULT_SHARED_SUBVOLUMES } from './layout.js';
import { ensureMetaDirs } from './meta.js';
import { mountSubvolumeId, type SubvolumeListEntry } from './parse.js';
import { btrfs, btrfsVersion, deleteSubvolumeAt, listSubvolumes } from './progs.js';

/** Where staging mounts environments privately; recover() unmounts what a crash left there. */
export const DEFAULT_PRIVATE_DIR = '/run/sysprime/private';

export const TOP_LEVEL_ID = 5;

const SYSFS_BTRFS = '/sys/fs/btrfs';

export interface BtrfsBackendOptions {
  /** Mount point of the top-level subvolume (`[btrfs] top`). */
  top: string;
  /** Block device of the filesystem (`[btrfs] device`): lets the backend mount `top` itself. */
  device?: string;
  /** Directory under which environments are mounted privately (staging). */
  privateDir?: string;
  /**
   * Reads the mount table; /proc/self/mountinfo unless given. Tests use it to
   * show a running root on a scratch filesystem without touching the machine's own.
   */
  mountTable?: () => Promise<string>;
  /**
   * Nested subvolumes (absolute paths inside an environment) shared by every
   * environment, never copied into a clone; DEFAULT_SHARED_SUBVOLUMES unless given.
   */
  sharedSubvolumes?: readonly string[];
}

/** What one call sees of the filesystem: its mount at top and every mount of it. */
export interface FsView {
  topMount: MountinfoEntry;
  /** Every mount of the same filesystem (same st_dev in mountinfo). */
  mounts: MountinfoEntry[];
  /** Every mount, of any filesystem (for what is mounted below an environment). */
  all: MountinfoEntry[];
}

export const slashed = (rel: string): string => `/${rel}`;

export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isDirectory();
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return false;
    throw err;
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw err;
  }
}

export interface BtrfsTop {
  /** The mount point of the top-level subvolume, as the last view() found it (links resolved). */
  readonly top: string;
  /** The mount point as configured. */
  readonly topGiven: string;
  readonly device: string | undefined;
  readonly privateDir: string;
  readonly sharedSubvolumes: readonly string[];
  /** `top` joined with a path relative to the top-level subvolume. */
  abs(rel: string): string;
  describe(): string;
  /** Check the tools and the mount at top; never writes, never mounts. */
  probe(): Promise<void>;
  /** What is mounted of the filesystem now; mounts top first when a device is configured and it is not mounted. */
  view(): Promise<FsView>;
  /** Mounts of one environment (its subvolume is the mount's root). */
  mountsOf(fs: FsView, name: string): MountinfoEntry[];
  subvolumes(): Promise<SubvolumeListEntry[]>;
  /** NOT_FOUND unless environment NAME is in the list. */
  findEnvironmentEntry(list: readonly SubvolumeListEntry[], name: string): SubvolumeListEntry;
  /** EXISTS when environment NAME is in the list. */
  refuseExisting(list: readonly SubvolumeListEntry[], name: string): void;
  /** The one place subvolumes are deleted: only ever below ROOT/, nested ones first. Returns what was deleted. */
  deleteSubvolumeTree(rel: string, list: readonly SubvolumeListEntry[]): Promise<string[]>;
  /**
   * Delete a subvolume of this process's own with nothing below it (a
   * temporary snapshot) while the caller goes on: the next listing, and
   * close(), wait for it. A failure is a warning; recover() deletes what a
   * dead process left under a `.partial-` name.
   */
  deleteLater(rel: string): void;
  /** Delete a leftover `.partial-` subvolume before reusing its name. */
  clearPartial(rel: string, list: readonly SubvolumeListEntry[], why?: string): Promise<void>;
  /** The directories for pristine snapshots and metadata. */
  ensureDirs(): Promise<void>;
  /** Unmount a mount and everything mounted below it, deepest first; returns the mount points. */
  unmountTree(fs: FsView, mountPoint: string): Promise<string[]>;
  /** The UUID of the filesystem mounted at top, for fstab and boot-entry lines. */
  fsUuid(fs: FsView): Promise<string>;
  /** The filesystem's UUID, read from sysfs where it is mounted (no process); never mounts. */
  identity(): Promise<string>;
  /** Unmount `top` if this handle mounted it itself; nothing otherwise. */
  close(): Promise<void>;
}

export function openTop(opts: BtrfsBackendOptions): BtrfsTop {
  const topGiven = resolve(opts.top);
  const privateDir = resolve(opts.privateDir ?? DEFAULT_PRIVATE_DIR);
  const topHint = `set [btrfs] top to the mount point of the filesystem's top-level subvolume, or mount it there: mount -o subvolid=5 DEVICE ${topGiven}`;
  let mountedTopOurselves = false;
  let top = topGiven;
  const mountTable = opts.mountTable ?? (() => readFile('/proc/self/mountinfo', 'utf8'));
  const readMountinfo = async (): Promise<MountinfoEntry[]> => parseMountinfo(await mountTable());
  const sharedSubvolumes = opts.sharedSubvolumes ?? DEFAULT_SHARED_SUBVOLUMES;

  const abs = (rel: string): string => join(top, rel);

  async function canonicalTop(): Promise<string> {
    try {
      return await realpath(topGiven);
    } catch {
      return topGiven;
    }
  }

  /** Why the mount at top is not the top-level subvolume of a Btrfs filesystem, or null. */
  function topProblem(m: MountinfoEntry): string | null {
    if (m.fsType !== 'btrfs') return `${topGiven} is a ${m.fsType} mount, not Btrfs`;
    const id = mountSubvolumeId(m);
    if (id !== null ? id !== TOP_LEVEL_ID : m.root !== '/') {
      return `${topGiven} is a mount of subvolume ${m.root}${id === null ? '' : ` (id ${id})`}, not of the top-level subvolume (id 5)`;
    }
    return null;
  }

  async function mountTop(device: string): Promise<void> {
    await mkdir(topGiven, { recursive: true });
    faultPoint('backend:btrfs', 'top-unmounted');
    try {
      await run('mount', ['-t', 'btrfs', '-o', 'subvolid=5', device, topGiven]);
    } catch (err) {
      // Another sysprime starting at the same moment (at boot: the health checks beside the runner of an
      // admin's command, or the first-boot reintegration) mounted it first, and mount(8) refuses a second:
      // it is there to use, and it is not this process's to unmount.
      if (mountAt(await readMountinfo(), await canonicalTop()) !== undefined) return;
      throw err;
    }
    mountedTopOurselves = true;
    log.info(`mounted the top-level subvolume of ${device} at ${topGiven}`);
  }

  async function view(): Promise<FsView> {
    top = await canonicalTop();
    let all = await readMountinfo();
    let topMount = mountAt(all, top);
    if (topMount === undefined && opts.device !== undefined) {
      await mountTop(opts.device);
      top = await canonicalTop();
      all = await readMountinfo();
      topMount = mountAt(all, top);
    }
    if (topMount === undefined) {
      throw new SysprimeError('BACKEND', `${topGiven} is not a mount point, so it is not the top-level subvolume of a Btrfs filesystem`, {
        hint: `${topHint}; or set [btrfs] device and sysprime mounts it`,
      });
    }
    const problem = topProblem(topMount);
    if (problem !== null) throw new SysprimeError('BACKEND', problem, { hint: topHint });
    const dev = topMount.dev;
    return { topMount, mounts: all.filter((m) => m.fsType === 'btrfs' && m.dev === dev), all };
  }

  /** Mounts of one environment (its subvolume is the mount's root). */
  const mountsOf = (fs: FsView, name: string): MountinfoEntry[] => fs.mounts.filter((m) => m.root === slashed(environmentPath(name)));

  /** Deletions deleteLater started and that have not finished. */
  const deleting = new Set<Promise<void>>();

  async function deletionsDone(): Promise<void> {
    while (deleting.size > 0) await Promise.all(deleting);
  }

  function deleteLater(rel: string): void {
    const done: Promise<void> = deleteSubvolumeTree(rel, [])
      .then(
        () => undefined,
        (err: unknown) => log.warn(`could not delete ${rel}: ${messageOf(err)}; \`sysprime\` removes it on its next recovery`),
      )
      .finally(() => deleting.delete(done));
    deleting.add(done);
  }

  /** The subvolumes, once what deleteLater deletes is gone: a listing never shows one half deleted. */
  async function subvolumes(): Promise<SubvolumeListEntry[]> {
    await deletionsDone();
    return listSubvolumes(top);
  }

  function findEnvironmentEntry(list: readonly SubvolumeListEntry[], name: string): SubvolumeListEntry {
    const entry = list.find((s) => s.path === environmentPath(name));
    if (entry === undefined) {
      throw new SysprimeError('NOT_FOUND', `no environment named "${name}" on ${describe()}`, { hint: 'see `sysprime list`' });
    }
    return entry;
  }

  function refuseExisting(list: readonly SubvolumeListEntry[], name: string): void {
    if (list.some((s) => s.path === environmentPath(name))) {
      throw new SysprimeError('EXISTS', `an environment named "${name}" already exists on ${describe()}`, {
        hint: 'pick another name, or destroy the old one first',
      });
    }
  }

  /** The one place subvolumes are deleted: only ever below ROOT/, nested ones first. */
  async function deleteSubvolumeTree(rel: string, list: readonly SubvolumeListEntry[]): Promise<string[]> {
    const parts = rel.split('/');
    if (parts[0] !== ROOT_DIR || parts.length < 2 || parts.some((p) => p === '' || p === '.' || p === '..') || rel.startsWith(`${ROOT_DIR}/.sysprime`)) {
      throw new SysprimeError('REFUSED', `refusing to delete ${rel}: sysprime deletes only subvolumes below ${ROOT_DIR}/`);
    }
    const nested = list
      .filter((s) => s.path.startsWith(`${rel}/`))
      .map((s) => s.path)
      .sort((a, b) => b.split('/').length - a.split('/').length || b.localeCompare(a));
    for (const n of nested) {
      log.info(`deleting nested subvolume ${n}`);
      await deleteSubvolumeAt(abs(n));
    }
    await deleteSubvolumeAt(abs(rel));
    // Btrfs frees a deleted subvolume's space in the background; wait for it,
    // so that "destroyed" means the room is there (a staging undone after
    // filling the pool is followed at once by one that must fit).
    // The cleaner only runs after a transaction commit, so commit first.
    const ids = list.filter((s) => s.path === rel || s.path.startsWith(`${rel}/`)).map((s) => String(s.id));
    if (ids.length > 0) {
      try {
        await btrfs(['filesystem', 'sync', top]);
        await btrfs(['subvolume', 'sync', top, ...ids], { timeout: 10 * 60 * 1000 });
      } catch (err) {
        log.warn(`${rel} is deleted; its space is still being freed in the background (${messageOf(err)})`);
      }
    }
    return [...nested, rel];
  }

  /** Delete a leftover `.partial-` subvolume before reusing its name. */
  async function clearPartial(rel: string, list: readonly SubvolumeListEntry[], why = 'left by an interrupted run'): Promise<void> {
    if (list.some((s) => s.path === rel)) {
      log.warn(`deleting ${rel}, ${why}`);
      await deleteSubvolumeTree(rel, list);
    }
  }

  async function ensureDirs(): Promise<void> {
    await mkdir(abs(PRISTINE_DIR), { recursive: true });
    await mkdir(abs(SNAPSHOT_DIR), { recursive: true });
    await ensureMetaDirs(top);
  }

  /** Unmount a mount and everything mounted below it, deepest first; returns the mount points. */
  async function unmountTree(fs: FsView, mountPoint: string): Promise<string[]> {
    // Everything below it too, whatever its filesystem (a chroot's /dev, /proc, /sys, /run): deepest first.
    const below = unmountOrder(mountsAtOrBelow(fs.all, mountPoint)).map((m) => m.mountPoint);
    const done: string[] = [];
    for (const mp of [...new Set(below)]) {
      await run('umount', [mp]);
      done.push(mp);
    }
    return done;
  }

  /** The UUID of the filesystem mounted at top (fstab and boot-entry lines name it): the one reader below. */
  async function fsUuid(fs: FsView): Promise<string> {
    return uuidOf(fs.topMount.source, fs.topMount.mountPoint);
  }

  function describe(): string {
    return `btrfs at ${topGiven}`;
  }

  /** The state directory's owner (src/environments/state-owner.ts): the UUID, without mounting top. */
  async function identity(): Promise<string> {
    const m = mountAt(await readMountinfo(), await canonicalTop());
    const mounted = m !== undefined && m.fsType === 'btrfs' ? m : undefined;
    return `btrfs ${await uuidOf(mounted?.source ?? opts.device, mounted?.mountPoint)}`;
  }

  /**
   * The kernel lists every mounted Btrfs filesystem's devices under its UUID
   * (/sys/fs/btrfs/UUID/devices/NAME): the device a mount names gives the
   * filesystem without a process. blkid answers for a filesystem not mounted
   * (a configured device) or a device sysfs does not list; findmnt for a mount
   * whose source has no device node (`/dev/root` on a system booted without
   * an initramfs).
   */
  async function uuidOf(source: string | undefined, mountPoint: string | undefined): Promise<string> {
    if (source?.startsWith('/') === true) {
      let device: string | undefined;
      try {
        device = basename(await realpath(source));
      } catch {
        // No device node: findmnt below.
      }
      let uuids: string[] = [];
      try {
        if (device !== undefined) uuids = await readdir(SYSFS_BTRFS);
      } catch {
        // No sysfs (a container): blkid below.
      }
      for (const uuid of uuids) {
        if (/^[0-9a-f-]{36}$/.test(uuid) && (await exists(join(SYSFS_BTRFS, uuid, 'devices', device!)))) return uuid;
      }
      const uuid = (await run('blkid', ['-s', 'UUID', '-o', 'value', source], { allowFailure: true })).stdout.trim();
      if (uuid !== '') return uuid;
    }
    if (mountPoint !== undefined) {
      const uuid = (await run('findmnt', ['-n', '-o', 'UUID', '--mountpoint', mountPoint], { allowFailure: true })).stdout.trim();
      if (uuid !== '') return uuid;
    }
    throw new SysprimeError('BACKEND', `cannot find the UUID of the Btrfs filesystem at ${topGiven}${source === undefined ? ' (not mounted, and [btrfs] device is not set)' : ` (device ${source})`}`, {
      hint: 'check `findmnt` and `blkid`',
    });
  }

  async function probe(): Promise<void> {
    await btrfsVersion();
    const canon = await canonicalTop();
    if (!(await exists(canon))) {
      if (opts.device !== undefined && (await exists(opts.device))) return;
      throw new SysprimeError('BACKEND', `${topGiven} does not exist`, { hint: topHint });
    }
    const m = mountAt(await readMountinfo(), canon);
    if (m === undefined) {
      if (opts.device !== undefined) {
        if (await exists(opts.device)) return;
        throw new SysprimeError('NOT_FOUND', `${topGiven} is not mounted and the configured device ${opts.device} does not exist`, {
          hint: 'set [btrfs] device to the block device of the Btrfs filesystem',
        });
      }
      throw new SysprimeError('BACKEND', `${topGiven} is not a mount point, so it is not the top-level subvolume of a Btrfs filesystem`, {
        hint: `${topHint}; or set [btrfs] device and sysprime mounts it`,
      });
    }
    const problem = topProblem(m);
    if (problem !== null) throw new SysprimeError('BACKEND', problem, { hint: topHint });
  }

  /**
   * The top-level mount sysprime made stays until the machine reboots (it is
   * below /run): unmounting it when this process ends would pull it from
   * under another sysprime that found it mounted and uses it now (at boot,
   * the first-boot reintegration, boot-complete and an admin's `list` run
   * side by side).
   */
  async function close(): Promise<void> {
    await deletionsDone();
    if (mountedTopOurselves) log.debug(`leaving ${topGiven} mounted for the other sysprime processes of this boot`);
  }

  return {
    get top() {
      return top;
    },
    topGiven,
    device: opts.device,
    privateDir,
    sharedSubvolumes,
    abs,
    describe,
    probe,
    view,
    mountsOf,
    subvolumes,
    deleteLater,
    findEnvironmentEntry,
    refuseExisting,
    deleteSubvolumeTree,
    clearPartial,
    ensureDirs,
    unmountTree,
    fsUuid,
    identity,
    close,
  };
}
