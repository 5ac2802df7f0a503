/**
 * Kernels when /boot is a partition of its own (Debian's installer offers a
 * separate ext4 /boot; so do many admins).
 *
 * Every environment mounts the same /boot partition, so the kernels found
 * there are the running system's, not each environment's: two environments
 * may hold the same kernel version built differently (an initramfs made with
 * another configuration), and an update staged in a clone must never
 * overwrite the running system's kernel. So each environment keeps its own
 * kernels in its own tree's `/boot`, the directory the partition is mounted
 * over (hidden while it runs, seen by every boot entry, which loads kernels
 * from the environment: GRUB straight from the subvolume, systemd-boot from
 * its copies on the ESP):
 *
 * - a staged clone gets its kernels there by itself: the package manager
 *   runs chrooted in the clone, where the partition is not mounted;
 * - adoption copies the running system's kernels there (the installer's
 *   root has none of its own);
 * - every sync copies the running environment's kernels from the partition
 *   to its tree again, so a kernel the admin installed or removed in the
 *   running system (apt, outside sysprime) is what its entry boots.
 *
 * Only kernel files are mirrored (`vmlinuz-*`, `initrd.img-*`,
 * `initramfs-*.img`, `config-*`, `System.map-*`): GRUB's directory and
 * anything else on the partition stay the partition's.
 *
 * A /boot that is a ZFS dataset is not such a partition: it is the boot
 * pool of the OpenZFS guides' layout (`bpool/BOOT/<name>`, one per root).
 * The ZFS backend carries that boot dataset with its environment
 * (backends/zfs/boot-pool.ts), so nothing is mirrored; init and stage refuse
 * only a boot dataset not named after its root, which it cannot pair.
 */
import { closeSync, constants, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, type Stats } from 'node:fs';
import { copyDurable, replaceFile } from '../os/durable.js';
import { join } from 'node:path';
import type { Context } from '../context.js';
import type { EnvironmentInfo } from '../backends/types.js';
import { log } from '../log.js';
import { lstatIn, openFileIn, unlinkIn, withDirIn, withDirInAsync, withFileAt, copyFileIn, type DirHandle } from '../os/confined.js';
import { mountAt, parseMountinfo, type MountinfoEntry } from '../os/mounts.js';
import { rootMount, runsFromPool } from '../backends/registry.js';
import { isZfsMount } from '../backends/zfs/parse.js';
import { SysprimeError, messageOf } from '../errors.js';
import { faultPoint } from '../process/fault.js';

const KERNEL_FILE = /^(?:(?:vmlinuz|vmlinux|initrd\.img|config|System\.map)-.+|initramfs-.+\.img)$/;

// dpkg unpacks as `<name>.dpkg-new` (and keeps `.dpkg-tmp`, `.dpkg-bak` ...) before renaming: never a kernel.
export const isKernelFile = (name: string): boolean => KERNEL_FILE.test(name) && !/\.dpkg-[a-z]+$/.test(name) && !name.endsWith('.new');

/** What the running system's /boot is, when it is a filesystem of its own. */
export type BootMount =
  /** A partition every environment mounts (Debian's separate ext4 /boot): its kernels are mirrored (above). */
  | { kind: 'partition'; path: string }
  /**
   * A dataset of a ZFS boot pool, as the OpenZFS "Root on ZFS" guides lay
   * out for GRUB: `bpool/BOOT/<name>` mounted at /boot beside
   * `rpool/ROOT/<name>`. One per root, not one every environment shares:
   * taken for a partition, the kernels of every environment would be
   * copied into the running root's boot dataset. The ZFS backend carries
   * it with its environment when it is named after the root.
   */
  | { kind: 'zfs-boot-pool'; path: string; dataset: string };

/** The mount at `path` as a /boot (pure): a ZFS dataset is a boot pool's, anything else a partition. */
function asBootMount(entry: MountinfoEntry, path: string): BootMount {
  // A ZFS mount's source is its dataset (`bpool/BOOT/debian`), never a device path.
  if (isZfsMount(entry) && !entry.source.startsWith('/')) return { kind: 'zfs-boot-pool', path, dataset: entry.source };
  return { kind: 'partition', path };
}

/**
 * The running system's /boot when it is a filesystem of its own: a mount
 * at /boot on another device than / (pure, of the mount table). `forced`
 * names a directory to take for /boot instead (SYSPRIME_BOOT_PARTITION:
 * tests, whose running system is not on the pool): whatever is mounted
 * there says what it is, and a plain directory stands in for a partition.
 */
