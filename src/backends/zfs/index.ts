/**
 * The ZFS backend: environments are `<pool>/ROOT/<name>` (mountpoint `/`,
 * canmount=noauto), pristine snapshots are snapshots of the environment they
 * were taken from, marked with their generation in a user property, and all
 * metadata lives in `org.sysprime:` user properties. Works with OpenZFS 2.x
 * and with zfs-fuse; see docs/backend-zfs.md.
 *
 * An environment may have child datasets (Ubuntu's zsys layout): they are
 * part of it. Its snapshots are recursive, a clone is made child by child
 * under a temporary name and renamed into place whole, children are
 * `canmount=noauto` (or `off`) so that only the booted environment's are
 * mounted, by the initramfs, and private mounts mount them too.
 *
 * Where the machine has a boot pool (the OpenZFS guides' `bpool`), each
 * environment's boot dataset `<bpool>/BOOT/<name>` is part of it too, carried
 * beside the root (boot-pool.ts) and mounted at its /boot.
 */
import { randomBytes } from 'node:crypto';
import { rmdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { SysprimeError } from '../../errors.js';
import { checkName, checkSnapshotName } from '../../names.js';
import { log } from '../../log.js';
import { run, runStreaming } from '../../process/run.js';
import { releasedOnce } from '../open-tree.js';
import { processAlive } from '../../process/alive.js';
import { stopProcessesIn } from '../../process/reap.js';
import { faultPoint } from '../../process/fault.js';
import { listingTooLong, mountedThereAlready, refuseDestroy, refuseRename, refuseUnmountingRoot } from '../refusals.js';
import type { Backend, ChangeListing, EnvironmentInfo, OpenTree, PristineInfo, SnapshotInfo } from '../types.js';
import { altrootOf, datasetMissing, readOne, readTree, receiveArgs, zfs, zpool } from './commands.js';
import { FramedStreams, receiveFramed, sendFramed } from './child-streams.js';
import { destroyWithDependents } from './destroy.js';
import { diffOptions, parseZfsDiff } from './diff.js';
import { HOLD_COUNT, HOLD_TAG, holdPristine, releaseForDestroy, unheldPristines } from './holds.js';
import {
  COPY_SNAPSHOT_PREFIX,
  EXPORT_SNAPSHOT_PREFIX,
  sweepableCopy,
  INTERNAL_PROPS,
  bootContainer,
  bootDataset,
  NS,
  PRISTINE_SNAPSHOT,
  childPristine,
  PROP,
  TEMPORARY_PREFIX,
  assertInsideRoot,
  environmentDataset,
  environmentNameOf,
  holderOf,
  isTemporaryDataset,
  rootDataset,
  shortSnapshotName,
} from './layout.js';
import { mountTree, restoreMountpoint, unmountTree, type ChildMount } from './mount.js';
import { findStateHome } from './state-home.js';
import { isSelfBind, mountsAtOrBelow, readMountinfo, readMounts, unmountOrder, type FstabEntry, type MountinfoEntry } from '../../os/mounts.js';
import {
  bootedDataset,
  carriedBootProperties,
  childSnapshotsOf,
  dependentsOf,
  environmentChildren,
  environmentsFrom,
  foreignRootsFrom,
  isManaged,
  isSnapshot,
  localProp,
  mountedChildren,
  mountTargetsOf,
  parseBootfs,
  pristinesFrom,
  prop,
  snapshotsFrom,
  snapshotsOf,
  uniqueName,
  withoutAltroot,
  type DatasetRecord,
  type EnvironmentChild,
} from './parse.js';
import { adoptionProblem, childrenProblem, KEY_PROPS, lockedKeyProblem } from './adoption.js';
import {
  DESTROYING,
  bootPristine,
  bootTemporaryFor,
  cloneBootDataset,
  findBootDataset,
  recordedBootPool,
  recoverBootPool,
  sweepBootSnapshots,
} from './boot-pool.js';
import { mountDataset, unmountDataset } from './mount.js';
import {
  claimAlive,
  claimMount,
  environmentMountDir,
  privateMountName,
  pristineMountDir,
  releaseClaim,
  sweepRunDir,
} from './private.js';
import { detectCapabilities, probePool, type ZfsCapabilities } from './probe.js';

export interface ZfsBackendOptions {
  pool: string;
  /** Directory for run-time state: private mount points live in `<stateDir>/mnt` and `<stateDir>/pristine`. Default /run/sysprime. */
  stateDir?: string;
}

const DEFAULT_RUN_DIR = '/run/sysprime';
/** Pool version 23 (zfs-fuse) keeps user property values up to 1024 bytes. */
const MAX_META_VALUE = 1024;
const META_KEY_RE = /^[a-z0-9][a-z0-9._+-]*$/;

function checkGeneration(generation: number): number {
  if (!Number.isSafeInteger(generation) || generation < 0) {
    throw new SysprimeError('USAGE', `generation ${generation} is not a whole number of 0 or more`);
  }
  return generation;
}

/** The user property that holds metadata `key`, once its key and value are found fit for one (null: to be cleared). */
function metaProperty(key: string, value: string | null): string {
  const property = `${NS}${key}`;
  if (!META_KEY_RE.test(key) || INTERNAL_PROPS.has(property)) {
    throw new SysprimeError('USAGE', `metadata key ${JSON.stringify(key)} cannot be used`, {
      hint: 'use lower-case letters, digits and . _ + - ; generation and saved-mountpoint are kept by sysprime itself',
    });
  }
  if (value !== null && (value.includes('\n') || Buffer.byteLength(value) > MAX_META_VALUE || value === '')) {
    throw new SysprimeError('USAGE', `metadata value for ${key} must be one non-empty line of at most ${MAX_META_VALUE} bytes`);
  }
  return property;
}

/** `20261122T030102Z`: sorts by time and says when the copy was made. */
function timestamp(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

export function createZfsBackend(opts: ZfsBackendOptions): Backend {
  const pool = opts.pool;
  const runDir = resolve(opts.stateDir ?? DEFAULT_RUN_DIR);
  const root = rootDataset(pool);
  let capabilities: Promise<ZfsCapabilities> | undefined;
  const caps = (): Promise<ZfsCapabilities> => (capabilities ??= detectCapabilities());

  async function readRoot(props: readonly string[] | 'all'): Promise<DatasetRecord[]> {
    try {
      return await readTree(root, props);
    } catch (err) {
      if (datasetMissing(err)) return [];
      throw err;
    }
  }

  async function bootfs(): Promise<string | null> {
    const out = await zpool(['list', '-H', '-o', 'name,bootfs', pool]);
    return parseBootfs(out.stdout).get(pool) ?? null;
  }

  async function requireRoot(): Promise<void> {
    if ((await readOne(root, ['type'])) === null) {
      throw new SysprimeError('NOT_FOUND', `${root} does not exist`, { hint: 'run `sysprime init` to create the layout' });
    }
  }

  async function requireEnvironment(name: string, props: readonly string[] = ['type']): Promise<DatasetRecord> {
    const ds = environmentDataset(pool, name);
    const record = await readOne(ds, [...new Set([...props, PROP.generation])]);
    if (record === null) {
      throw new SysprimeError('NOT_FOUND', `environment ${JSON.stringify(name)} does not exist (no dataset ${ds})`, {
        hint: '`sysprime list` shows the environments',
      });
    }
    if (!isManaged(record)) {
      throw new SysprimeError('REFUSED', `${ds} was not made or adopted by sysprime: it is left as it is`, {
        hint: 'manage it with the tool that made it; `sysprime list` shows it among the other roots',
      });
    }
    return record;
  }

  /** The child datasets of `ds` (zsys), parents first. */
  async function childrenOf(ds: string): Promise<EnvironmentChild[]> {
    // The saved mount point too: mounting or unmounting next reads it with the mount point (one question fewer).
    return environmentChildren(await readTree(ds, ['type', 'canmount', 'mountpoint', PROP.savedMountpoint]), ds);
  }

  /** The children of `ds`, refused when one of them cannot be carried (adoption.childrenProblem). */
  async function carriedChildren(ds: string): Promise<EnvironmentChild[]> {
    const children = await childrenOf(ds);
    const problem = childrenProblem(ds, children);
    if (problem !== null) throw problem;
    return children;
  }

  /**
   * The `nested` part of an export: child datasets RELS of `ds` (parents
   * first), each a whole `zfs send` of its copy snapshot (after its half of
   * `pristine`, whole, and then from it, when that goes too), framed
   * (child-streams.ts), each removed after. The copy snapshots are those
   * the `environment` part took with the root's in one `snapshot -r`, so
   * root and children are of one moment (an apt run in between would
   * otherwise give a /var/lib/dpkg that does not describe the /usr sent).
   */
  async function sendChildren(ds: string, rels: readonly string[], out: NodeJS.WritableStream, pristine: string | null): Promise<void> {
    const short = childCopies.get(ds);
    if (short === undefined) throw new SysprimeError('BACKEND', `the children of ${ds} have no copy snapshot of this export: its environment part was not sent first`);
    const children = new Set((await carriedChildren(ds)).map((c) => c.rel));
    const gone = rels.find((rel) => !children.has(rel));
    if (gone !== undefined) throw new SysprimeError('BACKEND', `${ds}/${gone} is no child dataset of ${ds} now`);
    try {
      // With the pristine: each child's half of it whole, then the child as an increment from it (as the root).
      await sendFramed(
        rels.flatMap((rel) => (pristine === null ? [[`${ds}/${rel}@${short}`]] : [[childPristine(pristine, rel)], ['-i', childPristine(pristine, rel), `${ds}/${rel}@${short}`]])),
        out,
      );
    } finally {
      await dropChildCopies(ds);
    }
  }

  /** The children's copy snapshots an export's `environment` part took with the root's, by root dataset, until sent. */
  const childCopies = new Map<string, string>();

  /** Destroy the children's copy snapshots of `ds` this export took (a child made since has one too: `snapshot -r`). */
  async function dropChildCopies(ds: string): Promise<void> {
    const short = childCopies.get(ds);
    if (short === undefined) return;
    childCopies.delete(ds);
    const records = await readTree(ds, ['type']).catch(() => [] as DatasetRecord[]);
    for (const r of records) if (isSnapshot(r) && r.name !== `${ds}@${short}` && shortSnapshotName(r.name) === short) await zfs(['destroy', assertInsideRoot(pool, r.name)], { allowFailure: true });
  }

  /** An import's pristine stream received whole as the temporary dataset `base`; its one snapshot, which the increment is received onto. */
  async function receiveBase(stream: NodeJS.ReadableStream, base: string, implementation: 'openzfs' | 'zfs-fuse'): Promise<string> {
    await runStreaming('zfs', receiveArgs(base, implementation), { stdin: stream, wholeStdin: true });
    const [one, ...more] = snapshotsOf(await readTree(base, ['type']), base);
    if (one === undefined || more.length > 0) throw new SysprimeError('BACKEND', `the pristine stream made ${more.length + (one === undefined ? 0 : 1)} snapshots of ${base}, not one`);
    return one.name;
  }

  /**
   * `stream` received as `target`; with `origin`, as a clone of it: a clone
   * stream names its origin by GUID, and on the pool it was exported from
   * that GUID is also the original pristine's, which receive would
   * otherwise take (`zfs receive -o origin`, OpenZFS).
   */
  async function receiveOnto(stream: NodeJS.ReadableStream, target: string, origin: string | null, implementation: 'openzfs' | 'zfs-fuse'): Promise<void> {
    await runStreaming('zfs', receiveOntoArgs(target, origin, implementation), { stdin: stream, wholeStdin: true });
  }

  function receiveOntoArgs(target: string, origin: string | null, implementation: 'openzfs' | 'zfs-fuse'): string[] {
    const args = receiveArgs(target, implementation);
    return origin === null ? args : [...args.slice(0, -1), '-o', `origin=${origin}`, target];
  }

  /**
   * `target` (and each child RELS of it), received onto `origin` of `base`
   * (and the child's own of base's child), takes that snapshot over
   * (promote) and `base` goes with its children; the snapshot's name now.
   * `half` names the kill points: the root's promote done, its children's
   * not (each depends on the other then); every promote done, the base
   * (now the clone) not destroyed.
   */
  async function promoteOver(target: string, base: string, origin: string, inside: (id: string) => string, rels: readonly string[], half: 'root' | 'boot'): Promise<string> {
    await zfs(['promote', target]);
    faultPoint('backend:zfs', `promoted-${half}`);
    for (const rel of rels) await zfs(['promote', `${target}/${rel}`]);
    faultPoint('backend:zfs', `promoted-${half}-all`);
    await zfs(['destroy', ...(rels.length > 0 ? ['-r'] : []), inside(base)]);
    return `${target}@${shortSnapshotName(origin)}`;
  }

  /**
   * A received pristine snapshot `kept` of `dataset` (a temporary name; with
   * its children RELS, whose snapshots of that name are theirs) named and
   * marked as the pristine of `generation`, the children's first.
   */
  async function markReceivedPristine(kept: string, dataset: string, generation: number, rels: readonly string[] = []): Promise<void> {
    if (shortSnapshotName(kept) !== PRISTINE_SNAPSHOT) await zfs(['rename', ...(rels.length > 0 ? ['-r'] : []), kept, `${dataset}@${PRISTINE_SNAPSHOT}`]);
    for (const rel of rels) await zfs(['set', `${PROP.pristine}=${generation}`, `${dataset}/${rel}@${PRISTINE_SNAPSHOT}`]);
    await zfs(['set', `${PROP.pristine}=${generation}`, `${dataset}@${PRISTINE_SNAPSHOT}`]);
  }

  async function childMounts(ds: string): Promise<ChildMount[]> {
    return mountedChildren(await childrenOf(ds));
  }

  /**
   * Whether `snapshot` is in the history `ds` was made from, so that `zfs send -i snapshot` of a snapshot of `ds`
   * is an increment OpenZFS can send: a snapshot of `ds` itself, or of a dataset `ds` is a clone of (or a clone of
   * a clone of, and so on) taken no later than the snapshot the clone was made from. An environment made with
   * `create` is a clone of a snapshot taken after its generation's pristine, and so are its children.
   */
  async function inHistoryOf(ds: string, snapshot: string): Promise<boolean> {
    const holder = holderOf(snapshot);
    if (holder === ds) return true;
    const taken = await readOne(snapshot, ['createtxg']);
    const txg = taken === null ? NaN : Number(prop(taken, 'createtxg'));
    if (!Number.isSafeInteger(txg)) return false;
    let at = ds;
    // A chain of origins ends at a dataset that is no clone; the bound only guards against a cycle ZFS cannot make.
    for (let depth = 0; depth < 64; depth++) {
      const record = await readOne(at, ['origin']);
      const origin = record === null ? null : prop(record, 'origin');
      if (origin === null) return false;
      if (holderOf(origin) === holder) {
        const from = await readOne(origin, ['createtxg']);
        return from !== null && Number(prop(from, 'createtxg')) >= txg;
      }
      at = holderOf(origin);
    }
    return false;
  }

  /** The boot pool init recorded (boot-pool.ts), or null. */
  const bootPool = (): Promise<string | null> => recordedBootPool(pool);

  /** Environment `name`'s boot dataset, when the machine has a boot pool and it is there. */
  async function bootOf(name: string): Promise<string | null> {
    const bp = await bootPool();
    if (bp === null) return null;
    const ds = bootDataset(bp, name);
    return (await readOne(ds, ['type'])) === null ? null : ds;
  }

  /**
   * Mount an environment's tree at `dir`, its boot dataset at `<dir>/boot`;
   * on failure nothing stays mounted. A boot dataset mounted already (at
   * /boot, by the admin) is bound there instead: moving it would take it
   * from under whoever uses it.
   */
  async function mountWhole(ds: string, boot: string | null, children: readonly ChildMount[], dir: string, opts: { readonly?: boolean } = {}): Promise<void> {
    await mountTree(ds, children, dir, await caps(), opts);
    if (boot === null) return;
    const at = join(dir, 'boot');
    try {
      const record = await readOne(boot, [PROP.savedMountpoint]);
      const elsewhere = mountTargetsOf(await readMounts(), boot);
      if (elsewhere.length > 0 && record !== null && localProp(record, PROP.savedMountpoint) === null) {
        await run('mount', ['--bind', ...(opts.readonly ? ['-o', 'ro'] : []), elsewhere[0]!, at]);
      } else {
        await mountDataset(boot, at, await caps(), opts);
      }
    } catch (err) {
      await unmountTree(ds, children).catch(() => undefined);
      throw err;
    }
  }

  /** Undo mountWhole: the boot dataset first (it is mounted inside the tree), only where it is inside the tree. */
  async function unmountWhole(ds: string, boot: string | null, children: readonly ChildMount[]): Promise<void> {
    if (boot !== null) {
      const record = await readOne(boot, [PROP.savedMountpoint]);
      if (record !== null && localProp(record, PROP.savedMountpoint) !== null) await unmountDataset(boot);
      else {
        const mounts = await readMounts();
        const trees = mountTargetsOf(mounts, ds).filter((t) => t !== '/');
        for (const t of mountTargetsOf(mounts, boot)) if (trees.some((tree) => t === join(tree, 'boot'))) await run('umount', [t]);
      }
    }
    await unmountTree(ds, children);
  }

  /**
   * Clone `snapshot` and the snapshots of its children taken with it to
   * `target` and the same names below it, parents first. A child keeps
   * `canmount=off` where its source has it and is `canmount=noauto`
   * otherwise: a clone's children inherit their mountpoint from it (`/var/lib`
   * once it has `/`), and `canmount=on` would have `zfs mount -a` mount a
   * second environment's children over the running system's directories.
   */
  async function cloneTree(snapshot: string, target: string, options: readonly string[], childOptions: readonly string[]): Promise<void> {
    await zfs(['clone', '-o', 'canmount=noauto', ...options, snapshot, target]);
    const records = await readRoot(['type', 'createtxg', 'canmount']);
    const children = [...childSnapshotsOf(records, pool, snapshot)].sort(([a], [b]) => a.split('/').length - b.split('/').length || a.localeCompare(b));
    const canmountOf = new Map(records.map((r) => [r.name, prop(r, 'canmount')] as const));
    let made = 0;
    for (const [rel, snap] of children) {
      const canmount = canmountOf.get(holderOf(snap)) === 'off' ? 'off' : 'noauto';
      await zfs(['clone', '-o', `canmount=${canmount}`, ...childOptions, snap, `${target}/${rel}`]);
      faultPoint('backend:zfs', `clone-child-${++made}`);
    }
  }

  /**
   * OpenZFS: refuse to `doing` a dataset whose key is not loaded before
   * anything changes; a clone of it could be made but never mounted, so
   * staging would fail halfway (zfs-fuse has no encryption).
   */
  async function refuseLocked(ds: string, doing: string): Promise<void> {
    if ((await caps()).implementation !== 'openzfs') return;
    const record = await readOne(ds, KEY_PROPS);
    const problem = record === null ? null : lockedKeyProblem(record, doing);
    if (problem !== null) throw problem;
  }

  /**
   * Make environment `ds` from `snapshot`: cloned (with its children) under a
   * temporary name that carries this process's pid, given `mountpoint=/`, and
   * renamed into place last, so a crash leaves either no environment or a
   * whole one; recover() destroys the temporary clone of a dead process.
   */
  async function cloneEnvironment(snapshot: string, ds: string, options: readonly string[], boot: { snapshot: string; pool: string; generation: string } | null = null): Promise<void> {
    await refuseLocked(holderOf(snapshot), 'clone');
    const temporary = `${root}/${TEMPORARY_PREFIX}new-${process.pid}-${randomBytes(3).toString('hex')}`;
    const name = ds.slice(root.length + 1);
    const bootTemporary = boot === null ? null : bootTemporaryFor(boot.pool, temporary);
    try {
      await cloneTree(snapshot, temporary, options, []);
      // Set after creation: zfs-fuse tries to mount a clone created with mountpoint=/ at once.
      await zfs(['set', 'mountpoint=/', temporary]);
      if (boot !== null && bootTemporary !== null) {
        await cloneBootDataset(boot.snapshot, bootTemporary, name, boot.generation);
        faultPoint('backend:zfs', 'boot-cloned');
      }
      faultPoint('backend:zfs', 'clone-before-rename');
      await zfs(['rename', temporary, ds]);
    } catch (err) {
      await zfs(['destroy', '-r', assertInsideRoot(pool, temporary)], { allowFailure: true });
      if (boot !== null && bootTemporary !== null) await zfs(['destroy', '-r', assertInsideRoot(boot.pool, bootTemporary, bootContainer(boot.pool))], { allowFailure: true });
      throw err;
    }
    if (boot === null || bootTemporary === null) return;
    // The environment exists from here: a kill before the boot dataset's rename is finished by recover().
    faultPoint('backend:zfs', 'root-in-place');
    await zfs(['rename', bootTemporary, bootDataset(boot.pool, name)]);
  }

  /** Where the running root is, or, on a pool that holds no running root (prepared from a rescue system), the pool's bootfs. */
  async function runningRoot(mounts: readonly FstabEntry[]): Promise<string | null> {
    const booted = bootedDataset(mounts);
    if (booted !== null) return booted;
    return bootfs();
  }

  /**
   * Every check `adopt` makes before it changes anything: the dataset to
   * adopt, the environment it becomes, and whether it is the running root.
   */
  async function planAdoption(source: string, requested: string | undefined): Promise<{ ds: string; name: string; running: boolean; mounts: FstabEntry[]; boot: string | null }> {
    const mounts = await readMounts();
    const ds = source === '/' ? await runningRoot(mounts) : source.replace(/\/+$/, '');
    if (ds === null) {
      throw new SysprimeError('NOT_FOUND', `the running root is not a ZFS dataset and pool ${pool} has no bootfs`, {
        hint: `name the root to adopt: sysprime init --adopt ${root}/NAME`,
      });
    }
    if (!ds.startsWith(`${pool}/`) || ds.includes('@') || ds === root) {
      throw new SysprimeError('REFUSED', `cannot adopt ${JSON.stringify(ds)}: it is not a file system in pool ${pool}`, {
        hint: `adopt a root file system of the pool, such as ${root}/debian (\`zfs list -r ${root}\`)`,
      });
    }
    const record = await readOne(ds, 'all');
    if (record === null) {
      throw new SysprimeError('NOT_FOUND', `dataset ${ds} does not exist`, { hint: `\`zfs list -r ${pool}\` shows the datasets; roots live under ${root}` });
    }
    const problem = adoptionProblem(record);
    if (problem !== null) throw problem;
    await carriedChildren(ds);
    const present = environmentNameOf(pool, ds);
    const name = checkName(requested ?? present ?? 'default');
    const target = environmentDataset(pool, name);
    if (ds.startsWith(`${target}/`)) throw new SysprimeError('REFUSED', `cannot adopt ${ds}: it is inside ${target}`);
    const running = mountTargetsOf(mounts, ds).includes('/');
    if (ds !== target) {
      if (running) {
        throw new SysprimeError('REFUSED', `the running root ${ds} cannot be renamed to ${target} while it is mounted`, {
          hint: present !== null ? `adopt it under its present name, ${present}` : `rename it to ${target} from a rescue system (and point root=ZFS= at it), then adopt it`,
        });
      }
      if (source === '/' && present === null) {
        // The bootfs outside ROOT: the kernel command line and the initramfs name it, so moving it would break the next boot.
        throw new SysprimeError('REFUSED', `the root ${ds} is not inside ${root}: sysprime keeps environments there and will not move the root the machine boots from`, {
          hint: `move it from a rescue system (zfs rename ${ds} ${target}, then point root=ZFS= and bootfs at it), then run sysprime init`,
        });
      }
      const existing = await readOne(target, ['type']);
      if (existing !== null) {
        throw new SysprimeError('EXISTS', `cannot adopt ${ds} as ${JSON.stringify(name)}: ${target} already exists`, {
          hint: 'choose another name with --name',
        });
      }
    }
    // The guides' boot dataset of this root, named as the root is (`bpool/BOOT/debian`); its place once adopted must be free.
    const boot = present === null ? null : await findBootDataset(pool, present, { root: running, mounts });
    const recorded = await bootPool();
    if (boot !== null) {
      const bp = boot.split('/')[0]!;
      if (recorded !== null && recorded !== bp) {
        throw new SysprimeError('REFUSED', `${ds}'s boot dataset ${boot} is in pool ${bp}, but the environments' boot datasets are in ${recorded}`, {
          hint: `move the boot dataset into ${recorded}/BOOT first`,
        });
      }
      const bootTarget = bootDataset(bp, name);
      if (boot !== bootTarget && (await readOne(bootTarget, ['type'])) !== null) {
        throw new SysprimeError('EXISTS', `cannot adopt ${ds} as ${JSON.stringify(name)}: its boot dataset would be ${bootTarget}, which already exists`, {
          hint: 'choose another name with --name',
        });
      }
    }
    return { ds, name, running, mounts, boot };
  }

  async function requireAbsent(name: string): Promise<string> {
    const ds = environmentDataset(pool, name);
    if ((await readOne(ds, ['type'])) !== null) {
      throw new SysprimeError('EXISTS', `environment ${JSON.stringify(name)} already exists (${ds})`, {
        hint: 'choose another name, or destroy the old one first',
      });
    }
    // A boot dataset of that name without its root (left by hand, or by another tool) would become the new
    // environment's /boot, with whatever kernels it holds.
    const bp = await bootPool();
    if (bp !== null && (await readOne(bootDataset(bp, name), ['type'])) !== null) {
      throw new SysprimeError('EXISTS', `boot pool ${bp} already has ${bootDataset(bp, name)}, which no environment owns: a new environment ${JSON.stringify(name)} would take it for its /boot`, {
        hint: `choose another name, or move that dataset aside (\`zfs rename ${bootDataset(bp, name)} ...\`) once you know what it holds`,
      });
    }
    return ds;
  }

  async function listPristines(): Promise<PristineInfo[]> {
    return pristinesFrom(await readRoot(['type', 'creation', PROP.pristine]), pool);
  }

  /** The boot half of the pristine snapshot of environment NAME's generation (RECORD: its own), in the boot pool. */
  async function bootPristineOfEnvironment(name: string, record: DatasetRecord): Promise<string> {
    const generation = Number(localProp(record, PROP.generation) ?? NaN);
    const bp = await bootPool();
    const found = bp === null || !Number.isSafeInteger(generation) ? null : await bootPristine(bp, generation);
    if (found === null) {
      throw new SysprimeError('NOT_FOUND', `the pristine state of "${name}" (generation ${Number.isSafeInteger(generation) ? generation : 'unknown'}) has no boot half in the boot pool`, {
        hint: '`sysprime doctor` says what became of it; export it without --with-pristine',
      });
    }
    return found;
  }

  /** The pristine snapshot of environment NAME's generation (RECORD: its own); NOT_FOUND once it was pruned. */
  async function pristineOfEnvironment(name: string, record: DatasetRecord): Promise<PristineInfo> {
    const generation = Number(localProp(record, PROP.generation) ?? NaN);
    const found = Number.isSafeInteger(generation) ? (await listPristines()).find((p) => p.generation === generation) : undefined;
    if (found === undefined) {
      throw new SysprimeError('NOT_FOUND', `the pristine state of "${name}" (generation ${Number.isSafeInteger(generation) ? generation : 'unknown'}) is gone: it was pruned`, {
        hint: 'export it without --with-pristine; the machine that imports it takes its state on arrival as its pristine',
      });
    }
    return found;
  }

  async function findPristine(generation: number): Promise<PristineInfo> {
    const found = (await listPristines()).find((p) => p.generation === generation);
    if (!found) {
      throw new SysprimeError('NOT_FOUND', `there is no pristine snapshot of generation ${generation} in pool ${pool}`, {
        hint: '`sysprime list` shows the generations that still have one',
      });
    }
    return found;
  }

  const SNAPSHOT_PROPS = ['type', 'creation', 'createtxg', PROP.snapshot] as const;

  async function listSnapshots(): Promise<SnapshotInfo[]> {
    return snapshotsFrom(await readRoot(SNAPSHOT_PROPS), pool);
  }

  /**
   * Export and import carry one stream, the root's: an environment whose
   * /boot is a dataset of the boot pool would arrive without its kernels,
   * so both are refused there rather than make an environment that cannot boot.
   */
  async function findSnapshot(environment: string, name: string): Promise<SnapshotInfo> {
    checkName(environment);
    checkSnapshotName(name);
    const found = (await listSnapshots()).find((x) => x.environment === environment && x.name === name);
    if (found === undefined) {
      throw new SysprimeError('NOT_FOUND', `environment ${JSON.stringify(environment)} has no snapshot ${JSON.stringify(name)} in pool ${pool}`, {
        hint: '`sysprime list --snapshots` shows the snapshots',
      });
    }
    return found;
  }

  /** Give a fresh clone or dataset its place as an environment; destroy it when that fails. */
  async function finishNewEnvironment(ds: string): Promise<void> {
    try {
      // Set after creation: zfs-fuse tries to mount a clone created with mountpoint=/ at once.
      await zfs(['set', 'mountpoint=/', ds]);
    } catch (err) {
      await zfs(['destroy', assertInsideRoot(pool, ds)], { allowFailure: true });
      throw err;
    }
  }

  /** The pool's GUID, as the last probe read it. */
  let guid: string | undefined;

  const backend: Backend = {
    kind: 'zfs',

    describe: () => `zfs pool ${pool}`,

    async probe() {
      guid = await probePool(pool);
    },

    async identity() {
      guid ??= await probePool(pool);
      return `zfs pool ${guid}`;
    },

    async ensureLayout() {
      if ((await readOne(root, ['type'])) !== null) return;
      await zfs(['create', '-o', 'canmount=off', '-o', 'mountpoint=none', root]);
    },

    async listEnvironments(): Promise<EnvironmentInfo[]> {
      // `all` leaves out createtxg on some implementations (zfs-fuse): asked for by name, after `all`, which
      // answers it within one command where `all` has it (OpenZFS: one process fewer per list).
      const [records, mounts, defaultFs] = await Promise.all([readRoot('all'), readMounts(), bootfs()]);
      const txgs = await readRoot(['createtxg']);
      const txgOf = new Map(txgs.map((r) => [r.name, r.props.get('createtxg')] as const));
      for (const r of records) {
        const txg = txgOf.get(r.name);
        if (txg !== undefined && !r.props.has('createtxg')) r.props.set('createtxg', txg);
      }
      return environmentsFrom(records, { pool, mounts, bootfs: defaultFs });
    },

    listPristines,

    async checkAdoption(source, name) {
      return { name: (await planAdoption(source, name)).name };
    },

    async listForeign() {
      const [records, mounts, defaultFs] = await Promise.all([readRoot('all'), readMounts(), bootfs()]);
      return foreignRootsFrom(records, { pool, mounts, bootfs: defaultFs });
    },

    async adopt(source, name, generation) {
      checkName(name);
      checkGeneration(generation);
      const { ds, running, mounts, boot } = await planAdoption(source, name);
      const target = environmentDataset(pool, name);
      const wasDefault = (await bootfs()) === ds;
      const bp = boot === null ? null : boot.split('/')[0]!;
      if (boot !== null && bp !== null) {
        await requireRoot();
        // Recorded first, and the boot dataset told whose it is before any rename: recover() then knows both halves.
        await zfs(['set', `${PROP.bootPool}=${bp}`, root]);
        await zfs(['set', `${PROP.bootOf}=${name}`, boot]);
      }

      if (ds !== target) {
        await requireRoot();
        // Mounted elsewhere (zfs-fuse refuses to rename a mounted dataset; OpenZFS would remount it over / once mountpoint is set).
        if (mountTargetsOf(mounts, ds).length > 0) await unmountTree(ds, await childMounts(ds));
        await zfs(['set', 'canmount=noauto', ds]);
        await zfs(['rename', ds, target]);
        if (wasDefault) await zpool(['set', `bootfs=${target}`, pool]);
      } else {
        await zfs(['set', 'canmount=noauto', ds]);
      }
      if (!running) {
        const record = await readOne(target, ['mountpoint']);
        const current = record === null ? null : localProp(record, 'mountpoint');
        // The layout of the guides already says `/` (shown below the altroot when there is one): leave it, and its mount, alone.
        if (current === null || withoutAltroot(current, await altrootOf(pool)) !== '/') {
          const now = mountTargetsOf(await readMounts(), target);
          if (now.length > 0) await unmountTree(target, await childMounts(target));
          await zfs(['set', 'mountpoint=/', target]);
        }
      }
      // zsys leaves the children canmount=on and switches them at each boot; here only the booted environment's are
      // mounted (by the initramfs), so no other environment's are ever mounted over the running system. Setting
      // noauto unmounts nothing (OpenZFS), so the running root keeps its children mounted.
      for (const child of await childrenOf(target)) {
        if (child.canmount === 'on') await zfs(['set', 'canmount=noauto', child.name]);
      }
      if (boot !== null && bp !== null) {
        const bootTarget = bootDataset(bp, name);
        if (boot !== bootTarget) {
          if (mountTargetsOf(await readMounts(), boot).length > 0) await zfs(['unmount', boot]);
          await zfs(['rename', boot, bootTarget]);
        }
        // Only the booted root's boot dataset is mounted (sysprime-boot-generator, from its entry's sysprime.boot=); noauto unmounts nothing.
        await zfs(['set', 'canmount=noauto', bootTarget]);
        await zfs(['set', `${PROP.generation}=${generation}`, bootTarget]);
      }
      await zfs(['set', `${PROP.generation}=${generation}`, target]);
    },

    async createEmpty(name, generation) {
      checkGeneration(generation);
      await requireRoot();
      const ds = await requireAbsent(name);
      const bp = await bootPool();
      // An empty boot dataset beside it, under a temporary name until the root exists (recover() finishes or undoes it).
      const bootTemporary = bp === null ? null : `${bootContainer(bp)}/${TEMPORARY_PREFIX}new-${process.pid}-${randomBytes(3).toString('hex')}`;
      if (bp !== null && bootTemporary !== null) {
        await zfs(['create', '-o', 'canmount=noauto', '-o', `${PROP.bootOf}=${name}`, '-o', `${PROP.generation}=${generation}`, bootTemporary]);
        await zfs(['set', 'mountpoint=/boot', bootTemporary]);
      }
      await zfs(['create', '-o', 'canmount=noauto', '-o', `${PROP.generation}=${generation}`, ds]);
      await finishNewEnvironment(ds);
      if (bp !== null && bootTemporary !== null) await zfs(['rename', bootTemporary, bootDataset(bp, name)]);
    },

    async takePristine(name, generation) {
      checkGeneration(generation);
      await requireEnvironment(name);
      const ds = environmentDataset(pool, name);
      if ((await listPristines()).some((p) => p.generation === generation)) {
        throw new SysprimeError('EXISTS', `generation ${generation} already has a pristine snapshot`, {
          hint: 'a generation is taken once; stage a new one instead',
        });
      }
      const snapshot = `${ds}@${PRISTINE_SNAPSHOT}`;
      const holding = await readOne(snapshot, [PROP.pristine]);
      if (holding !== null) {
        // An older pristine that moved here with a promote keeps the plain name: give it its generation's name.
        const taken = new Set(snapshotsOf(await readTree(ds, ['type']), ds).map((r) => shortSnapshotName(r.name)));
        const gen = localProp(holding, PROP.pristine);
        const to = uniqueName(gen !== null ? `${PRISTINE_SNAPSHOT}-g${gen}` : `${PRISTINE_SNAPSHOT}-old`, taken);
        await zfs(['rename', '-r', snapshot, `${ds}@${to}`]);
      }
      const boot = await bootOf(name);
      if (boot !== null) {
        // The boot half first, under the same name: a root pristine never exists without it. An unmarked one is what a
        // kill left before the root's was taken; a marked one moved here with a promote and gets its generation's name.
        const bp = boot.split('/')[0]!;
        const bootSnap = `${boot}@${PRISTINE_SNAPSHOT}`;
        const old = await readOne(bootSnap, [PROP.pristine]);
        const oldGen = old === null ? null : localProp(old, PROP.pristine);
        if (old !== null && oldGen === null) await zfs(['destroy', assertInsideRoot(bp, bootSnap, bootContainer(bp))]);
        else if (old !== null) {
          const taken = new Set(snapshotsOf(await readTree(boot, ['type']), boot).map((r) => shortSnapshotName(r.name)));
          await zfs(['rename', bootSnap, `${boot}@${uniqueName(`${PRISTINE_SNAPSHOT}-g${oldGen}`, taken)}`]);
        }
        await zfs(['snapshot', '-o', `${PROP.pristine}=${generation}`, bootSnap]);
        faultPoint('backend:zfs', 'boot-pristine-taken');
        await holdPristine(bootSnap);
      }
      // Recursive: the children's content is the environment's too, and one `snapshot -r` takes them all at one moment.
      await zfs(['snapshot', '-r', '-o', `${PROP.pristine}=${generation}`, snapshot]);
      faultPoint('backend:zfs', 'pristine-taken');
      // Held at once: no other tool (nor a `zfs destroy -r` by hand) takes the base of the next staging (holds.ts).
      await holdPristine(snapshot, true);
      const created = await readOne(snapshot, ['creation']);
      return {
        id: snapshot,
        generation,
        created: new Date(Number(created === null ? 0 : (prop(created, 'creation') ?? 0)) * 1000),
        holder: ds,
      };
    },

    async cloneFromPristine(generation, name) {
      checkGeneration(generation);
      await requireRoot();
      const ds = await requireAbsent(name);
      const pristine = await findPristine(generation);
      await carriedChildren(holderOf(pristine.id));
      const carried = carriedBootProperties((await readOne(pristine.id, 'all')) ?? { name: pristine.id, props: new Map() }, holderOf(pristine.id));
      const bp = await bootPool();
      let boot: { snapshot: string; pool: string; generation: string } | null = null;
      if (bp !== null) {
        // Found by its mark, not its name: promotes move a pristine from one boot dataset to another, as on the root pool.
        const snapshot = await bootPristine(bp, generation);
        if (snapshot === null) {
          throw new SysprimeError('BACKEND', `the pristine snapshot of generation ${generation} has no partner in boot pool ${bp}: the environment made from it would have no /boot`, {
            hint: 'stage a new generation from an environment that has its boot dataset',
          });
        }
        boot = { snapshot, pool: bp, generation: String(generation) };
      }
      await cloneEnvironment(pristine.id, ds, ['-o', `${PROP.generation}=${generation}`, ...carried], boot);
    },

    async cloneFromEnvironment(source, name, opts = {}) {
      const metaOptions = Object.entries(opts.meta ?? {}).flatMap(([key, value]) => ['-o', `${metaProperty(key, value)}=${value}`]);
      const from = await requireEnvironment(source, [PROP.generation]);
      const ds = await requireAbsent(name);
      const generation = localProp(from, PROP.generation) ?? '0';
      const sourceDs = environmentDataset(pool, source);
      await carriedChildren(sourceDs);
      // Before the copy snapshot: nothing is left to undo.
      await refuseLocked(sourceDs, 'copy');
      const tree = await readTree(sourceDs, ['type']);
      const taken = new Set(tree.filter((r) => isSnapshot(r)).map((r) => shortSnapshotName(r.name)));
      const snapshot = `${sourceDs}@${uniqueName(`${COPY_SNAPSHOT_PREFIX}${timestamp(new Date())}`, taken)}`;
      const sourceBoot = await bootOf(source);
      const bp = await bootPool();
      if (bp !== null && sourceBoot === null) {
        throw new SysprimeError('BACKEND', `environment ${JSON.stringify(source)} has no boot dataset ${bootDataset(bp, source)}: a copy of it would have no /boot`, {
          hint: '`sysprime doctor --fix` finishes an interrupted change; see docs/backend-zfs.md, "A boot pool"',
        });
      }
      opts.signal?.throwIfAborted();
      const bootSnap = sourceBoot === null ? null : `${sourceBoot}@${shortSnapshotName(snapshot)}`;
      // The boot half first: a copy snapshot left alone by a kill is removed by recover() once nothing is cloned from it.
      if (bootSnap !== null) await zfs(['snapshot', bootSnap]);
      await zfs(['snapshot', '-r', snapshot]);
      try {
        const carried = carriedBootProperties((await readOne(snapshot, 'all')) ?? { name: snapshot, props: new Map() }, sourceDs);
        const boot = bp === null || bootSnap === null ? null : { snapshot: bootSnap, pool: bp, generation };
        // The metadata on the clone itself, before its rename: never an environment without it.
        await cloneEnvironment(snapshot, ds, ['-o', `${PROP.generation}=${generation}`, ...carried, ...metaOptions], boot);
      } catch (err) {
        await zfs(['destroy', '-r', assertInsideRoot(pool, snapshot)], { allowFailure: true });
        if (bp !== null && bootSnap !== null) await zfs(['destroy', assertInsideRoot(bp, bootSnap, bootContainer(bp))], { allowFailure: true });
        throw err;
      }
    },

    listSnapshots,

    async takeSnapshot(environment, name) {
      checkSnapshotName(name);
      const record = await requireEnvironment(environment, [PROP.generation]);
      const ds = environmentDataset(pool, environment);
      const id = `${ds}@${name}`;
      if ((await readOne(id, ['type'])) !== null) {
        throw new SysprimeError('EXISTS', `environment ${JSON.stringify(environment)} already has a snapshot ${JSON.stringify(name)} (${id})`, {
          hint: 'choose another name; `sysprime list --snapshots` shows the ones taken',
        });
      }
      const generation = localProp(record, PROP.generation) ?? '0';
      // The boot half first, as for a copy: one a kill leaves without its root half is swept by recover().
      const bp = await bootPool();
      const boot = await bootOf(environment);
      const bootSnap = bp === null || boot === null ? null : `${boot}@${name}`;
      if (bootSnap !== null) await zfs(['snapshot', '-o', `${PROP.snapshot}=${generation}`, bootSnap]);
      faultPoint('backend:zfs', 'boot-snapshot-taken');
      try {
        // Recursive and marked in one command: the children are taken at the same moment, and the mark is never missing.
        await zfs(['snapshot', '-r', '-o', `${PROP.snapshot}=${generation}`, id]);
      } catch (err) {
        if (bp !== null && bootSnap !== null) await zfs(['destroy', assertInsideRoot(bp, bootSnap, bootContainer(bp))], { allowFailure: true });
        throw err;
      }
      const taken = snapshotsFrom(await readTree(ds, SNAPSHOT_PROPS), pool).find((x) => x.id === id);
      if (taken === undefined) throw new SysprimeError('BACKEND', `${id} was taken but is not listed as a snapshot`);
      return taken;
    },

    async cloneFromSnapshot(environment, snapshot, name) {
      await requireRoot();
      const snap = await findSnapshot(environment, snapshot);
      const ds = await requireAbsent(name);
      const sourceDs = environmentDataset(pool, environment);
      const carried = carriedBootProperties((await readOne(snap.id, 'all')) ?? { name: snap.id, props: new Map() }, sourceDs);
      const bp = await bootPool();
      let boot: { snapshot: string; pool: string; generation: string } | null = null;
      if (bp !== null) {
        const partner = `${bootDataset(bp, environment)}@${snapshot}`;
        if ((await readOne(partner, ['type'])) === null) {
          throw new SysprimeError('BACKEND', `snapshot ${snap.id} has no partner ${partner} in boot pool ${bp}: an environment made from it would have no /boot`, {
            hint: `take a new snapshot of ${JSON.stringify(environment)} (\`sysprime snapshot ${environment}\`), which keeps its /boot too`,
          });
        }
        boot = { snapshot: partner, pool: bp, generation: String(snap.generation) };
      }
      await cloneEnvironment(snap.id, ds, ['-o', `${PROP.generation}=${snap.generation}`, ...carried], boot);
    },

    async sendParts(name, opts) {
      const record = await requireEnvironment(name);
      const ds = environmentDataset(pool, name);
      // Each child goes as a whole stream of its own (`zfs send -R` would also send every earlier snapshot and,
      // with its properties, mountpoints that zfs-fuse mounts on receive): received below the new root, they
      // inherit its mountpoint as a clone's children do; canmount=off is said in the header.
      const children = await carriedChildren(ds);
      const boot = await bootOf(name);
      const bpool = boot === null ? await bootPool() : null;
      if (bpool !== null) {
        throw new SysprimeError('REFUSED', `environment ${JSON.stringify(name)} has no boot dataset in boot pool ${bpool}: exported, it would have no /boot`, {
          hint: '`sysprime doctor` says what became of it',
        });
      }
      if (opts.withPristine) {
        if ((await caps()).implementation !== 'openzfs') {
          // zfs-fuse sends an increment only from a clone's own origin, and could not receive one as a clone (receiveEnvironment).
          throw new SysprimeError('REFUSED', "zfs-fuse cannot export an environment with its pristine state (zfs send -i from an earlier snapshot of a clone's origin needs OpenZFS)", {
            hint: 'export it without --with-pristine',
          });
        }
        const pristine = await pristineOfEnvironment(name, record);
        if (boot !== null) await bootPristineOfEnvironment(name, record);
        // The pristine snapshot is recursive: a child made since has no part of it.
        const records = await readTree(holderOf(pristine.id), ['type']);
        for (const c of children) {
          const half = childPristine(pristine.id, c.rel);
          // An increment needs the half in the child's history: its own snapshot, or one its origins were taken after.
          const from = records.some((r) => r.name === half) && (await inHistoryOf(c.name, half));
          if (!from) {
            throw new SysprimeError('REFUSED', `export --with-pristine of ${JSON.stringify(name)}: its child dataset ${c.rel} has no part in the pristine state (${half} is not in its history): it was made after it`, {
              hint: 'export it without --with-pristine: its state on arrival becomes its pristine there',
            });
          }
        }
      }
      const withBootPristine = opts.withPristine && boot !== null;
      return {
        parts: [
          ...(opts.withPristine ? (['pristine'] as const) : []),
          'environment',
          ...(children.length > 0 ? (['nested'] as const) : []),
          ...(withBootPristine ? (['boot-pristine'] as const) : []),
          ...(boot !== null ? (['boot'] as const) : []),
        ],
        nested: children.map((c) => c.rel),
        ...(children.some((c) => c.canmount === 'off') ? { unmounted: children.filter((c) => c.canmount === 'off').map((c) => c.rel) } : {}),
      };
    },

    async sendPart(name, part, out, opts) {
      const record = await requireEnvironment(name);
      // Whole: each child's half goes in the nested part.
      if (part === 'pristine') {
        await runStreaming('zfs', ['send', (await pristineOfEnvironment(name, record)).id], { stdout: out });
        return;
      }
      if (part === 'nested') {
        await sendChildren(environmentDataset(pool, name), opts.nested ?? [], out, opts.fromPristine ? (await pristineOfEnvironment(name, record)).id : null);
        return;
      }
      if (part === 'boot-pristine') {
        await runStreaming('zfs', ['send', await bootPristineOfEnvironment(name, record)], { stdout: out });
        return;
      }
      const ds = part === 'boot' ? await bootOf(name) : environmentDataset(pool, name);
      if (ds === null) throw new SysprimeError('NOT_FOUND', `environment ${JSON.stringify(name)} has no boot dataset`);
      // An increment from the pristine snapshot (its boot half for the boot dataset), which is the clone's origin or an
      // earlier snapshot of the dataset itself.
      const from = !opts.fromPristine ? [] : ['-i', part === 'boot' ? await bootPristineOfEnvironment(name, record) : (await pristineOfEnvironment(name, record)).id];
      const taken = new Set(snapshotsOf(await readTree(ds, ['type']), ds).map((r) => shortSnapshotName(r.name)));
      // A copy snapshot: one a crash leaves behind is removed by recover() (in the boot pool too), as nothing is cloned from it.
      const snapshot = `${ds}@${uniqueName(`${EXPORT_SNAPSHOT_PREFIX}${process.pid}-${timestamp(new Date())}`, taken)}`;
      const bp = part === 'boot' ? ds.split('/')[0]! : null;
      // With child datasets, one recursive snapshot: the `nested` part sends the children's and removes them.
      const withChildren = part === 'environment' && (opts.nested ?? []).length > 0;
      await zfs(['snapshot', ...(withChildren ? ['-r'] : []), snapshot]);
      let sent = false;
      try {
        await runStreaming('zfs', ['send', ...from, snapshot], { stdout: out });
        sent = true;
        if (withChildren) childCopies.set(ds, shortSnapshotName(snapshot));
      } finally {
        const destroy = withChildren && !sent ? ['destroy', '-r'] : ['destroy'];
        await zfs([...destroy, bp === null ? assertInsideRoot(pool, snapshot) : assertInsideRoot(bp, snapshot, bootContainer(bp))], { allowFailure: true });
      }
    },

    async sendFinished(name) {
      await dropChildCopies(environmentDataset(pool, name));
    },

    async receiveEnvironment(name, generation, parts, verify, meta = {}, opts = { keepPristine: false }) {
      checkGeneration(generation);
      await requireRoot();
      const ds = await requireAbsent(name);
      const implementation = (await caps()).implementation;
      // Refused before the streams are read, as a name that is taken is.
      const bp = await bootPool();
      if (bp !== null && parts.boot === undefined) {
        throw new SysprimeError('REFUSED', `the stream holds no boot dataset, and this pool's environments have their /boot in boot pool ${bp}: imported, it would have no kernels`, {
          hint: 'export it from a machine whose /boot is a dataset of a boot pool, or copy its /boot by hand into one made for it',
        });
      }
      if (bp === null && parts.boot !== undefined) {
        throw new SysprimeError('REFUSED', `the stream holds a boot dataset of a boot pool, and pool ${pool} has no boot pool to receive it`, {
          hint: 'import it where /boot is a dataset of a boot pool (bpool/BOOT)',
        });
      }
      if (parts.pristine !== undefined && implementation !== 'openzfs') {
        throw new SysprimeError('REFUSED', 'this export holds its pristine state, and zfs-fuse cannot receive an environment as a clone of it (zfs receive -o origin needs OpenZFS 0.8 or later)', {
          hint: 'export it again without --with-pristine, or import it on an OpenZFS pool',
        });
      }
      if (parts['boot-pristine'] !== undefined && (parts.pristine === undefined || parts.boot === undefined)) {
        throw new SysprimeError('REFUSED', 'the stream holds the boot half of a pristine state without the pristine state or the boot dataset it belongs to', { hint: 'export the environment again; nothing was imported' });
      }
      if (parts.pristine !== undefined && parts.boot !== undefined && parts['boot-pristine'] === undefined) {
        throw new SysprimeError('REFUSED', 'the stream holds a pristine state without its boot half: its boot dataset could not be received as a clone of it', { hint: 'export it again with this sysprime, or import it without --with-pristine' });
      }
      const nested = parts.nested === undefined ? [] : (opts.nested ?? []);
      // Named by the file: each a dataset name below the new root, once, after its parent (each is received into it).
      const listed = new Set<string>();
      for (const rel of nested) {
        const parent = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : null;
        if (!/^[A-Za-z0-9_.: -]+(\/[A-Za-z0-9_.: -]+)*$/.test(rel) || listed.has(rel) || (parent !== null && !listed.has(parent))) {
          throw new SysprimeError('REFUSED', `the stream names a child dataset ${JSON.stringify(rel)} that is not a dataset name, is named twice, or comes before its parent`, {
            hint: 'export the environment again; nothing was imported',
          });
        }
        listed.add(rel);
      }
      const properties = Object.entries(meta).map(([key, value]) => `${metaProperty(key, value)}=${value}`);
      // Received below ROOT (mountpoint=none), so never mounted; under names recover() destroys once this process is gone.
      const tag = `${process.pid}-${randomBytes(3).toString('hex')}`;
      const temporary = `${root}/${TEMPORARY_PREFIX}new-${tag}`;
      const base = parts.pristine === undefined ? null : `${root}/${TEMPORARY_PREFIX}base-${tag}`;
      const bootTemporary = bp === null ? null : bootTemporaryFor(bp, temporary);
      const bootBase = bp === null || base === null ? null : bootTemporaryFor(bp, base);
      const inBoot = (id: string): string => assertInsideRoot(bp!, id, bootContainer(bp!));
      try {
        const origin = parts.pristine !== undefined && base !== null ? await receiveBase(parts.pristine, base, implementation) : null;
        // The increment arrives as a clone of the received pristine (never of a local snapshot that has its GUID).
        await receiveOnto(parts.environment, temporary, origin, implementation);
        // Parents first, each below the new root, one whole stream after the other from one input.
        if (parts.nested !== undefined) {
          const frames = new FramedStreams(parts.nested);
          for (const rel of nested) {
            // With the pristine, each child's half of it first, below the base, and the child onto it.
            let childOrigin: string | null = null;
            if (origin !== null && base !== null) {
              await receiveFramed(frames, receiveArgs(`${base}/${rel}`, implementation));
              childOrigin = childPristine(origin, rel);
              if ((await readOne(childOrigin, ['type'])) === null) throw new SysprimeError('REFUSED', `the stream's half of the pristine state for ${rel} is not a snapshot named as the root's`, { hint: 'export the environment again; nothing was imported' });
            }
            await receiveFramed(frames, receiveOntoArgs(`${temporary}/${rel}`, childOrigin, implementation));
          }
          if (!(await frames.atEnd())) throw new SysprimeError('REFUSED', 'the stream holds more child datasets than its header names', { hint: 'export the environment again; nothing was imported' });
        }
        let bootOrigin: string | null = null;
        if (bp !== null && bootTemporary !== null && parts.boot !== undefined) {
          // The boot half of the pristine the same way, in the boot pool.
          if (parts['boot-pristine'] !== undefined && bootBase !== null) bootOrigin = await receiveBase(parts['boot-pristine'], bootBase, implementation);
          await receiveOnto(parts.boot, bootTemporary, bootOrigin, implementation);
          // Whose it is, at once: recover() renames a boot dataset into place, or destroys it, by this mark.
          await zfs(['set', `${PROP.bootOf}=${name}`, bootTemporary]);
        }
        faultPoint('backend:zfs', 'received');
        await verify();
        // The pristine snapshots move to the environment and its boot dataset, which then hold them as those whose
        // pristine was taken here do.
        const kept = origin !== null && base !== null ? await promoteOver(temporary, base, origin, (id) => assertInsideRoot(pool, id), nested, 'root') : null;
        const keptBoot = bootOrigin !== null && bootBase !== null && bootTemporary !== null ? await promoteOver(bootTemporary, bootBase, bootOrigin, inBoot, [], 'boot') : null;
        for (const snap of snapshotsOf(await readTree(temporary, ['type']), temporary)) if (snap.name !== kept || !opts.keepPristine) await zfs(['destroy', assertInsideRoot(pool, snap.name)]);
        if (bp !== null && bootTemporary !== null) {
          for (const snap of snapshotsOf(await readTree(bootTemporary, ['type']), bootTemporary)) if (snap.name !== keptBoot || !opts.keepPristine) await zfs(['destroy', inBoot(snap.name)]);
          // The boot half marked first: a root pristine never exists without it.
          if (keptBoot !== null && opts.keepPristine) await markReceivedPristine(keptBoot, bootTemporary, generation);
          await zfs(['set', 'canmount=noauto', bootTemporary]);
          await zfs(['set', `${PROP.generation}=${generation}`, bootTemporary]);
          // As the property says it (an altroot is not part of it), as for a clone's boot dataset.
          await zfs(['set', 'mountpoint=/boot', bootTemporary]);
        }
        // The children's snapshots go as the root's do (but their halves of a kept pristine); each is set before the
        // root's mountpoint makes theirs real.
        const unmounted = new Set(opts.unmounted ?? []);
        for (const rel of nested) {
          const child = `${temporary}/${rel}`;
          const keptChild = kept === null ? null : `${child}@${shortSnapshotName(kept)}`;
          for (const snap of snapshotsOf(await readTree(child, ['type']), child)) if (snap.name !== keptChild || !opts.keepPristine) await zfs(['destroy', assertInsideRoot(pool, snap.name)]);
          await zfs(['set', `canmount=${unmounted.has(rel) ? 'off' : 'noauto'}`, child]);
        }
        // Marked while it has no name yet: the environment never has its name without its pristine.
        if (kept !== null && opts.keepPristine) await markReceivedPristine(kept, temporary, generation, nested);
        await zfs(['set', 'canmount=noauto', temporary]);
        await zfs(['set', `${PROP.generation}=${generation}`, temporary]);
        for (const property of properties) await zfs(['set', property, temporary]);
        await zfs(['set', 'mountpoint=/', temporary]);
        faultPoint('backend:zfs', 'receive-before-rename');
        await zfs(['rename', temporary, ds]);
      } catch (err) {
        // Each received dataset and its base: before a promote the received one is the base's clone and goes first,
        // after it the base is the clone; the first destroy is tried again once the second went.
        const undo = async (first: string, second: string | null): Promise<void> => {
          const r = await zfs(['destroy', '-r', first], { allowFailure: true });
          if (second === null) return;
          await zfs(['destroy', '-r', second], { allowFailure: true });
          if (r.exitCode !== 0) await zfs(['destroy', '-r', first], { allowFailure: true });
        };
        await undo(assertInsideRoot(pool, temporary), base === null ? null : assertInsideRoot(pool, base));
        if (bp !== null && bootTemporary !== null) await undo(inBoot(bootTemporary), bootBase === null ? null : inBoot(bootBase));
        throw err;
      }
      // The environment exists from here: a kill before the boot dataset's rename is finished by recover().
      if (bp !== null && bootTemporary !== null) {
        faultPoint('backend:zfs', 'received-root-in-place');
        await zfs(['rename', bootTemporary, bootDataset(bp, name)]);
      }
      // Held once in place (a kill before it: recover() holds every marked pristine that has no hold), the boot half first.
      if (opts.keepPristine && bp !== null && bootBase !== null) await holdPristine(`${bootDataset(bp, name)}@${PRISTINE_SNAPSHOT}`);
      if (opts.keepPristine && base !== null) await holdPristine(`${ds}@${PRISTINE_SNAPSHOT}`, nested.length > 0);
    },

    async destroySnapshot(environment, name) {
      const snap = await findSnapshot(environment, name);
      const records = await readTree(pool, ['type', 'origin', 'createtxg']);
      const dependents = [snap.id, ...childSnapshotsOf(records, pool, snap.id).values()].flatMap((x) => dependentsOf(records, x));
      if (dependents.length > 0) {
        throw new SysprimeError('REFUSED', `snapshot ${snap.id} is the origin of ${dependents.join(', ')}: ZFS keeps it while they exist`, {
          hint: 'destroy the environments made from it first; it goes with its environment in any case',
        });
      }
      const bp = await bootPool();
      const partner = bp === null ? null : `${bootDataset(bp, environment)}@${name}`;
      if (bp !== null && partner !== null) {
        const bootDependents = dependentsOf(await readTree(bootContainer(bp), ['type', 'origin']), partner);
        if (bootDependents.length > 0) {
          throw new SysprimeError('REFUSED', `snapshot ${partner} is the origin of ${bootDependents.join(', ')}: ZFS keeps it while they exist`, {
            hint: 'destroy the environments made from it first; it goes with its environment in any case',
          });
        }
      }
      // -r on a snapshot: the same snapshot of the children, taken with it.
      await zfs(['destroy', '-r', assertInsideRoot(pool, snap.id)]);
      // The boot half last: one left by a kill has no root half, and recover() sweeps it.
      if (bp !== null && partner !== null && (await readOne(partner, ['type'])) !== null) await zfs(['destroy', assertInsideRoot(bp, partner, bootContainer(bp))]);
    },

    async setGeneration(name, generation) {
      checkGeneration(generation);
      await requireEnvironment(name);
      await zfs(['set', `${PROP.generation}=${generation}`, environmentDataset(pool, name)]);
      const boot = await bootOf(name);
      if (boot !== null) await zfs(['set', `${PROP.generation}=${generation}`, boot]);
    },

    async destroyEnvironment(name) {
      const record = await requireEnvironment(name, [PROP.generation]);
      const ds = environmentDataset(pool, name);
      refuseDestroy(name, { mountPoints: mountTargetsOf(await readMounts(), ds), isDefault: (await bootfs()) === ds });
      const generation = localProp(record, PROP.generation);
      const gen = generation !== null && /^\d+$/.test(generation) ? Number(generation) : null;
      const boot = await bootOf(name);
      if (boot !== null) {
        refuseDestroy(name, { mountPoints: mountTargetsOf(await readMounts(), boot), isDefault: false });
        // Marked first: a kill after the root is gone leaves a boot dataset recover() knows to destroy, one before it is given back.
        await zfs(['set', `${PROP.bootOf}=${DESTROYING}`, boot]);
      }
      let done: string[];
      try {
        done = await destroyWithDependents(pool, ds, gen);
      } catch (err) {
        // The root goes first: a destroy that fails on it leaves the environment whole, its boot dataset its own again.
        if (boot !== null && (await readOne(ds, ['type'])) !== null) await zfs(['set', `${PROP.bootOf}=${name}`, boot], { allowFailure: true });
        throw err;
      }
      faultPoint('backend:zfs', 'root-destroyed');
      const bp = await bootPool();
      if (boot !== null && bp !== null) {
        done.push(...(await destroyWithDependents(bp, boot, gen, bootContainer(bp))));
        done.push(...(await sweepBootSnapshots(pool, bp)));
      }
      for (const line of done) log.debug(`zfs: ${line}`);
      await releaseClaim(runDir, name);
    },

    async destroyPristine(generation) {
      const pristine = await findPristine(generation);
      const records = await readTree(pool, ['type', 'origin', 'createtxg', HOLD_COUNT]);
      const children = [...childSnapshotsOf(records, pool, pristine.id).values()];
      const dependents = [pristine.id, ...children].flatMap((s) => dependentsOf(records, s));
      if (dependents.length > 0) {
        throw new SysprimeError('REFUSED', `the pristine snapshot of generation ${generation} (${pristine.id}) still has clones: ${dependents.join(', ')}`, {
          hint: 'destroy the environments cloned from it first',
        });
      }
      const bp = await bootPool();
      const boot = bp === null ? null : await bootPristine(bp, generation);
      const bootRecords = bp === null || boot === null ? [] : await readTree(bp, ['type', 'origin', HOLD_COUNT]);
      if (bp !== null && boot !== null) {
        const bootDependents = dependentsOf(bootRecords, boot);
        if (bootDependents.length > 0) {
          throw new SysprimeError('REFUSED', `the pristine snapshot of generation ${generation} in the boot pool (${boot}) still has clones: ${bootDependents.join(', ')}`, {
            hint: 'destroy the environments cloned from it first',
          });
        }
      }
      const going = new Set([pristine.id, ...children, ...(boot === null ? [] : [boot])]);
      await releaseForDestroy([...records, ...bootRecords], (name) => going.has(name));
      for (const s of children.reverse()) await zfs(['destroy', assertInsideRoot(pool, s)]);
      await zfs(['destroy', assertInsideRoot(pool, pristine.id)]);
      if (bp !== null && boot !== null) await zfs(['destroy', assertInsideRoot(bp, boot, bootContainer(bp))]);
    },

    async renameEnvironment(from, to) {
      await requireEnvironment(from);
      const target = await requireAbsent(to);
      const source = environmentDataset(pool, from);
      refuseRename(from, mountTargetsOf(await readMounts(), source));
      const wasDefault = (await bootfs()) === source;
      const boot = await bootOf(from);
      const bp = await bootPool();
      if (boot !== null && bp !== null) {
        refuseRename(from, mountTargetsOf(await readMounts(), boot));
        if ((await readOne(bootDataset(bp, to), ['type'])) !== null) {
          throw new SysprimeError('EXISTS', `cannot rename ${JSON.stringify(from)} to ${JSON.stringify(to)}: boot dataset ${bootDataset(bp, to)} already exists`, {
            hint: 'choose another name, or remove that boot dataset (it belongs to no environment)',
          });
        }
        // Told first whose it will be: a kill after the root's rename is finished by recover(), one before it undone.
        await zfs(['set', `${PROP.bootOf}=${to}`, boot]);
      }
      await zfs(['rename', source, target]);
      if (wasDefault) await zpool(['set', `bootfs=${target}`, pool]);
      if (boot !== null && bp !== null) {
        faultPoint('backend:zfs', 'rename-root-renamed');
        await zfs(['rename', boot, bootDataset(bp, to)]);
      }
    },

    async mount(name, dir) {
      await requireEnvironment(name);
      const ds = environmentDataset(pool, name);
      const where = resolve(dir);
      if (mountedThereAlready(name, mountTargetsOf(await readMounts(), ds), where)) return;
      await mountWhole(ds, await bootOf(name), await childMounts(ds), where);
    },

    async unmount(name) {
      await requireEnvironment(name);
      const ds = environmentDataset(pool, name);
      refuseUnmountingRoot(name, mountTargetsOf(await readMounts(), ds));
      await unmountWhole(ds, await bootOf(name), await childMounts(ds));
    },

    stateHome: (stateDir) => findStateHome(pool, stateDir),

    async openEnvironment(name): Promise<OpenTree> {
      await requireEnvironment(name);
      const ds = environmentDataset(pool, name);
      const targets = mountTargetsOf(await readMounts(), ds);
      if (targets.includes('/')) return { path: '/', release: async () => undefined };
      const existing = targets.at(-1);
      if (existing !== undefined) return { path: existing, release: async () => undefined };
      const dir = environmentMountDir(runDir, name);
      await claimMount(runDir, name);
      const children = await childMounts(ds);
      // The environment's own boot dataset at its /boot: what staging's package manager writes the new kernel into.
      const boot = await bootOf(name);
      try {
        await mountWhole(ds, boot, children, dir);
      } catch (err) {
        await releaseClaim(runDir, name);
        throw err;
      }
      return releasedOnce(dir, async () => {
        await unmountWhole(ds, boot, children);
        await releaseClaim(runDir, name);
      });
    },

    async changesSincePristine(name, generation, limit): Promise<ChangeListing> {
      if (!(await caps()).diff) return { ok: false, reason: 'this ZFS (zfs-fuse) has no `zfs diff`' };
      const record = await requireEnvironment(name, ['type', 'origin']);
      const ds = environmentDataset(pool, name);
      const pristine = await findPristine(generation);
      if ((await childrenOf(ds)).length > 0) return { ok: false, reason: `${ds} has child datasets, which one \`zfs diff\` does not compare` };
      // zfs diff compares a snapshot with a later state of its own dataset, or of a clone of it.
      if (holderOf(pristine.id) !== ds && prop(record, 'origin') !== pristine.id) {
        return { ok: false, reason: `${pristine.id} is neither a snapshot of ${ds} nor its origin` };
      }
      // Paths come out under the dataset's mount point: with two mounts it is not clear which.
      const targets = mountTargetsOf(await readMounts(), ds);
      if (targets.length !== 1) return { ok: false, reason: `${ds} is mounted ${targets.length === 0 ? 'nowhere' : `${targets.length} times`}` };
      const out = await zfs(['diff', '-H', pristine.id, ds], diffOptions(targets[0]!, limit));
      if (out.overLimit) return { ok: false, reason: listingTooLong(limit!) };
      const text = (out.stdoutBuffer ?? Buffer.alloc(0)).toString('latin1');
      return { ok: true, changes: parseZfsDiff(text, Buffer.from(targets[0]!, 'utf8').toString('latin1')), source: `zfs diff ${pristine.id}` };
    },

    async changesBetweenPristines(from, to, limit): Promise<ChangeListing> {
      if (!(await caps()).diff) return { ok: false, reason: 'this ZFS (zfs-fuse) has no `zfs diff`' };
      const pristines = await listPristines();
      const older = pristines.find((p) => p.generation === from);
      const newer = pristines.find((p) => p.generation === to);
      if (older === undefined || newer === undefined) return { ok: false, reason: `generation ${older === undefined ? from : to} has no pristine snapshot` };
      const olderHolder = holderOf(older.id);
      const newerHolder = holderOf(newer.id);
      for (const ds of new Set([olderHolder, newerHolder])) {
        if ((await childrenOf(ds)).length > 0) return { ok: false, reason: `${ds} has child datasets, which one \`zfs diff\` does not compare` };
      }
      // Staging clones pristine N, updates the clone and snapshots it: N+1 is a snapshot of a clone of N (or, after a
      // promote moved both, of the same dataset). zfs diff compares only such a pair; anything else is walked.
      if (olderHolder !== newerHolder && !(await inHistoryOf(newerHolder, older.id))) return { ok: false, reason: `${newer.id} does not descend from ${older.id}` };
      // zfs diff reads both sides through their datasets' mounts (.zfs/snapshot), and prints paths under the newer one's.
      const mounts = await readMounts();
      const targets = mountTargetsOf(mounts, newerHolder);
      if (targets.length !== 1) return { ok: false, reason: `${newerHolder} is mounted ${targets.length === 0 ? 'nowhere' : `${targets.length} times`}` };
      if (olderHolder !== newerHolder && mountTargetsOf(mounts, olderHolder).length === 0) return { ok: false, reason: `${olderHolder} is not mounted, and zfs diff reads it through its mount` };
      const out = await zfs(['diff', '-H', older.id, newer.id], diffOptions(targets[0]!, limit));
      if (out.overLimit) return { ok: false, reason: listingTooLong(limit!) };
      const text = (out.stdoutBuffer ?? Buffer.alloc(0)).toString('latin1');
      return { ok: true, changes: parseZfsDiff(text, Buffer.from(targets[0]!, 'utf8').toString('latin1')), source: `zfs diff ${older.id} ${newer.id}` };
    },

    async openPristine(generation): Promise<OpenTree> {
      const pristine = await findPristine(generation);
      const holder = holderOf(pristine.id);
      // A snapshot's .zfs directory shows the holder's own files only, not its children's, nor its boot dataset's.
      const bp = await bootPool();
      const bootSnap = bp === null ? null : await bootPristine(bp, generation);
      const plain = (await childrenOf(holder)).length === 0 && bootSnap === null;
      for (const target of plain ? mountTargetsOf(await readMounts(), holder) : []) {
        // `.zfs/snapshot` works on OpenZFS; zfs-fuse has no .zfs directory at all.
        const path = join(target, '.zfs', 'snapshot', shortSnapshotName(pristine.id));
        if (await stat(path).then((s) => s.isDirectory(), () => false)) return { path, release: async () => undefined };
      }
      const temporary = `${root}/${TEMPORARY_PREFIX}g${generation}-${process.pid}-${randomBytes(3).toString('hex')}`;
      const dir = pristineMountDir(runDir, temporary.slice(root.length + 1));
      try {
        await cloneTree(pristine.id, temporary, ['-o', 'readonly=on'], ['-o', 'readonly=on']);
      } catch (err) {
        await zfs(['destroy', '-r', assertInsideRoot(pool, temporary)], { allowFailure: true });
        throw err;
      }
      // The boot half beside it, read-only, so the pristine tree's /boot is the kernels it was taken with.
      const bootTemporary = bp === null || bootSnap === null ? null : bootTemporaryFor(bp, temporary);
      if (bp !== null && bootSnap !== null && bootTemporary !== null) {
        try {
          await zfs(['clone', '-o', 'canmount=noauto', '-o', 'readonly=on', '-o', `${PROP.bootOf}=.pristine-tree`, bootSnap, bootTemporary]);
        } catch (err) {
          await zfs(['destroy', '-r', assertInsideRoot(pool, temporary)], { allowFailure: true });
          await zfs(['destroy', '-r', assertInsideRoot(bp, bootTemporary, bootContainer(bp))], { allowFailure: true });
          throw err;
        }
      }
      const children = await childMounts(temporary);
      const drop = async (): Promise<void> => {
        await unmountWhole(temporary, bootTemporary, children);
        await zfs(['destroy', '-r', assertInsideRoot(pool, temporary)]);
        if (bp !== null && bootTemporary !== null) await zfs(['destroy', '-r', assertInsideRoot(bp, bootTemporary, bootContainer(bp))]);
        await rmdir(dir).catch(() => undefined);
      };
      try {
        await mountWhole(temporary, bootTemporary, children, dir, { readonly: true });
      } catch (err) {
        await drop().catch(() => undefined);
        throw err;
      }
      return releasedOnce(dir, drop);
    },

    async setDefault(name) {
      await requireEnvironment(name);
      await zpool(['set', `bootfs=${environmentDataset(pool, name)}`, pool]);
    },

    async bootRoot(name) {
      await requireEnvironment(name);
      const boot = await bootOf(name);
      const base = { fs: 'zfs' as const, pool, dataset: environmentDataset(pool, name) };
      return boot === null ? base : { ...base, boot: { pool: boot.split('/')[0]!, dataset: boot } };
    },

    async space() {
      const record = await readOne(pool, ['used', 'available']);
      const used = Number(record ? prop(record, 'used') : NaN);
      const free = Number(record ? prop(record, 'available') : NaN);
      if (!Number.isFinite(used) || !Number.isFinite(free)) throw new SysprimeError('BACKEND', `cannot read the space of pool ${pool}`);
      return { size: used + free, free };
    },

    async setMeta(name, meta) {
      await requireEnvironment(name);
      const ds = environmentDataset(pool, name);
      for (const [key, value] of Object.entries(meta)) {
        const property = metaProperty(key, value);
        if (value === null) {
          await zfs(['inherit', property, ds]);
          continue;
        }
        await zfs(['set', `${property}=${value}`, ds]);
      }
    },

    async recover(): Promise<string[]> {
      const done: string[] = [];
      const records = await readRoot(['type', 'origin', 'mountpoint', PROP.savedMountpoint]);
      let mounts = await readMounts();

      const bp = await bootPool();
      if (bp !== null) {
        // First: a boot dataset mounted inside a tree keeps the tree busy.
        // Boot datasets a private mount pointed elsewhere (zfs-fuse) and whose owner is gone: unmounted, their mountpoint put back.
        const bootAltroot = await altrootOf(bp).catch(() => null);
        for (const r of await readTree(bootContainer(bp), ['type', PROP.savedMountpoint]).catch(() => [])) {
          if (isSnapshot(r)) continue;
          const saved = localProp(r, PROP.savedMountpoint) !== null;
          // Mounted at <private directory>/boot: stale when the tree's private mount is (judged by the bind, with an altroot).
          const all = mountTargetsOf(mounts, r.name).filter((t) => t !== '/boot');
          const targets = bootAltroot === null ? all : all.filter((t) => !all.some((o) => o !== t && t === join(bootAltroot, o)));
          const stale = (await staleTargets(targets.map((t) => t.replace(/\/boot$/, '')))).map((t) => `${t}/boot`);
          if (saved && stale.length === targets.length) {
            await unmountDataset(r.name);
            done.push(`unmounted ${r.name}${targets.length > 0 ? ` from ${targets.join(', ')}` : ''} and put back its mountpoint`);
          } else if (!saved) {
            for (const t of stale) await run('umount', [t]);
            if (stale.length > 0) done.push(`unmounted ${r.name} from ${stale.join(', ')}`);
          }
        }
      }

      for (const r of records) {
        // The temporary clone itself: its children go with it.
        if (isSnapshot(r) || !isTemporaryDataset(pool, r.name) || r.name.slice(root.length + 1).includes('/')) continue;
        const pid = Number(/-(\d+)-[0-9a-f]+$/.exec(r.name)?.[1] ?? '0');
        if (processAlive(pid)) continue;
        for (const line of await destroyTemporary(r.name)) done.push(line);
      }

      if (bp !== null) done.push(...(await recoverBootPool(pool, bp)));

      mounts = await readMounts();
      const altroot = await altrootOf(pool);
      for (const r of records) {
        if (isSnapshot(r) || isTemporaryDataset(pool, r.name) || localProp(r, PROP.savedMountpoint) === null) continue;
        if ((await readOne(r.name, ['type'])) === null) continue;
        const all = mountTargetsOf(mounts, r.name).filter((t) => t !== '/');
        // A private mount on a pool with an altroot (zfs-fuse) is a mount below the altroot bound at the private directory: judged by the bind.
        const targets = altroot === null ? all : all.filter((t) => !all.some((o) => o !== t && t === join(altroot, o)));
        const stale = await staleTargets(targets);
        // Mounted at a directory the admin chose with `sysprime mount`: that mount is wanted.
        if (stale.length < targets.length) continue;
        if (targets.length > 0) {
          for (const t of stale) done.push(...(await clearBelow(r.name, t)));
          await unmountTree(r.name, await childMounts(r.name));
          done.push(`unmounted ${r.name} from ${all.join(', ')}`);
        } else if (await restoreMountpoint(r.name)) {
          done.push(`restored the mountpoint of ${r.name}`);
        }
      }

      mounts = await readMounts();
      // Deepest first: an environment's children are mounted below it.
      for (const m of [...mounts].reverse()) {
        if (!m.source.startsWith(`${pool}/`) || (await staleTargets([m.mountPoint])).length === 0) continue;
        await run('umount', [m.mountPoint]);
        done.push(`unmounted ${m.source} from ${m.mountPoint}`);
      }

      // Read again: destroying temporary clones above may have taken copy snapshots with them.
      const now = await readRoot(['type', 'origin']);
      for (const r of now) {
        if (!isSnapshot(r) || !sweepableCopy(shortSnapshotName(r.name), (pid) => processAlive(pid))) continue;
        if (dependentsOf(now, r.name).length > 0) continue;
        await zfs(['destroy', assertInsideRoot(pool, r.name)]);
        done.push(`destroyed unused copy snapshot ${r.name}`);
      }

      done.push(...(await sweepRunDir(runDir)));

      // Pristine snapshots a kill left without sysprime's hold (between the snapshot and its hold, or a release
      // and the destroy that did not follow): held again.
      const bpNow = await bootPool();
      const marked = [
        ...(await readRoot(['type', PROP.pristine, HOLD_COUNT])),
        ...(bpNow === null ? [] : await readTree(bootContainer(bpNow), ['type', PROP.pristine, HOLD_COUNT]).catch(() => [] as DatasetRecord[])),
      ];
      for (const snapshot of unheldPristines(marked)) {
        await holdPristine(snapshot);
        done.push(`held the pristine snapshot ${snapshot} again (\`zfs hold ${HOLD_TAG}\`)`);
      }
      return done;
    },
  };

  /**
   * What a dead owner left inside its private mount `target` of `ds`, which
   * keeps the mount busy: processes whose root is in it (a chroot's command),
   * then every mount below it that is not one of the environment's datasets
   * (a chroot's /dev, /proc, /sys, /run, and the root's self-bind), deepest
   * first. The environment's own mounts are left to unmountTree.
   */
  async function clearBelow(ds: string, target: string): Promise<string[]> {
    const done: string[] = [];
    const stopped = await stopProcessesIn(target);
    if (stopped.length > 0) done.push(`stopped processes ${stopped.join(' ')} left in ${target}`);
    const table = await readMountinfo();
    const ownMount = (m: MountinfoEntry): boolean => (m.source === ds || m.source.startsWith(`${ds}/`)) && !isSelfBind(m, table);
    for (const m of unmountOrder(mountsAtOrBelow(table, target).filter((m) => !ownMount(m)))) {
      await run('umount', [m.mountPoint]);
      done.push(`unmounted ${m.mountPoint}`);
    }
    return done;
  }

  /** Private mount directories (under the run directory) whose owner process is gone. */
  async function staleTargets(targets: readonly string[]): Promise<string[]> {
    const out: string[] = [];
    for (const t of targets) {
      const name = privateMountName(runDir, t);
      if (name !== null && !(await claimAlive(runDir, name))) out.push(t);
    }
    return out;
  }

  async function destroyTemporary(ds: string): Promise<string[]> {
    const out: string[] = [];
    const targets = mountTargetsOf(await readMounts(), ds);
    await unmountTree(ds, await childMounts(ds));
    if (targets.length > 0) out.push(`unmounted ${ds} from ${targets.join(', ')}`);
    out.push(...(await destroyWithDependents(pool, ds)));
    return out;
  }

  return backend;
}
