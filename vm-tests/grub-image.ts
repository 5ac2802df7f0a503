/**
 * The GRUB machine: Debian 12 as its installer lays out a guided Btrfs root
 * on UEFI (partman-btrfs): a GPT disk with a FAT32 ESP and one Btrfs
 * partition whose top level holds `@rootfs` with the whole system (/boot
 * inside it), no default subvolume set, fstab mounting `/` with
 * `subvol=@rootfs`, and GRUB (shim, the signed GRUB) installed by
 * `grub-install` and `update-grub` in a chroot into the new root.
 *
 * The host makes the disk and unpacks the tree into `@rootfs` (it can mount
 * Btrfs, so no copy under TCG); GRUB is installed for real by the guest: its
 * kernel boots `@rootfs` directly with an installer script as PID 1, which
 * mounts the target as the installer does (the root subvolume, the ESP at
 * /boot/efi, /dev /proc /sys bound in) and runs GRUB's own tools chrooted
 * there. Two cache layers, keyed by what decides their contents: the tree as
 * a tarball, and the installed disk. The sysprime build comes on a drive of
 * its own (image.ts, sysprimeDrive), so a new build does not install the
 * machine again.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../src/process/run.js';
import { detachLoops, onCleanup, unmountBelow } from './cleanup.js';
import * as guest from './guest-files.js';
import { customizeRoot, DISK_SIZE, ESP_MIB, formatBtrfsDisk, hash, initramfsHook, leanDpkgOptions, reuseCached, type BaseImage, type ImageOptions } from './image.js';
import { REPO_DIR, VERSIONS } from './packages.js';
import { OVMF_VARS, runVm } from './vm.js';
import { debianSources } from './zfs-image.js';

const INCLUDE = [
  'linux-image-amd64',
  'systemd-sysv',
  'btrfs-progs',
  'udev',
  'initramfs-tools',
  'zstd',
  'dosfstools',
  'passwd',
  'apt',
  // sysprime reads and replays ACLs and xattrs with getfacl/getfattr, setfacl/setfattr.
  'acl',
  'attr',
  // What Debian's installer installs to boot amd64 on UEFI: GRUB, its signed image and shim.
  'grub-efi-amd64',
  'grub-efi-amd64-signed',
  'shim-signed',
];

/** Where the installer script lives in the tree while the installer boot runs it (it removes itself). */
const INSTALLER = '/usr/local/sbin/sysprime-vm-install';

function treeRecipe(suite: string): string[] {
  return [
    '--variant=minbase',
    '--format=tar',
    `--include=${INCLUDE.join(',')}`,
    // The installer boot writes this tree's /boot and ESP under TCG; what a virtio guest never uses is left out.
    ...leanDpkgOptions(),
    initramfsHook(['virtio_pci', 'virtio_blk', 'btrfs']),
    '--customize-hook=rm -f "$1/etc/apt/sources.list"; echo sysprime-vm > "$1/etc/hostname"',
  ];
}

/** The Debian tree with GRUB, as a tarball, built once per recipe. */
export async function grubTreeTarball(opts: ImageOptions): Promise<string> {
  const suite = opts.suite ?? 'bookworm';
  const args = treeRecipe(suite);
  // The suite and its security updates, as the installer configures them.
  const sources = debianSources(suite, 'main');
  const path = join(opts.cacheDir, `grub-rootfs-${hash([...args, suite, ...sources])}.tar`);
  if (existsSync(path)) return path;
  opts.log(`building the Debian tree with GRUB (mmdebstrap, about a minute): ${path}`);
  const partial = `${path}.partial-${process.pid}`;
  const forget = onCleanup(`partial ${partial}`, () => rm(partial, { force: true }));
  await run('mmdebstrap', ['--quiet', ...args, suite, partial, ...sources], { timeout: 20 * 60 * 1000, env: { DEBIAN_FRONTEND: 'noninteractive' } });
  await rename(partial, path);
  await forget();
  for (const name of await readdir(opts.cacheDir)) {
    if (/^grub-rootfs-[0-9a-f]+\.tar$/.test(name) && join(opts.cacheDir, name) !== path) await rm(join(opts.cacheDir, name), { force: true });
  }
  return path;
}

/**
 * PID 1 of the installer boot, running in `@rootfs` itself: the target
 * mounted as Debian's installer mounts it, /etc/default/grub as it leaves it
 * for a serial console, `grub-install` and `update-grub` chrooted there.
 */