export function bootMountIn(table: readonly MountinfoEntry[], forced?: string): BootMount | null {
  if (forced !== undefined) {
    const at = mountAt(table, forced);
    return at === undefined ? { kind: 'partition', path: forced } : asBootMount(at, forced);
  }
  const root = mountAt(table, '/');
  const boot = mountAt(table, '/boot');
  return root !== undefined && boot !== undefined && boot.dev !== root.dev ? asBootMount(boot, '/boot') : null;
}

function runningMountinfo(): MountinfoEntry[] {
  try {
    return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  } catch {
    return [];
  }
}

/** The running system's /boot when it is a partition of its own (a ZFS boot pool's dataset is not one). */
export function separateBoot(mountinfo?: string): string | null {
  const boot = bootMountIn(mountinfo === undefined ? runningMountinfo() : parseMountinfo(mountinfo));
  return boot?.kind === 'partition' ? boot.path : null;
}

function kernelFiles(dir: string): Map<string, Stats> {
  const out = new Map<string, Stats>();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    if (!isKernelFile(n)) continue;
    const st = statSync(join(dir, n), { throwIfNoEntry: false });
    if (st?.isFile()) out.set(n, st);
  }
  return out;
}

/** Whether two files hold the same bytes (sizes already equal). */
function sameBytes(a: string, fdB: number): boolean {
  const fdA = openSync(a, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const bufA = Buffer.allocUnsafe(1 << 20);
    const bufB = Buffer.allocUnsafe(1 << 20);
    let pos = 0;
    for (;;) {
      const nA = readSync(fdA, bufA, 0, bufA.length, pos);
      const nB = readSync(fdB, bufB, 0, bufB.length, pos);
      if (nA !== nB) return false;
      if (nA === 0) return true;
      if (!bufA.subarray(0, nA).equals(bufB.subarray(0, nB))) return false;
      pos += nA;
    }
  } finally {
    closeSync(fdA);
  }
}

