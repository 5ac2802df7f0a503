/**
 * The Btrfs backend. The top-level subvolume (id 5) is mounted at `top`;
 * environments are subvolumes ROOT/<name>, pristine states read-only
 * snapshots ROOT/.pristine/<name>, metadata JSON files under ROOT/.sysprime/
 * (meta.ts). Everything is read from btrfs-progs and /proc/self/mountinfo on
 * each call; nothing is cached between calls, so another tool changing the
 * filesystem cannot make this one act on a stale picture.
 *
 * Crash safety: subvolumes are made under a `.partial-` name, their metadata
 * written, then renamed into place; destroy renames to a `.partial-` name
 * first. recover() deletes whatever `.partial-` subvolumes remain.
 */
import { lstat, mkdir, readFile, realpath, rename, rm, stat, statfs } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { SysprimeError, errnoOf, messageOf } from '../../errors.js';
import { log } from '../../log.js';
import { faultPoint } from '../../process/fault.js';
import { mountedThereAlready, refuseDestroy, refuseRename, refuseUnmountingRoot } from '../refusals.js';
import { run } from '../../process/run.js';
import { checkName, nameProblem } from '../../names.js';
import type { Backend, ChangeListing, EnvironmentInfo, OpenTree, PathChange, PristineInfo, StateHome } from '../types.js';
import {
  ENV_META_DIR,
  PARTIAL_PREFIX,
  PRISTINE_DIR,
  PRISTINE_META_DIR,
  RETIRED_SEPARATOR,
  ROOT_DIR,
  STATE_SUBVOLUME,
  environmentPath,
  partialEnvironmentPath,
  partialPristinePath,
  pristinePath,
  driftSnapshotPath,
  retiredPristineBase,
  roleOf,
  DEFAULT_SHARED_SUBVOLUMES,
} from './layout.js';
import { holdsFiles, placeNested, planNested } from './nested.js';
import {
  ensureMetaDirs,
  envMetaFile,
  listMetaNames,
  pristineMetaFile,
  readEnvironmentMeta,
  readPristineMeta,
  removeMetaFile,
  removeTempFiles,
  writeEnvironmentMeta,
  writePristineMeta,
} from './meta.js';
import { mountSubvolumeId, shareLineage, type SubvolumeListEntry } from './parse.js';
import { isAtOrBelow, mountAt, parseMountinfo, type MountinfoEntry } from '../../os/mounts.js';
import { parseSendDump } from './send-dump.js';
import { detachRootSubvolume } from './root-fstab.js';
import {
  btrfs,
  btrfsVersion,
  createSubvolume,
  deleteSubvolumeAt,
  getDefaultSubvolume,
  listSubvolumes,
  qgroupExclusive,
  sendDump,
  setDefaultSubvolume,
  showSubvolume,
  snapshotSubvolume,
} from './progs.js';

/** Where staging mounts environments privately; recover() unmounts what a crash left there. */
export const DEFAULT_PRIVATE_DIR = '/run/sysprime/private';

const TOP_LEVEL_ID = 5;

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

export interface BtrfsBackend extends Backend {
  /** Unmount `top` if this backend mounted it itself; nothing otherwise. */
  close(): Promise<void>;
}

/** What one call sees of the filesystem: its mount at top and every mount of it. */
interface FsView {
  topMount: MountinfoEntry;
  /** Every mount of the same filesystem (same st_dev in mountinfo). */
  mounts: MountinfoEntry[];
  /** Every mount, of any filesystem (for what is mounted below an environment). */
  all: MountinfoEntry[];
}

interface PristineRecord extends PristineInfo {
  base: string;
  path: string;
}

const slashed = (rel: string): string => `/${rel}`;

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isDirectory();
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return false;
    throw err;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw err;
  }
}