export function grubInstallerScript(separateBoot = false): string {
  const rootDev = separateBoot ? '/dev/vda3' : '/dev/vda2';
  return `#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin; export PATH
say() { echo "SYSPRIME-VM-INSTALL $*"; }
fail() { say "FAIL $*"; sync; echo o > /proc/sysrq-trigger; sleep 60; }
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sys /sys
mountpoint -q /dev || mount -t devtmpfs dev /dev
mountpoint -q /run || mount -t tmpfs tmpfs /run
say begin
# The initramfs's udev named the disks by UUID; update-grub writes root=UUID= only when it finds that link.
ls -l /dev/disk/by-uuid
t=/mnt
mount -t btrfs -o subvol=${guest.GRUB_ROOT_SUBVOLUME} ${rootDev} $t || fail mount-root
${separateBoot ? 'mount -t ext4 /dev/vda2 $t/boot || fail mount-boot\n' : ''}mount -t vfat -o umask=0077 /dev/vda1 $t/boot/efi || fail mount-esp
for d in dev proc sys; do mount --bind /$d $t/$d || fail bind-$d; done
# The firmware's variables, as on the installer's UEFI boot: grub-install writes none (--no-nvram),
# update-grub reads them to offer the firmware's settings.
mount -t efivarfs efivarfs $t/sys/firmware/efi/efivars || fail efivarfs
# /etc/default/grub: Debian's, with a short timeout, the installer's serial console on the
# kernel's command line (and panic=5: a panicking kernel must reboot), GRUB's menu on the serial line.
${grubDefaults('console=ttyS0,115200 panic=5')}# Fresh firmware variables have no boot entry: the removable path (which the installer
# offers too) is what boots, and there is nothing to write into NVRAM.
chroot $t grub-install --target=x86_64-efi --efi-directory=/boot/efi --bootloader-id=debian --no-nvram --force-extra-removable || fail grub-install
chroot $t update-grub || fail update-grub
find $t/boot/efi -type f -printf '%s %p\\n'
rm -f $t${INSTALLER}
sync
for d in sys/firmware/efi/efivars dev proc sys boot/efi${separateBoot ? ' boot' : ''}; do umount $t/$d || fail umount-$d; done
umount $t || fail umount-root
say done
# / stays read-write: this script, removed above, is still open. Everything is written out.
sync
echo o > /proc/sysrq-trigger
sleep 60
`;
}

/**
 * The installer script's edit of the new root's /etc/default/grub (at `$t`):
 * a short timeout, `cmdline` as GRUB_CMDLINE_LINUX, GRUB's menu on the
 * serial line; the result printed. Shared by every machine GRUB installs.
 */
export function grubDefaults(cmdline: string): string {
  return `f=$t/etc/default/grub
sed -i -e 's/^GRUB_TIMEOUT=.*/GRUB_TIMEOUT=1/' \\
  -e 's|^GRUB_CMDLINE_LINUX=.*|GRUB_CMDLINE_LINUX="${cmdline}"|' \\
  -e 's/^#GRUB_TERMINAL=.*/GRUB_TERMINAL="console serial"\\nGRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"/' $f || fail defaults
grep -q '^GRUB_SERIAL_COMMAND=' $f || fail defaults-serial
grep -v '^#' $f | grep .
`;
}

/** The GRUB machines: the installer's guided Btrfs root, and the same with a separate ext4 /boot. */
export type GrubMachine = 'grub' | 'grub-boot';

/** The separate /boot's size: what Debian's installer gives one (about half a gigabyte). */
const BOOT_MIB = 488;

function grubGuestFingerprint(opts: ImageOptions, machine: GrubMachine): string[] {
  const separateBoot = machine === 'grub-boot';
  const sample: guest.ImageIds = { root: 'R', esp: 'E', ...(separateBoot ? { boot: 'B' } : {}) };
  const common = [guest.grubFstab(sample), guest.sysprimeConfig(opts.updater, machine), guest.runnerUnit(), guest.runnerScript(), grubInstallerScript(separateBoot), REPO_DIR, JSON.stringify(VERSIONS), DISK_SIZE, String(ESP_MIB)];
  return separateBoot ? [machine, ...common, String(BOOT_MIB)] : common;
}