function differs(dir: DirHandle, name: string, src: string, st: Stats): boolean {
  const have = lstatIn(dir, name);
  if (have === undefined || !have.isFile() || have.size !== st.size) return true;
  const fd = openFileIn(dir, name);
  if (fd === undefined) return true;
  try {
    return !sameBytes(src, fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Make `<tree>/boot` hold exactly the kernel files of `from`: copies what
 * differs, removes kernel files `from` no longer has. Written through the
 * confined writer (the tree is an environment). Returns what changed.
 */
export async function mirrorKernels(from: string, tree: string): Promise<{ copied: string[]; removed: string[] }> {
  const want = kernelFiles(from);
  const result = { copied: [] as string[], removed: [] as string[] };
  // An environment without a kernel of its own would get no boot entry: nothing to mirror means nothing to remove either.
  if (want.size === 0) return result;
  await withDirInAsync(tree, '/boot', { create: true, mode: 0o755 }, async (dir) => {
    for (const [name, st] of want) {
      const src = join(from, name);
      if (!differs(dir, name, src, st)) continue;
      await copyFileIn(dir, name, src, st.mode & 0o7777, { uid: st.uid, gid: st.gid });
      result.copied.push(name);
    }
    for (const name of readdirSync(dir.self)) {
      if (isKernelFile(name) && !want.has(name) && lstatIn(dir, name)?.isFile()) {
        unlinkIn(dir, name);
        result.removed.push(name);
      }
    }
  });
  return result;
}

/**
 * Whether the running root is on the environments' pool or filesystem. On
 * ZFS the pool alone decides, so init can ask before the environment
 * `name` exists (the backend's bootRoot needs it).
 */
async function runsFromEnvironmentsPool(ctx: Context, name: string): Promise<boolean> {
  if (ctx.backend.kind !== 'zfs') return runsFromPool(await ctx.backend.bootRoot(name));
  // The backend's pool, as the registry chose it.
  const pool = ctx.config.zfs.pool ?? rootMount()?.source.split('/')[0];
  return pool !== undefined && runsFromPool({ fs: 'zfs', pool, dataset: `${pool}/ROOT/${name}` });
}

/**
 * The running system's /boot as environment `name` sees it, when it is a
 * filesystem of its own and the running root is on the environments' pool
 * (a rescue system's /boot is not this machine's).
 * `SYSPRIME_BOOT_PARTITION` names a directory to take for it instead (tests:
 * their running system is not on the pool).
 */
export async function bootMountOf(ctx: Context, name: string): Promise<BootMount | null> {
  const forced = process.env['SYSPRIME_BOOT_PARTITION'];
  if (forced !== undefined && forced !== '') return bootMountIn(runningMountinfo(), forced);
  const boot = bootMountIn(runningMountinfo());
  return boot !== null && (await runsFromEnvironmentsPool(ctx, name)) ? boot : null;
}

/** Whether a boot pool's dataset is the one the ZFS backend pairs with environment `name`: `<boot pool>/BOOT/<name>`. */
export function pairedBootDataset(dataset: string, name: string): boolean {
  const parts = dataset.split('/');
  return parts.length === 3 && parts[1] === 'BOOT' && parts[2] === name;
}

/**
 * What is wrong with a ZFS boot pool at /boot for environment `name`, in
 * one line, or null when the backend carries it (`<boot pool>/BOOT/<name>`).
 * `paired`: whether the environment already has that boot dataset as its
 * own (false: adopted before sysprime carried boot datasets).
 */
export function zfsBootPoolProblem(boot: Extract<BootMount, { kind: 'zfs-boot-pool' }>, name: string, paired = true): string | null {
  if (pairedBootDataset(boot.dataset, name) && paired) return null;
  const what = `${boot.path} is the ZFS dataset ${boot.dataset}, a boot pool with one boot dataset per root (the OpenZFS Root on ZFS layout for GRUB)`;
  if (!pairedBootDataset(boot.dataset, name)) return `${what}, not named after the root's environment "${name}" (<boot pool>/BOOT/${name}): sysprime cannot tell which environment it belongs to`;
  return `${what}, not recorded as "${name}"'s own boot dataset (adopted before sysprime carried boot datasets)`;
}

/** Whether environment `name` (`exists`: already made) has its boot dataset as its own (the backend's bootRoot says so); true when it does not exist yet. */
async function hasOwnBoot(ctx: Context, name: string, exists: boolean): Promise<boolean> {
  if (!exists) return true;
  const at = await ctx.backend.bootRoot(name);
  return at.fs === 'zfs' && at.boot !== undefined;
}

/** The generator that mounts the booted environment's boot dataset at /boot (share/systemd/system-generators). */
export const BOOT_GENERATOR = 'sysprime-boot-generator';
/** Where systemd looks for system generators (systemd.generator(7)), the package's place first. */
const GENERATOR_DIRS = ['/usr/lib/systemd/system-generators', '/lib/systemd/system-generators', '/etc/systemd/system-generators', '/usr/local/lib/systemd/system-generators'];

/** Whether a tree holds BOOT_GENERATOR where systemd runs it (read confined to the tree). */
export function hasBootGenerator(tree: string): boolean {
  return GENERATOR_DIRS.some((dir) => withDirIn(tree, dir, { create: false }, (d) => lstatIn(d, BOOT_GENERATOR) !== undefined) === true);
}

async function bootGeneratorIn(ctx: Context, name: string, exists: boolean): Promise<boolean> {
  if (!exists) return true;
  const tree = await ctx.backend.openEnvironment(name);
  try {
    return hasBootGenerator(tree.path);
  } finally {
    await tree.release();
  }
}

export interface BootPoolProblem {
  boot: Extract<BootMount, { kind: 'zfs-boot-pool' }>;
  /** `unpaired`: the backend cannot carry the boot dataset; `no-generator`: nothing would mount it. */
  kind: 'unpaired' | 'no-generator';
  problem: string;
  hint: string;
}

/**
 * The problem of the running system's ZFS boot pool for environment `name`,
 * or null: a boot dataset the backend cannot carry (see zfsBootPoolProblem),
 * or an environment without BOOT_GENERATOR, where nothing would mount its
 * /boot once a second boot dataset shares the mount point (zfs-mount-generator
 * drops a mount point several canmount=noauto datasets share).
 */
export async function zfsBootPoolProblemOf(ctx: Context, name: string): Promise<BootPoolProblem | null> {
  const boot = await bootMountOf(ctx, name);
  if (boot?.kind !== 'zfs-boot-pool') return null;
  const exists = (await ctx.backend.listEnvironments()).some((e) => e.name === name);
  const problem = zfsBootPoolProblem(boot, name, await hasOwnBoot(ctx, name, exists));
  if (problem !== null) {
    const [pool] = boot.dataset.split('/');
    return {
      boot,
      kind: 'unpaired',
      problem,
      hint: `rename it to ${pool}/BOOT/${name} (zfs rename) and run sysprime init on the machine again, or keep the kernels in the root dataset and boot with ZFSBootMenu or systemd-boot; see docs/boot.md, "A ZFS boot pool"`,
    };
  }
  if (await bootGeneratorIn(ctx, name, exists)) return null;
  return {
    boot,
    kind: 'no-generator',
    problem: `${boot.path} is the ZFS dataset ${boot.dataset}, a boot pool with one boot dataset per root, and "${name}" has no ${BOOT_GENERATOR}: with a second environment's boot dataset beside it, nothing would mount /boot at boot`,
    hint: `install sysprime's package in "${name}" (it puts ${BOOT_GENERATOR} in /lib/systemd/system-generators), or copy share/systemd/system-generators/${BOOT_GENERATOR} there; see docs/boot.md, "A ZFS boot pool"`,
  };
}

/**
 * Refuse, before anything changes, a verb that would take a ZFS boot pool
 * for a /boot partition (init, stage) where the backend cannot carry it:
 * a boot dataset not named after its root, or an environment adopted
 * without it. Copying kernels in and out of the running root's boot dataset
 * would leave no environment a boot dataset of its own. And a ZFS root
 * whose /boot is a partition (below).
 */
export async function refuseZfsBootPool(ctx: Context, name: string): Promise<void> {
  const found = (await zfsBootPoolProblemOf(ctx, name)) ?? (await zfsBootPartitionProblemOf(ctx, name));
  if (found !== null) throw new SysprimeError('REFUSED', found.problem, { hint: found.hint });
}

/**
 * A ZFS root with a /boot partition of its own (an ext4 /boot, an ESP
 * mounted at /boot), or null: the running environment is reached at `/`
 * (its dataset is mounted there), where the partition hides the dataset's
 * own /boot, so its kernels never reach its tree (syncKernels finds the
 * partition itself) and no environment made from it would have one.
 * Refused by init and stage until that is carried; named by doctor.
 */
export async function zfsBootPartitionProblemOf(ctx: Context, name: string): Promise<{ problem: string; hint: string } | null> {
  if (ctx.backend.kind !== 'zfs') return null;
  const boot = await bootMountOf(ctx, name);
  if (boot?.kind !== 'partition') return null;
  return {
    problem: `${boot.path} is a partition of its own beside a ZFS root: sysprime cannot yet keep each environment's kernels there, and an environment made from "${name}" would have none`,
    hint: 'keep /boot in a boot pool as the OpenZFS Root on ZFS guide does (bpool/BOOT/<name>), or inside the root dataset with the ESP at /boot/efi or /efi (ZFSBootMenu, systemd-boot); see docs/boot.md, "Kernels with a separate /boot"',
  };
}

/**
 * The /boot partition whose kernels are environment `name`'s (see
 * bootMountOf). A ZFS boot pool's dataset is never taken for one: it is the
 * environment's own /boot, carried by the backend; one the backend cannot
 * carry is refused by init and stage first (refuseZfsBootPool), and left
 * alone by the other verbs with a warning.
 */
export async function bootPartitionOf(ctx: Context, name: string): Promise<string | null> {
  const boot = await bootMountOf(ctx, name);
  if (boot?.kind === 'zfs-boot-pool') {
    const found = await zfsBootPoolProblemOf(ctx, name);
    if (found !== null) log.warn(found.kind === 'unpaired' ? `${found.problem}; its kernels are left as they are` : `${found.problem} (${found.hint})`);
    return null;
  }
  return boot?.path ?? null;
}

/**
 * Make the partition hold exactly the kernel files of `<tree>/boot` (read
 * through the confined reader, written with the durable writer: the
 * partition is the machine's, not an environment's). A tree without a kernel
 * leaves the partition as it is.
 */
async function mirrorIntoPartition(tree: string, partition: string): Promise<{ copied: string[]; removed: string[] }> {
  const result = { copied: [] as string[], removed: [] as string[] };
  const names = withDirIn(tree, '/boot', { create: false }, (d) => readdirSync(d.self).filter((n) => isKernelFile(n) && (lstatIn(d, n)?.isFile() ?? false))) ?? [];
  if (names.length === 0) return result;
  // Removed first: a /boot sized for one environment's kernels (Debian's is about 480 MB) must not
  // need room for two sets at once. What goes was saved into its owner's tree before (kernelsInto).
  for (const [n] of kernelFiles(partition)) {
    if (!names.includes(n)) {
      rmSync(join(partition, n), { force: true });
      result.removed.push(n);
    }
  }
  for (const n of names) {
    const dest = join(partition, n);
    await withFileAt(tree, `/boot/${n}`, async (proc, size) => {
      const have = statSync(dest, { throwIfNoEntry: false });
      if (have?.isFile() && have.size === size) {
        const fd = openSync(proc, constants.O_RDONLY);
        try {
          if (sameBytes(dest, fd)) return;
        } finally {
          closeSync(fd);
        }
      }
      await copyDurable(proc, dest, { mode: 0o644 });
      result.copied.push(n);
    });
  }
  return result;
}

/**
 * The file on the partition naming the environment whose kernels it holds:
 * its name, then `incomplete` while they are being put there, then
 * `created-order N` (the backend's creation order: the Btrfs subvolume id,
 * the ZFS createtxg). The order is what says which environment it is: a
 * rename keeps it, and an environment destroyed and made again under the
 * same name gets another, so the new one never takes the old one's kernels
 * for its own. A file without it (written before) is read by name. A change
 * of hands killed or out of room halfway leaves the partition with part of
 * one set and part of none: it is nobody's to copy back into a tree (that
 * would delete the old owner's kernels from its own tree), and the next
 * sync for that environment finishes putting its kernels there.
 */
export const OWNER_FILE = '.sysprime-kernels-of';
const INCOMPLETE = 'incomplete';
const ORDER = 'created-order ';

/** An environment as the owner file names it: its name, and its creation order where known. */
export interface KernelOwner {
  name: string;
  createdOrder?: number;
}

interface OwnerRecord extends KernelOwner {
  complete: boolean;
}

function ownerOf(partition: string): OwnerRecord | null {
  let text: string;
  try {
    text = readFileSync(join(partition, OWNER_FILE), 'utf8');
  } catch {
    return null;
  }
  const [name, ...rest] = text.split('\n').map((l) => l.trim());
  if (name === undefined || name === '') return null;
  const order = rest.find((l) => l.startsWith(ORDER))?.slice(ORDER.length);
  return { name, complete: !rest.includes(INCOMPLETE), ...(order !== undefined && /^\d+$/.test(order) ? { createdOrder: Number(order) } : {}) };
}

function writeOwner(partition: string, who: KernelOwner, incomplete: boolean): void {
  const lines = [who.name, ...(incomplete ? [INCOMPLETE] : []), ...(who.createdOrder !== undefined ? [`${ORDER}${who.createdOrder}`] : [])];
  replaceFile(join(partition, OWNER_FILE), `${lines.join('\n')}\n`, { mode: 0o644 });
}

/** Whether the record names this environment: by creation order when both have one, else by name. */
function names(record: KernelOwner, who: KernelOwner): boolean {
  if (record.createdOrder !== undefined && who.createdOrder !== undefined) return record.createdOrder === who.createdOrder;
  return record.name === who.name;
}

/**
 * Keep an environment's kernels and the /boot partition in step. The
 * partition holds the kernels of the environment that last ran with it
 * mounted (named in OWNER_FILE): while that one runs, what apt did there is
 * copied into its tree; when another one runs (a staged environment's first
 * boot, a rollback), its own tree's kernels are put on the partition first,
 * so the running system's /boot matches the kernel it booted, and it becomes
 * the owner. `adopted` (init): the partition is the adopted root's.
 * `listed`: the environments, when the caller has just listed them.
 */
export async function kernelsInto(
  ctx: Context,
  name: string,
  partition: string,
  adopted = false,
  listed?: readonly EnvironmentInfo[],
): Promise<'none' | 'into-environment' | 'onto-partition'> {
  const envs = listed ?? (await ctx.backend.listEnvironments());
  const me = envs.find((e) => e.name === name);
  const who: KernelOwner = me === undefined ? { name } : { name, createdOrder: me.createdOrder };
  const record = ownerOf(partition);
  // Only a whole set is anyone's: a change of hands left halfway (see OWNER_FILE) is copied into no tree.
  const owner = !adopted && record?.complete === true && !names(record, who) ? envs.find((e) => names(record, { name: e.name, createdOrder: e.createdOrder })) : undefined;
  if (owner !== undefined) {
    // The partition is about to take `name`'s kernels. What apt put there while the owner ran
    // (a kernel installed since its last sync) is saved into the owner's own tree first: the
    // partition was the only copy of it.
    const mine = await ctx.backend.openEnvironment(owner.name);
    try {
      const r = await mirrorKernels(partition, mine.path);
      if (r.copied.length > 0 || r.removed.length > 0) log.info(`environment "${owner.name}": its own /boot from ${partition} before it holds "${name}"'s (${[...r.copied.map((n) => `copied ${n}`), ...r.removed.map((n) => `removed ${n}`)].join(', ')})`);
    } finally {
      await mine.release();
    }
  }
  const tree = await ctx.backend.openEnvironment(name);
  try {
    return await syncKernels(partition, tree.path, who, adopted);
  } finally {
    await tree.release();
  }
}

/** The unit that runs `kernelsAtBoot` early in every boot; init enables it where /boot is a partition. */
export const BOOT_START_UNIT = 'sysprime-boot-start.service';

/**
 * Early in every boot (BOOT_START_UNIT, before anything can run apt): the
 * /boot partition gets the running environment's kernels when it holds
 * another's (the first boot of a staged environment, a one-shot or a
 * fallback to yesterday's), so the running system's /boot is the kernel it
 * booted from its first moment, not only after the next sysprime verb.
 */
export async function kernelsAtBoot(ctx: Context): Promise<string[]> {
  const envs = await ctx.backend.listEnvironments();
  const booted = envs.find((e) => e.booted);
  if (booted === undefined) return [];
  const partition = await bootPartitionOf(ctx, booted.name);
  if (partition === null) return [];
  const way = await kernelsInto(ctx, booted.name, partition, false, envs);
  return way === 'onto-partition' ? [`${partition} now holds the kernels of "${booted.name}"`] : [];
}

/** kernelsInto on a tree already open; returns which way the kernels went. */
export async function syncKernels(partition: string, tree: string, who: KernelOwner, adopted = false): Promise<'none' | 'into-environment' | 'onto-partition'> {
  // Where the environment's /boot is the partition itself (a tree opened at the running root), there is nothing to do.
  const a = statSync(join(tree, 'boot'), { throwIfNoEntry: false });
  const b = statSync(partition, { throwIfNoEntry: false });
  if (a !== undefined && b !== undefined && a.dev === b.dev && a.ino === b.ino) return 'none';
  const record = ownerOf(partition);
  const name = who.name;
  const say = (r: { copied: string[]; removed: string[] }, what: string) => {
    if (r.copied.length > 0 || r.removed.length > 0) log.info(`${what}: ${[r.copied.length > 0 ? `copied ${r.copied.join(', ')}` : '', r.removed.length > 0 ? `removed ${r.removed.join(', ')}` : ''].filter((x) => x !== '').join('; ')}`);
  };
  let way: 'into-environment' | 'onto-partition';
  const whole = record === null || record.complete;
  const mine = record !== null && names(record, who);
  if (adopted || record === null || (mine && whole)) {
    say(await mirrorKernels(partition, tree), `environment "${name}": its own /boot from ${partition}`);
    way = 'into-environment';
  } else {
    // Marked before the first kernel goes: from here until the mark is cleared the partition is nobody's whole set.
    if (whole || !mine) writeOwner(partition, who, true);
    faultPoint('boot:partition', 'marked');
    // Another environment under the same name (one destroyed and made again), or the one the record names.
    const held = !mine && record.name === name ? 'an earlier environment of that name' : `"${record.name}"`;
    say(await mirrorIntoPartition(tree, partition), `${partition} now holds the kernels of "${name}" (${whole ? `it held those of ${held}` : `it held part of those of ${held}: a change of hands left halfway`})`);
    way = 'onto-partition';
  }
  // Rewritten where it named another, was incomplete, has an old name (a rename), or lacks the creation order now known.
  if (!mine || !whole || record.name !== name || (record.createdOrder === undefined && who.createdOrder !== undefined)) writeOwner(partition, who, false);
  return way;
}

/**
 * Before a copy of environment `env` is made (create, the apt hook's copy, a
 * snapshot, export): when it is the running one and /boot is a partition of
 * its own, what apt put on the partition since the last sync (a kernel
 * upgrade) is copied into its own tree first, so the copy has the kernels
 * the running system boots with, not those of its last sync. One that
 * cannot be brought in step is said, and the copy made as it is.
 */
export async function kernelsBeforeCopy(ctx: Context, env: { name: string; booted: boolean }): Promise<void> {
  if (!env.booted) return;
  const partition = await bootPartitionOf(ctx, env.name);
  if (partition === null) return;
  try {
    await kernelsInto(ctx, env.name, partition);
  } catch (err) {
    log.warn(`the kernels on ${partition} could not be copied into "${env.name}"'s own /boot (${messageOf(err)}): the copy has those of its last sync`);
  }
}