export function createBtrfsBackend(opts: BtrfsBackendOptions): BtrfsBackend {
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
    await run('mount', ['-t', 'btrfs', '-o', 'subvolid=5', device, topGiven]);
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

  async function subvolumes(): Promise<SubvolumeListEntry[]> {
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

  async function pristines(list: readonly SubvolumeListEntry[]): Promise<PristineRecord[]> {
    const envNames = new Set(list.flatMap((s) => { const r = roleOf(s.path); return r.role === 'environment' ? [r.name] : []; }));
    const out: PristineRecord[] = [];
    for (const s of list) {
      const role = roleOf(s.path);
      if (role.role !== 'pristine') continue;
      const meta = await readPristineMeta(top, role.base);
      if (meta === null) {
        log.warn(`${s.path} on ${describe()} has no sysprime metadata (${pristineMetaFile(top, role.base)}); it is not used as a pristine state`);
        continue;
      }
      const shown = await showSubvolume(abs(s.path));
      out.push({
        id: s.path,
        base: role.base,
        path: abs(s.path),
        generation: meta.generation,
        created: shown.created ?? new Date(0),
        holder: envNames.has(role.holder) ? role.holder : null,
      });
    }
    return out;
  }

  function pristineOf(all: readonly PristineRecord[], generation: number): PristineRecord {
    const p = all.find((x) => x.generation === generation);
    if (p === undefined) {
      throw new SysprimeError('NOT_FOUND', `${describe()} has no pristine snapshot of generation ${generation}`, {
        hint: 'see `sysprime list`; pristine states of pruned generations are gone',
      });
    }
    return p;
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
    await ensureMetaDirs(top);
  }

  /**
   * Make environment NAME: `make` fills a subvolume at the partial path, then
   * the metadata is written and the subvolume renamed into place.
   */
  async function makeEnvironment(name: string, generation: number, make: (dest: string) => Promise<void>): Promise<void> {
    checkName(name);
    await view();
    await ensureDirs();
    const list = await subvolumes();
    refuseExisting(list, name);
    const partial = partialEnvironmentPath(name);
    await clearPartial(partial, list);
    try {
      await make(abs(partial));
      // A clone must not mount its source's subvolume at / (installers' fstabs name it): see fstab.ts.
      await detachRootSubvolume(abs(partial), environmentPath(name));
      await writeEnvironmentMeta(top, name, { generation, meta: {} });
      await rename(abs(partial), abs(environmentPath(name)));
    } catch (err) {
      // The environment does not exist (refused above), so its metadata file and the partial subvolume are ours to remove.
      await removeMetaFile(envMetaFile(top, name)).catch(() => undefined);
      await subvolumes()
        .then((now) => clearPartial(partial, now, 'made by the failed attempt'))
        .catch((e: unknown) => log.warn(`could not delete ${partial}: ${messageOf(e)}; \`sysprime\` removes it on its next recovery`));
      throw err;
    }
  }

  /** Move a pristine snapshot to another base name, metadata first (a crash leaves an orphan file, which recover() removes). */
  async function renamePristine(from: string, to: string, source: string): Promise<void> {
    const meta = await readPristineMeta(top, from);
    if (meta === null) {
      throw new SysprimeError('BACKEND', `${pristinePath(from)} has no sysprime metadata`, {
        hint: `delete it (btrfs subvolume delete ${abs(pristinePath(from))}) or write ${pristineMetaFile(top, from)} by hand`,
      });
    }
    await writePristineMeta(top, to, { generation: meta.generation, source });
    await rename(abs(pristinePath(from)), abs(pristinePath(to)));
    await removeMetaFile(pristineMetaFile(top, from));
  }

  async function deletePristine(p: PristineRecord, list: readonly SubvolumeListEntry[]): Promise<void> {
    await deleteSubvolumeTree(p.id, list);
    await removeMetaFile(pristineMetaFile(top, p.base));
  }

  /** Unmount a mount and everything mounted below it, deepest first; returns the mount points. */
  async function unmountTree(fs: FsView, mountPoint: string): Promise<string[]> {
    const below = fs.all
      .filter((m) => isAtOrBelow(m.mountPoint, mountPoint))
      .map((m) => m.mountPoint)
      .sort((a, b) => b.split('/').length - a.split('/').length);
    const done: string[] = [];
    for (const mp of [...new Set(below)]) {
      await run('umount', [mp]);
      done.push(mp);
    }
    return done;
  }

  async function fsUuid(fs: FsView): Promise<string> {
    const res = await run('findmnt', ['-n', '-o', 'UUID', '--mountpoint', fs.topMount.mountPoint], { allowFailure: true });
    let uuid = res.stdout.trim();
    if (uuid === '' && fs.topMount.source.startsWith('/')) uuid = (await run('blkid', ['-s', 'UUID', '-o', 'value', fs.topMount.source], { allowFailure: true })).stdout.trim();
    if (uuid === '') throw new SysprimeError('BACKEND', `cannot find the UUID of the Btrfs filesystem at ${topGiven}`, { hint: 'check `blkid`' });
    return uuid;
  }

  /** Snapshot the nested content subvolumes of `sourceRel` into the new tree `dest` (see nested.ts). */
  async function copyNested(fs: FsView, list: readonly SubvolumeListEntry[], sourceRel: string, dest: string, name: string): Promise<void> {
    await placeNested(abs(sourceRel), sourceRel, dest, environmentPath(name), planNested(sourceRel, list, sharedSubvolumes), () => fsUuid(fs));
  }

  /**
   * What `adopt(source)` would take, and whether it must be snapshotted; refuses
   * (before anything is written) a source that cannot become an environment.
   */
  async function adoptSource(fs: FsView, list: readonly SubvolumeListEntry[], source: string): Promise<{ rel: string; topLevel: boolean; mustSnapshot: boolean }> {
    let rel: string;
    if (source === '/') {
      const root = mountAt(fs.all, '/');
      if (root === undefined || root.fsType !== 'btrfs' || root.dev !== fs.topMount.dev) {
        throw new SysprimeError('BACKEND', `the running root is not on ${describe()}`, {
          hint: 'set [btrfs] top to the top-level subvolume of the filesystem that holds /, or name the subvolume to adopt',
        });
      }
      rel = root.root.replace(/^\/+/, '');
    } else {
      rel = source.replace(/^\/+|\/+$/g, '');
      if (rel === '' || rel.split('/').some((p) => p === '.' || p === '..' || p === '')) {
        throw new SysprimeError('USAGE', `"${source}" is not a subvolume path relative to the top-level subvolume`, {
          hint: 'name it as `btrfs subvolume list` prints it, like "@", or pass "/" for the running root',
        });
      }
    }
    if (rel === ROOT_DIR || rel.startsWith(`${ROOT_DIR}/`)) {
      throw new SysprimeError('REFUSED', `${rel} is already below ${ROOT_DIR}/`, { hint: 'use `sysprime rename` for an environment' });
    }
    const topLevel = rel === '';
    if (topLevel) return { rel, topLevel, mustSnapshot: true };
    if (!list.some((s) => s.path === rel)) {
      const what = source === '/' ? `the running root (${rel} on ${describe()})` : rel;
      if (await isDirectory(abs(rel))) {
        throw new SysprimeError('REFUSED', `${what} is a plain directory, not a subvolume, so it cannot be snapshotted as an environment`, {
          hint: `adopt the subvolume that holds it (see \`btrfs subvolume list ${top}\`), or move the system into a subvolume of its own first`,
        });
      }
      throw new SysprimeError('NOT_FOUND', `no subvolume ${rel} on ${describe()}`, { hint: `see \`btrfs subvolume list ${top}\`` });
    }
    const mounted = fs.mounts.some((m) => isAtOrBelow(m.root, slashed(rel)));
    const readonly = (await showSubvolume(abs(rel))).readonly;
    // A mounted subvolume (the running root) must stay where its mounts and fstab expect it; a read-only one would give a read-only environment.
    return { rel, topLevel, mustSnapshot: mounted || readonly };
  }

  function describe(): string {
    return `btrfs at ${topGiven}`;
  }

  const backend: BtrfsBackend = {
    kind: 'btrfs',
    describe,

    async probe() {
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
    },

    async ensureLayout() {
      await view();
      await ensureDirs();
    },

    async listEnvironments() {
      const fs = await view();
      const list = await subvolumes();
      const [defaultId, exclusive, allPristines] = await Promise.all([getDefaultSubvolume(top), qgroupExclusive(top), pristines(list)]);
      const out: EnvironmentInfo[] = [];
      for (const s of list) {
        const role = roleOf(s.path);
        if (role.role !== 'environment') continue;
        if (nameProblem(role.name) !== null) {
          log.debug(`${s.path}: not a usable environment name, left out`);
          continue;
        }
        const meta = await readEnvironmentMeta(top, role.name);
        // -1: no metadata (a subvolume made by hand under ROOT/); `setGeneration` records one.
        const generation = meta?.generation ?? -1;
        const shown = await showSubvolume(abs(s.path));
        const mounts = mountsOf(fs, role.name);
        const booted = mounts.some((m) => m.mountPoint === '/');
        out.push({
          name: role.name,
          id: s.path,
          generation,
          created: shown.created ?? new Date(0),
          // Btrfs hands out subvolume ids in increasing order and never reuses them.
          createdOrder: s.id,
          spaceUnique: exclusive?.get(s.id) ?? null,
          mounted: booted ? '/' : (mounts[0]?.mountPoint ?? null),
          pristine: allPristines.find((p) => p.generation === generation)?.id ?? null,
          booted,
          isDefault: s.id === defaultId,
          meta: meta?.meta ?? {},
        });
      }
      return out;
    },

    async listPristines() {
      await view();
      return (await pristines(await subvolumes())).map(({ id, generation, created, holder }) => ({ id, generation, created, holder }));
    },

    async checkAdoption(source, name) {
      const fs = await view();
      await adoptSource(fs, await subvolumes(), source);
      // The adopted subvolume is snapshotted or moved to ROOT/<name>: its installer's name (@rootfs, @) is not kept.
      return { name: checkName(name ?? 'default') };
    },

    async adopt(source, name, generation) {
      checkName(name);
      const fs = await view();
      const list = await subvolumes();
      const { rel, topLevel, mustSnapshot } = await adoptSource(fs, list, source);
      const others = list.filter((s) => s.topLevel === TOP_LEVEL_ID && s.path !== rel && s.path !== STATE_SUBVOLUME && roleOf(s.path).role === 'foreign').map((s) => s.path);
      if (others.length > 0) log.info(`not sysprime's, left as they are and never destroyed: ${others.join(', ')}`);
      if (mustSnapshot) {
        await makeEnvironment(name, generation, async (dest) => {
          await snapshotSubvolume(abs(rel), dest, false);
          // A snapshot of the top level holds a copy of ROOT/ (metadata, empty stubs of the environments): not part of the system.
          if (topLevel) await rm(join(dest, ROOT_DIR), { recursive: true, force: true });
          else await copyNested(fs, list, rel, dest, name);
          // Below the top level every other subvolume is "nested" (@home, other tools' ones): none is copied, and the admin is told.
          const skipped = topLevel ? list.filter((s) => s.topLevel === TOP_LEVEL_ID && s.path !== STATE_SUBVOLUME && roleOf(s.path).role === 'foreign').map((s) => `/${s.path}`) : [];
          if (skipped.length > 0) {
            log.warn(`${environmentPath(name)}: the subvolumes ${skipped.join(', ')} of the top level are not copied (empty directories there); mount the ones the system needs from fstab`);
          }
        });
        log.info(`adopted ${topLevel ? 'the top-level subvolume' : rel} as ${environmentPath(name)} (a snapshot; ${topLevel ? 'it' : rel} stays until removed by hand)`);
        return;
      }
      await ensureDirs();
      refuseExisting(list, name);
      // Nothing mounts it: moving it is cheaper than a snapshot and keeps its nested subvolumes, id and default flag.
      await writeEnvironmentMeta(top, name, { generation, meta: {} });
      try {
        await rename(abs(rel), abs(environmentPath(name)));
      } catch (err) {
        await removeMetaFile(envMetaFile(top, name));
        throw new SysprimeError('IO', `cannot move ${rel} to ${environmentPath(name)}: ${messageOf(err)}`, { cause: err });
      }
      try {
        // Its fstab still names the subvolume by its old path, which no longer exists.
        await detachRootSubvolume(abs(environmentPath(name)), environmentPath(name));
      } catch (err) {
        // Put it back as it was: adoption is all or nothing.
        await rename(abs(environmentPath(name)), abs(rel));
        await removeMetaFile(envMetaFile(top, name));
        throw err;
      }
      log.info(`adopted ${rel} as ${environmentPath(name)} (moved)`);
    },

    async createEmpty(name, generation) {
      await makeEnvironment(name, generation, (dest) => createSubvolume(dest));
    },

    async takePristine(name, generation) {
      checkName(name);
      await view();
      await ensureDirs();
      let list = await subvolumes();
      findEnvironmentEntry(list, name);
      const all = await pristines(list);
      const same = all.find((p) => p.generation === generation);
      if (same !== undefined) {
        throw new SysprimeError('EXISTS', `generation ${generation} already has a pristine snapshot, ${same.id}`, {
          hint: 'a generation has one pristine state; destroy it first (prune) to take it again',
        });
      }
      const current = all.find((p) => p.base === name);
      if (current !== undefined) {
        // One pristine per environment name; the older one is kept, renamed, while other environments may still need it.
        await renamePristine(name, retiredPristineBase(name, current.generation), name);
        log.info(`kept ${current.id} of generation ${current.generation} as ${pristinePath(retiredPristineBase(name, current.generation))}`);
      } else if (list.some((s) => s.path === pristinePath(name))) {
        throw new SysprimeError('BACKEND', `${pristinePath(name)} exists but has no sysprime metadata`, {
          hint: `delete it (btrfs subvolume delete ${abs(pristinePath(name))}) or write ${pristineMetaFile(top, name)} by hand`,
        });
      }
      const partial = partialPristinePath(name);
      list = await subvolumes();
      await clearPartial(partial, list);
      await snapshotSubvolume(abs(environmentPath(name)), abs(partial), true);
      try {
        await writePristineMeta(top, name, { generation, source: name });
        await rename(abs(partial), abs(pristinePath(name)));
      } catch (err) {
        await removeMetaFile(pristineMetaFile(top, name)).catch(() => undefined);
        await deleteSubvolumeAt(abs(partial)).catch(() => undefined);
        throw err;
      }
      // The environment now is exactly the state of that generation.
      const meta = await readEnvironmentMeta(top, name);
      await writeEnvironmentMeta(top, name, { generation, meta: meta?.meta ?? {} });
      const shown = await showSubvolume(abs(pristinePath(name)));
      return { id: pristinePath(name), generation, created: shown.created ?? new Date(0), holder: name };
    },

    async cloneFromPristine(generation, name, nestedFrom) {
      const fs = await view();
      const list = await subvolumes();
      const p = pristineOf(await pristines(list), generation);
      // A read-only pristine holds no nested subvolumes: they come from the environment being carried on, as it is now.
      const source = nestedFrom ?? p.holder;
      if (nestedFrom !== undefined) checkName(nestedFrom);
      const sourceRel = source !== null && list.some((s) => s.path === environmentPath(source)) ? environmentPath(source) : null;
      await makeEnvironment(name, generation, async (dest) => {
        await snapshotSubvolume(p.path, dest, false);
        if (sourceRel !== null) await copyNested(fs, list, sourceRel, dest, name);
      });
    },

    async cloneFromEnvironment(source, name) {
      checkName(source);
      await view();
      findEnvironmentEntry(await subvolumes(), source);
      const meta = await readEnvironmentMeta(top, source);
      if (meta === null) {
        throw new SysprimeError('BACKEND', `environment "${source}" has no sysprime metadata, so its generation is unknown`, {
          hint: `record it first (sysprime adopts it with a generation), or write ${envMetaFile(top, source)}`,
        });
      }
      const fs = await view();
      const list = await subvolumes();
      await makeEnvironment(name, meta.generation, async (dest) => {
        await snapshotSubvolume(abs(environmentPath(source)), dest, false);
        await copyNested(fs, list, environmentPath(source), dest, name);
      });
    },

    async setGeneration(name, generation) {
      checkName(name);
      await view();
      findEnvironmentEntry(await subvolumes(), name);
      await ensureMetaDirs(top);
      const meta = await readEnvironmentMeta(top, name);
      await writeEnvironmentMeta(top, name, { generation, meta: meta?.meta ?? {} });
    },

    async destroyEnvironment(name) {
      checkName(name);
      const fs = await view();
      let list = await subvolumes();
      const entry = findEnvironmentEntry(list, name);
      const envRel = environmentPath(name);
      const defaultId = await getDefaultSubvolume(top);
      const defaultEntry = list.find((s) => s.id === defaultId);
      refuseDestroy(name, {
        // Its nested subvolumes' mounts too: they go with it.
        mountPoints: fs.mounts.filter((m) => isAtOrBelow(m.root, slashed(envRel))).map((m) => m.mountPoint),
        isDefault: defaultId === entry.id || (defaultEntry !== undefined && defaultEntry.path.startsWith(`${envRel}/`)),
      });
      // Nested subvolumes go with the environment, except what is not its own to delete: snapper's snapshots, shared data.
      const nested = planNested(envRel, list, sharedSubvolumes);
      const notOwn: string[] = [];
      // An empty shared one (systemd makes /var/lib/machines in every root) goes; snapper's snapshots, even empty ones, stay.
      for (const inner of nested.shared) if (await holdsFiles(abs(`${envRel}/${inner}`))) notOwn.push(inner);
      for (const inner of nested.snapper) {
        if (list.some((s) => s.path.startsWith(`${envRel}/${inner}/`)) || (await holdsFiles(abs(`${envRel}/${inner}`)))) notOwn.push(inner);
      }
      if (notOwn.length > 0) {
        const snapper = notOwn.some((i) => i.startsWith('.snapshots'));
        throw new SysprimeError('REFUSED', `environment "${name}" holds data that is not its own in nested subvolumes: ${notOwn.map((i) => `/${i}`).join(', ')}`, {
          hint:
            `move ${notOwn.map((i) => abs(`${envRel}/${i}`)).join(', ')} to the top level (mv) and mount ${notOwn.length > 1 ? 'them' : 'it'} from there in fstab` +
            `${snapper ? ", or delete snapper's snapshots with snapper" : ''}, then destroy the environment`,
        });
      }
      const meta = await readEnvironmentMeta(top, name);
      const partial = partialEnvironmentPath(name);
      await clearPartial(partial, list);
      // Out of its real name first: a crash halfway leaves a `.partial-` subvolume for recover(), never a half-deleted environment.
      await rename(abs(envRel), abs(partial));
      faultPoint('backend:btrfs', 'destroy-renamed');
      list = await subvolumes();
      await deleteSubvolumeTree(partial, list);
      faultPoint('backend:btrfs', 'destroy-deleted');
      await removeMetaFile(envMetaFile(top, name));

      list = await subvolumes();
      const inUse = new Set<number>();
      for (const s of list) {
        const role = roleOf(s.path);
        if (role.role !== 'environment') continue;
        const m = await readEnvironmentMeta(top, role.name);
        if (m !== null) inUse.add(m.generation);
      }
      for (const p of await pristines(list)) {
        const mine = p.base.split(RETIRED_SEPARATOR)[0] === name || (meta !== null && p.generation === meta.generation);
        if (mine && !inUse.has(p.generation)) {
          log.info(`deleting ${p.id}: no environment of generation ${p.generation} is left`);
          await deletePristine(p, list);
        }
      }
    },

    async destroyPristine(generation) {
      await view();
      const list = await subvolumes();
      const all = (await pristines(list)).filter((p) => p.generation === generation);
      pristineOf(all, generation); // NOT_FOUND when there is none
      const users: string[] = [];
      for (const s of list) {
        const role = roleOf(s.path);
        if (role.role === 'environment' && (await readEnvironmentMeta(top, role.name))?.generation === generation) users.push(role.name);
      }
      if (users.length > 0) {
        throw new SysprimeError('REFUSED', `the pristine snapshot of generation ${generation} is still the base of ${users.join(', ')}`, {
          hint: 'drift of those environments is measured against it; destroy them first',
        });
      }
      for (const p of all) await deletePristine(p, list);
    },

    async renameEnvironment(from, to) {
      checkName(from);
      checkName(to);
      const fs = await view();
      const list = await subvolumes();
      findEnvironmentEntry(list, from);
      refuseExisting(list, to);
      refuseRename(from, mountsOf(fs, from).map((m) => m.mountPoint));
      const meta = await readEnvironmentMeta(top, from);
      if (meta !== null) await writeEnvironmentMeta(top, to, meta);
      await rename(abs(environmentPath(from)), abs(environmentPath(to)));
      await removeMetaFile(envMetaFile(top, from));

      // Its pristine snapshots follow the name, so takePristine finds them again.
      const all = await pristines(list);
      for (const p of all.filter((x) => x.base === from || x.base.startsWith(`${from}${RETIRED_SEPARATOR}`))) {
        const target = to + p.base.slice(from.length);
        const squatter = all.find((x) => x.base === target);
        if (squatter !== undefined) {
          // Left by a destroyed environment of the same name and still needed by others: keep it, retired.
          await renamePristine(target, retiredPristineBase(to, squatter.generation), to);
        }
        await renamePristine(p.base, target, to);
      }
    },

    async mount(name, dir) {
      checkName(name);
      const fs = await view();
      findEnvironmentEntry(await subvolumes(), name);
      const target = resolve(dir);
      if (mountedThereAlready(name, mountsOf(fs, name).map((m) => m.mountPoint), target)) return;
      await mkdir(target, { recursive: true });
      const device = fs.topMount.source.startsWith('/') ? fs.topMount.source : (opts.device ?? fs.topMount.source);
      await run('mount', ['-t', 'btrfs', '-o', `subvol=/${environmentPath(name)}`, device, target]);
    },

    async unmount(name) {
      checkName(name);
      const fs = await view();
      findEnvironmentEntry(await subvolumes(), name);
      refuseUnmountingRoot(name, mountsOf(fs, name).map((m) => m.mountPoint));
      for (const m of mountsOf(fs, name)) {
        await unmountTree(await view(), m.mountPoint);
      }
    },

    async stateHome(stateDir: string): Promise<StateHome | null> {
      const fs = await view();
      const uuid = await fsUuid(fs);
      const target = resolve(stateDir);
      const at = (await run('findmnt', ['-n', '-o', 'UUID', '--target', target], { allowFailure: true })).stdout.trim();
      if (at !== uuid) return null;
      const there = mountAt(fs.all, target);
      // The admin's own subvolume mounted there is already a home: never mounted over.
      if (there !== undefined && there.mountPoint === target && there.root !== `/${STATE_SUBVOLUME}`) return null;
      const ready = there?.mountPoint === target && there.root === `/${STATE_SUBVOLUME}`;
      return {
        id: STATE_SUBVOLUME,
        ready,
        fstabLine: `UUID=${uuid} ${target} btrfs subvol=/${STATE_SUBVOLUME} 0 0`,
        async ensure() {
          const done: string[] = [];
          const list = await subvolumes();
          if (!list.some((e) => e.path === STATE_SUBVOLUME)) {
            await run('btrfs', ['-q', 'subvolume', 'create', abs(STATE_SUBVOLUME)]);
            done.push(`created subvolume ${STATE_SUBVOLUME} for the state database`);
          }
          const now = await view();
          const mounted = mountAt(now.all, target);
          if (mounted === undefined || mounted.root !== `/${STATE_SUBVOLUME}`) {
            await mkdir(target, { recursive: true });
            const device = now.topMount.source.startsWith('/') ? now.topMount.source : (opts.device ?? now.topMount.source);
            await run('mount', ['-t', 'btrfs', '-o', `subvol=/${STATE_SUBVOLUME}`, device, target]);
            done.push(`mounted ${STATE_SUBVOLUME} at ${target}`);
          }
          return { done, beside: null };
        },
      };
    },

    async openEnvironment(name): Promise<OpenTree> {
      checkName(name);
      await view();
      findEnvironmentEntry(await subvolumes(), name);
      // The top level is mounted: the environment is a directory below it, no mount needed.
      return { path: abs(environmentPath(name)), release: async () => undefined };
    },

    async openPristine(generation): Promise<OpenTree> {
      await view();
      const p = pristineOf(await pristines(await subvolumes()), generation);
      return { path: p.path, release: async () => undefined };
    },

    async changesSincePristine(name, generation): Promise<ChangeListing> {
      checkName(name);
      await view();
      const list = await subvolumes();
      const env = findEnvironmentEntry(list, name);
      const pristine = pristineOf(await pristines(list), generation);
      const [envShown, pristineShown] = await Promise.all([showSubvolume(abs(env.path)), showSubvolume(pristine.path)]);
      if (!pristineShown.readonly) return { ok: false, reason: `${pristine.id} is not read-only` };
      if (!shareLineage(envShown, pristineShown)) {
        return { ok: false, reason: `${env.path} and ${pristine.id} are not snapshots of one another or of a common subvolume` };
      }
      // send needs a read-only source: a snapshot of the environment as it is now, under a
      // `.partial-` name so recover() deletes it if this process dies before it does.
      const temp = driftSnapshotPath(name, process.pid);
      await clearPartial(temp, list);
      await snapshotSubvolume(abs(env.path), abs(temp), true);
      let changes: PathChange[];
      try {
        changes = parseSendDump(await sendDump(pristine.path, abs(temp)));
      } finally {
        await deleteSubvolumeTree(temp, []).catch((err: unknown) =>
          log.warn(`could not delete ${temp}: ${messageOf(err)}; \`sysprime\` removes it on its next recovery`),
        );
      }
      // Nested subvolumes are not in the stream (nor in a snapshot): their roots are looked at again.
      for (const s of list) {
        if (s.path.startsWith(`${env.path}/`)) changes.push({ kind: 'modified', path: Buffer.from(s.path.slice(env.path.length), 'utf8').toString('latin1') });
      }
      return { ok: true, changes, source: `btrfs send --no-data -p ${pristine.id}` };
    },

    async changesBetweenPristines(from, to): Promise<ChangeListing> {
      await view();
      const list = await subvolumes();
      const all = await pristines(list);
      const older = pristineOf(all, from);
      const newer = pristineOf(all, to);
      const [olderShown, newerShown] = await Promise.all([showSubvolume(older.path), showSubvolume(newer.path)]);
      for (const [p, shown] of [[older, olderShown], [newer, newerShown]] as const) {
        if (!shown.readonly) return { ok: false, reason: `${p.id} is not read-only` };
      }
      // Staging snapshots the new pristine state from a clone of the old one: related through
      // that clone (its holder), whose parent is the old snapshot. Between unrelated subvolumes
      // send would list nearly every file, so the caller walks instead.
      let related = shareLineage(olderShown, newerShown);
      if (!related && newer.holder !== null && newerShown.parentUuid !== null) {
        const holder = list.find((s) => s.path === environmentPath(newer.holder!));
        const holderShown = holder === undefined ? undefined : await showSubvolume(abs(holder.path));
        related = holderShown !== undefined && holderShown.uuid === newerShown.parentUuid && shareLineage(holderShown, olderShown);
      }
      if (!related) return { ok: false, reason: `${newer.id} does not descend from ${older.id}` };
      const changes = parseSendDump(await sendDump(older.path, newer.path));
      return { ok: true, changes, source: `btrfs send --no-data -p ${older.id} ${newer.id}` };
    },

    async setDefault(name) {
      checkName(name);
      await view();
      const entry = findEnvironmentEntry(await subvolumes(), name);
      await setDefaultSubvolume(entry.id, top);
    },

    async setMeta(name, patch) {
      checkName(name);
      await view();
      findEnvironmentEntry(await subvolumes(), name);
      const current = await readEnvironmentMeta(top, name);
      if (current === null) {
        throw new SysprimeError('BACKEND', `environment "${name}" has no sysprime metadata yet`, {
          hint: 'record its generation first (setGeneration), then its other metadata',
        });
      }
      const meta = { ...current.meta };
      for (const [k, v] of Object.entries(patch)) {
        if (v === null) delete meta[k];
        else meta[k] = v;
      }
      await writeEnvironmentMeta(top, name, { generation: current.generation, meta });
    },

    async recover() {
      const done: string[] = [];
      let fs = await view();
      const isPartialRoot = (root: string): boolean =>
        root.startsWith(slashed(`${ROOT_DIR}/${PARTIAL_PREFIX}`)) || root.startsWith(slashed(`${PRISTINE_DIR}/${PARTIAL_PREFIX}`));
      const stale = fs.mounts.filter(
        (m) => m.mountPoint !== '/' && m.root.startsWith(slashed(`${ROOT_DIR}/`)) && (isAtOrBelow(m.mountPoint, privateDir) || isPartialRoot(m.root)),
      );
      for (const m of stale.sort((a, b) => a.mountPoint.split('/').length - b.mountPoint.split('/').length)) {
        fs = await view();
        if (!fs.all.some((x) => x.id === m.id)) continue; // went with a parent already
        for (const mp of await unmountTree(fs, m.mountPoint)) done.push(`unmounted ${mp}`);
      }

      for (const f of await removeTempFiles(top)) done.push(`removed temporary file ${f}`);

      let list = await subvolumes();
      for (const s of list.filter((x) => roleOf(x.path).role === 'partial')) {
        await deleteSubvolumeTree(s.path, list);
        done.push(`deleted half-made subvolume ${s.path}`);
        list = await subvolumes();
      }

      const paths = new Set(list.map((s) => s.path));
      for (const n of await listMetaNames(top, 'envs')) {
        if (!paths.has(environmentPath(n))) {
          await removeMetaFile(envMetaFile(top, n));
          done.push(`removed metadata of missing environment ${join(ENV_META_DIR, `${n}.json`)}`);
        }
      }
      for (const n of await listMetaNames(top, 'pristine')) {
        if (!paths.has(pristinePath(n))) {
          await removeMetaFile(pristineMetaFile(top, n));
          done.push(`removed metadata of missing pristine snapshot ${join(PRISTINE_META_DIR, `${n}.json`)}`);
        }
      }
      return done;
    },

    async bootRoot(name) {
      checkName(name);
      const fs = await view();
      return { fs: 'btrfs', uuid: await fsUuid(fs), subvolume: environmentPath(name) };
    },

    async space() {
      await view();
      const st = await statfs(top);
      return { size: st.blocks * st.bsize, free: st.bavail * st.bsize };
    },

    async close() {
      if (!mountedTopOurselves) return;
      await run('umount', [topGiven]);
      mountedTopOurselves = false;
    },
  };
  return backend;
}