/** An installed GRUB machine, as a read-only raw disk image. */
export async function grubBaseImage(opts: ImageOptions, machine: GrubMachine = 'grub'): Promise<BaseImage> {
  mkdirSync(opts.cacheDir, { recursive: true });
  const tarball = await grubTreeTarball(opts);
  const key = hash([tarball, ...grubGuestFingerprint(opts, machine)]);
  const path = join(opts.cacheDir, `${machine}-base-${key}.img`);
  if (await reuseCached(opts.cacheDir, path, new RegExp(`^${machine}-base-[0-9a-f]+\\.img$`))) return { path, reused: true };
  const work = join(opts.cacheDir, `grub-build-${process.pid}`);
  await mkdir(work, { recursive: true });
  const disk = join(work, 'disk.img');
  const forget = onCleanup(`image build in ${work}`, async () => {
    await unmountBelow(work);
    await detachLoops(disk);
    await rm(work, { recursive: true, force: true });
  });
  try {
    opts.log(`building the ${machine === 'grub' ? 'GRUB machine' : 'GRUB machine with a separate /boot'} (an installer boot installs GRUB, 1-3 minutes): ${path}`);
    await buildGrubDisk(disk, tarball, work, opts, machine);
    await rename(disk, path);
    chmodSync(path, 0o444);
  } finally {
    await forget();
  }
  return { path, reused: false };
}

async function buildGrubDisk(image: string, tarball: string, work: string, opts: ImageOptions, machine: GrubMachine): Promise<void> {
  const separateBoot = machine === 'grub-boot';
  // No default subvolume is set: the installer sets none (GRUB and the kernel are told `@rootfs`).
  const { ids, rootDev, top, root, bootDev } = await formatBtrfsDisk(image, work, tarball, [guest.GRUB_ROOT_SUBVOLUME], separateBoot ? BOOT_MIB : undefined);
  await customizeRoot(root, work, opts, guest.grubFstab(ids), machine, true);
  await writeFile(join(root, INSTALLER.slice(1)), grubInstallerScript(separateBoot));
  await chmod(join(root, INSTALLER.slice(1)), 0o755);
  const kernel = (await readdir(join(root, 'boot'))).filter((n) => n.startsWith('vmlinuz-')).sort().pop();
  if (kernel === undefined) throw new Error('the GRUB tree has no kernel in /boot');
  const version = kernel.slice('vmlinuz-'.length);
  const vmlinuz = join(work, 'vmlinuz');
  const initrd = join(work, 'initrd.img');
  await run('cp', [join(root, 'boot', kernel), vmlinuz]);
  await run('cp', [join(root, 'boot', `initrd.img-${version}`), initrd]);
  if (bootDev !== null) {
    await run('umount', [join(root, 'boot')]);
    await run('losetup', ['-d', bootDev]);
  }
  await run('umount', [top]);
  await run('losetup', ['-d', rootDev]);

  // The installer boot: the guest's kernel from the host, started by the firmware (as the
  // installer is on a UEFI machine: update-grub adds its "UEFI Firmware Settings" entry only
  // then), `@rootfs` as its root.
  const serial = join(work, 'install.log');
  await writeFile(serial, '');
  const vars = join(work, 'OVMF_VARS.fd');
  await copyFile(OVMF_VARS, vars);
  const outcome = await runVm(
    { dir: work, disk: image, vars, serial, pidFile: join(work, 'qemu.pid') },
    {
      accel: 'tcg',
      memoryMiB: 1024,
      // One vCPU: the work is small (~25 s), and with two (multi-threaded TCG) the kernel once
      // stopped printing 1.4 s into its boot and stayed silent for minutes, 200% CPU.
      cpus: 1,
      timeoutMs: 10 * 60 * 1000,
      noReboot: true,
      direct: { kernel: vmlinuz, initrd, append: `root=UUID=${ids.root} rootflags=subvol=${guest.GRUB_ROOT_SUBVOLUME} rw console=ttyS0,115200 init=${INSTALLER} panic=-1`, diskFormat: 'raw', uefi: true },
    },
  );
  const log = await readFile(serial, 'latin1');
  if (!/SYSPRIME-VM-INSTALL done/.test(log)) {
    const lines = log.split(/\r?\n/).filter((l) => l.includes('SYSPRIME-VM-INSTALL') || /panic|error/i.test(l)).slice(-8);
    throw new Error(`the GRUB installer boot did not finish${outcome.poweredOff ? '' : ' (time limit)'}: ${lines.join(' / ')}`);
  }
  opts.log(`GRUB machine installed in ${Math.round(outcome.seconds)} s`);
}
