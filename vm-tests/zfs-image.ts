/**
 * The ZFS machine: Debian 12 with its root on OpenZFS, laid out as the
 * OpenZFS "Root on ZFS" guide for bookworm lays it out: a boot pool `bpool`
 * (only the features GRUB reads) with `bpool/BOOT/debian` at /boot, the root
 * pool with `rpool/ROOT/debian` (mountpoint=/, canmount=noauto, bootfs) and
 * the shared datasets outside ROOT (home, root's home, var/log, var/spool,
 * var/cache, var/mail, srv, usr/local ...), the guide's unit importing the
 * boot pool, and GRUB installed by `grub-install` and `update-grub` chrooted
 * into the new root, reading the kernels and its own directory from the boot
 * dataset.
 *
 * This host cannot load ZFS, so the pools are made by the guest: the tree
 * (with OpenZFS built by DKMS for the guest's kernel) becomes an ext4 image
 * (`mke2fs -d`, no mount), the guest kernel boots it through the firmware
 * with an installer as PID 1 that creates the pools on the disk, copies the
 * tree in, writes the guide's zfs-list.cache (zed keeps it in step from
 * then on), installs GRUB and exports the pools. Two cache
 * layers, keyed by what decides their contents: the tree as a tarball
 * (mmdebstrap with the DKMS build, ~5 minutes on 2 cores) and the installed
 * disk (~2-3 minutes under TCG) built from it.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../src/process/run.js';
import { onCleanup } from './cleanup.js';
import * as guest from './guest-files.js';
import { customizeRoot, DISK_SIZE, hash, initramfsHook, leanDpkgOptions, partition, reuseCached, type BaseImage, type ImageOptions } from './image.js';
import { REPO_DIR, VERSIONS } from './packages.js';
import { grubDefaults } from './grub-image.js';
import { OVMF_VARS, runVm } from './vm.js';

const ESP_MIB = 512;
/** The boot pool's partition: the guide gives it 1 GiB. */
const BPOOL_MIB = 1024;

const INCLUDE = [
  'linux-image-amd64',
  // DKMS builds OpenZFS for the guest's kernel inside the tree.
  'linux-headers-amd64',
  'zfs-dkms',
  'zfsutils-linux',
  'zfs-initramfs',
  // Recommended by zfsutils-linux, so on every machine the guide installs: it keeps
  // /etc/zfs/zfs-list.cache in step, from which zfs-mount-generator orders the mounts.
  'zfs-zed',
  'systemd-sysv',
  'udev',
  'initramfs-tools',
  'zstd',
  'dosfstools',
  'e2fsprogs',
  'kmod',
  'procps',
  'passwd',
  'apt',
  'acl',
  'attr',
  // What the guide installs to boot it on UEFI: GRUB, its signed image and shim.
  'grub-efi-amd64',
  'grub-efi-amd64-signed',
  'shim-signed',
];

/**
 * The host's Debian mirrors (deb822 `.sources` or one-line `sources.list`),
 * with `components` (by default with `contrib`: OpenZFS is there), the
 * suite and its security updates. The machine's own sources are read, never
 * changed.
 */
export function debianSources(suite: string, components = 'main contrib'): string[] {
  const uris = new Map<string, string>();
  const files = ['/etc/apt/sources.list', ...(existsSync('/etc/apt/sources.list.d') ? safeList('/etc/apt/sources.list.d').map((n) => join('/etc/apt/sources.list.d', n)) : [])];
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    if (f.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (k: string): string => new RegExp(`^${k}:\\s*(.*)$`, 'mi').exec(stanza)?.[1]?.trim() ?? '';
        if (!/\bdeb\b/.test(field('Types'))) continue;
        for (const s of field('Suites').split(/\s+/)) if (s && !uris.has(s)) uris.set(s, field('URIs').split(/\s+/)[0] ?? '');
      }
    } else if (f.endsWith('.list')) {
      for (const m of text.matchAll(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/gm)) if (!uris.has(m[2]!)) uris.set(m[2]!, m[1]!);
    }
  }
  const main = uris.get(suite) || 'http://deb.debian.org/debian';
  const out = [`deb ${main} ${suite} ${components}`];
  const security = uris.get(`${suite}-security`);
  if (security) out.push(`deb ${security} ${suite}-security ${components}`);
  return out;
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

function treeRecipe(suite: string): string[] {
  // zfs-dkms builds for the kernels whose headers are in the tree; make sure the guest's is one
  // (a build for the host's running kernel would be of no use), then the fixed hostid and an
  // initramfs that carries both.
  const finish = [
    'set -e',
    'k=$(ls /lib/modules | sort -V | tail -n 1)',
    'v=$(ls /usr/src | sed -n "s/^zfs-//p" | head -n 1)',
    'dkms status -m zfs -v "$v" -k "$k" | grep -q installed || { dkms build -m zfs -v "$v" -k "$k" && dkms install -m zfs -v "$v" -k "$k"; }',
    `zgenhostid -f 0x${guest.ZFS_HOSTID}`,
    'update-initramfs -u -k "$k"',
    'rm -f /etc/apt/sources.list; rm -rf /etc/apt/sources.list.d/*; echo sysprime-vm > /etc/hostname',
  ].join('; ');
  return [
    '--variant=minbase',
    '--format=tar',
    `--include=${INCLUDE.join(',')}`,
    // The installer boot copies every byte of the tree into the pool under TCG.
    ...leanDpkgOptions(),
    initramfsHook(['virtio_pci', 'virtio_blk', 'ext4', 'zfs']),
    `--chrooted-customize-hook=${finish}`,
  ];
}

/** The Debian tree with OpenZFS built for its kernel, as a tarball, built once per recipe. */
export async function zfsTreeTarball(opts: ImageOptions): Promise<string> {
  const suite = opts.suite ?? 'bookworm';
  const args = treeRecipe(suite);
  const sources = debianSources(suite);
  const path = join(opts.cacheDir, `zfs-rootfs-${hash([...args, suite, ...sources])}.tar`);
  if (existsSync(path)) return path;
  opts.log(`building the Debian tree with OpenZFS (mmdebstrap and a DKMS build, about 5 minutes): ${path}`);
  const partial = `${path}.partial-${process.pid}`;
  const forget = onCleanup(`partial ${partial}`, () => rm(partial, { force: true }));
  await run('mmdebstrap', ['--quiet', ...args, suite, partial, ...sources], { timeout: 40 * 60 * 1000, env: { DEBIAN_FRONTEND: 'noninteractive' } });
  await rename(partial, path);
  await forget();
  for (const name of await readdir(opts.cacheDir)) {
    if (/^zfs-rootfs-[0-9a-f]+\.tar$/.test(name) && join(opts.cacheDir, name) !== path) await rm(join(opts.cacheDir, name), { force: true });
  }
  return path;
}

/** The properties zed's zfs-list cacher lists, in the order zfs-mount-generator reads them. */
const ZED_CACHE_PROPERTIES = [
  'name', 'mountpoint', 'canmount', 'atime', 'relatime', 'devices', 'exec', 'readonly', 'setuid', 'nbmand', 'encroot', 'keylocation',
  ...['requires', 'requires-mounts-for', 'before', 'after', 'wanted-by', 'required-by', 'nofail', 'ignore'].map((p) => `org.openzfs.systemd:${p}`),
].join(',');

/** The guide's unit that imports the boot pool at every boot (the initramfs imports only the root pool). */
export function bpoolImportUnit(): string {
  return [
    '[Unit]',
    'DefaultDependencies=no',
    'Before=zfs-import-scan.service',
    'Before=zfs-import-cache.service',
    '',
    '[Service]',
    'Type=oneshot',
    'RemainAfterExit=yes',
    `ExecStart=/sbin/zpool import -N -o cachefile=none ${guest.ZFS_BOOT_POOL}`,
    '# Work-around to preserve zpool cache:',
    'ExecStartPre=-/bin/mv /etc/zfs/zpool.cache /etc/zfs/preboot_zpool.cache',
    'ExecStartPost=-/bin/mv /etc/zfs/preboot_zpool.cache /etc/zfs/zpool.cache',
    '',
    '[Install]',
    'WantedBy=zfs-import.target',
    '',
  ].join('\n');
}

/**
 * PID 1 of the installer boot: the pools and datasets as the OpenZFS guide
 * for Debian bookworm makes them (a boot pool with only the features GRUB
 * reads, `bpool/BOOT/debian` at /boot; the root pool with `rpool/ROOT/debian`
 * and the shared datasets), the tree copied in, bootfs set, then, chrooted
 * into the new root as the guide does: its bpool import unit, GRUB's defaults
 * for a serial console, `update-grub` and `grub-install` (the stub on the
 * ESP, GRUB's directory in the boot dataset); the pools exported.
 */
export function installerScript(): string {
  const P = guest.ZFS_POOL;
  const B = guest.ZFS_BOOT_POOL;
  return `#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin; export PATH
say() { echo "SYSPRIME-VM-INSTALL $*"; }
fail() { say "FAIL $*"; sync; echo o > /proc/sysrq-trigger; sleep 60; }
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sys /sys
mountpoint -q /dev || mount -t devtmpfs dev /dev
mountpoint -q /run || mount -t tmpfs tmpfs /run
say begin
modprobe zfs || fail modprobe
zpool create -f -o ashift=12 -o autotrim=on -o compatibility=grub2 -o cachefile=none \\
  -O devices=off -O acltype=posixacl -O xattr=sa -O compression=lz4 -O normalization=formD \\
  -O relatime=on -O canmount=off -O mountpoint=/boot -R /mnt ${B} /dev/vda2 || fail bpool-create
zpool create -f -o ashift=12 -o autotrim=on -o cachefile=none \\
  -O acltype=posixacl -O xattr=sa -O dnodesize=auto -O compression=lz4 -O normalization=formD \\
  -O relatime=on -O canmount=off -O mountpoint=/ -R /mnt ${P} /dev/vda3 || fail zpool-create
zfs create -o canmount=off -o mountpoint=none ${P}/ROOT || fail ROOT
zfs create -o canmount=off -o mountpoint=none ${B}/BOOT || fail BOOT
zfs create -o canmount=noauto -o mountpoint=/ ${guest.ZFS_INSTALLED_ROOT} || fail root
zfs mount ${guest.ZFS_INSTALLED_ROOT} || fail mount-root
zfs create -o mountpoint=/boot ${B}/BOOT/debian || fail boot
# The guide's shared datasets: outside ROOT, the same in every environment.
zfs create ${P}/home || fail home
zfs create -o mountpoint=/root ${P}/home/root || fail root-home
zfs create -o canmount=off ${P}/var
zfs create -o canmount=off ${P}/var/lib
zfs create ${P}/var/log
zfs create ${P}/var/spool
zfs create -o com.sun:auto-snapshot=false ${P}/var/cache
zfs create -o com.sun:auto-snapshot=false ${P}/var/tmp
zfs create ${P}/var/mail
zfs create ${P}/srv
zfs create -o canmount=off ${P}/usr
zfs create ${P}/usr/local
say "copy begin"
tar -C / --one-file-system --xattrs --xattrs-include='*' --acls --numeric-owner \\
  --exclude=./lost+found --exclude=./usr/local/sbin/sysprime-vm-install -cf - . \\
  | tar -C /mnt --xattrs --xattrs-include='*' --acls --numeric-owner -xpf - || fail copy
chmod 700 /mnt/root
chmod 1777 /mnt/var/tmp
say "copy end"
# The guide's "fix filesystem mount ordering": zfs-mount-generator makes the datasets' mount
# units from zed's cache, so /boot is mounted before /boot/efi (zfs-mount.service alone mounts it
# after, over the ESP). What zed's cacher writes, with the altroot taken off as the guide does.
mkdir -p /mnt/etc/zfs/zfs-list.cache
for p in ${B} ${P}; do
  zfs list -H -t filesystem -r $p -o ${ZED_CACHE_PROPERTIES} > /mnt/etc/zfs/zfs-list.cache/$p || fail zfs-list-cache
done
sed -Ei "s|/mnt/?|/|" /mnt/etc/zfs/zfs-list.cache/*
cat /mnt/etc/zfs/zfs-list.cache/*
zpool set bootfs=${guest.ZFS_INSTALLED_ROOT} ${P} || fail bootfs
t=/mnt
mkdir -p $t/boot/efi
mount -t vfat -o umask=0077 /dev/vda1 $t/boot/efi || fail mount-esp
for d in dev proc sys; do mount --rbind /$d $t/$d || fail bind-$d; done
mount -t efivarfs efivarfs $t/sys/firmware/efi/efivars 2>/dev/null || true
cat > $t/etc/systemd/system/zfs-import-${B}.service <<'UNIT'
${bpoolImportUnit()}UNIT
ln -s /etc/systemd/system/zfs-import-${B}.service $t/etc/systemd/system/zfs-import.target.wants/zfs-import-${B}.service || fail bpool-unit
# /etc/default/grub: the guide's root= (grub-probe cannot always name a ZFS root), a short
# timeout, the serial console on the kernel's command line (and panic=5: a panicking kernel
# must reboot), GRUB's menu on the serial line.
${grubDefaults(`root=ZFS=${guest.ZFS_INSTALLED_ROOT} console=ttyS0,115200 panic=5`)}chroot $t grub-probe /boot || fail grub-probe
chroot $t update-grub || fail update-grub
chroot $t grub-install --target=x86_64-efi --efi-directory=/boot/efi --bootloader-id=debian --recheck --no-floppy --no-nvram --force-extra-removable || fail grub-install
find $t/boot/efi -type f -printf '%s %p\\n'
cat $t/boot/efi/EFI/debian/grub.cfg
sync
umount $t/sys/firmware/efi/efivars 2>/dev/null || true
umount -R $t/dev $t/proc $t/sys 2>/dev/null
umount $t/boot/efi || fail umount-esp
zfs list -o name,used,mountpoint,canmount
zfs umount -a
zpool export ${B} || fail export-bpool
zpool export ${P} || fail export
say done
sync
echo o > /proc/sysrq-trigger
sleep 60
`;
}

function zfsGuestFingerprint(opts: ImageOptions): string[] {
  return [guest.zfsFstab(), guest.sysprimeConfig(opts.updater, 'zfs'), guest.runnerUnit(), guest.runnerScript(), installerScript(), REPO_DIR, JSON.stringify(VERSIONS), DISK_SIZE, String(ESP_MIB), String(BPOOL_MIB)];
}

/** The installed ZFS machine with the current sysprime build, as a read-only raw disk image. */
export async function zfsBaseImage(opts: ImageOptions): Promise<BaseImage> {
  mkdirSync(opts.cacheDir, { recursive: true });
  const tarball = await zfsTreeTarball(opts);
  // Not the sysprime build: it comes on a drive of its own (sysprimeDrive), so a new build
  // does not install the machine again.
  const key = hash([tarball, ...zfsGuestFingerprint(opts)]);
  const path = join(opts.cacheDir, `zfs-base-${key}.img`);
  if (await reuseCached(opts.cacheDir, path, /^zfs-base-[0-9a-f]+\.img$/)) return { path, reused: true };
  const work = join(opts.cacheDir, `zfs-build-${process.pid}`);
  await mkdir(work, { recursive: true });
  const forget = onCleanup(`image build in ${work}`, () => rm(work, { recursive: true, force: true }));
  try {
    opts.log(`building the ZFS machine (an installer boot makes the pool, 2-4 minutes): ${path}`);
    const disk = join(work, 'disk.img');
    await buildZfsDisk(disk, tarball, work, opts);
    await rename(disk, path);
    chmodSync(path, 0o444);
  } finally {
    await forget();
  }
  return { path, reused: false };
}

async function buildZfsDisk(image: string, tarball: string, work: string, opts: ImageOptions): Promise<void> {
  const tree = join(work, 'tree');
  await mkdir(tree, { recursive: true });
  await run('tar', ['-x', '-p', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-f', tarball, '-C', tree], { timeout: 10 * 60 * 1000 });
  await customizeRoot(tree, work, opts, guest.zfsFstab(), 'zfs', true);
  const installer = join(tree, 'usr/local/sbin/sysprime-vm-install');
  await writeFile(installer, installerScript());
  await chmod(installer, 0o755);

  const kernel = (await readdir(join(tree, 'boot'))).filter((n) => n.startsWith('vmlinuz-')).sort().pop();
  if (kernel === undefined) throw new Error('the ZFS tree has no kernel in /boot');
  const version = kernel.slice('vmlinuz-'.length);
  const vmlinuz = join(work, 'vmlinuz');
  const initrd = join(work, 'initrd.img');
  await run('cp', [join(tree, 'boot', kernel), vmlinuz]);
  await run('cp', [join(tree, 'boot', `initrd.img-${version}`), initrd]);

  // The installer's root: the tree as an ext4 image, made without a mount.
  const ext4 = join(work, 'installer.ext4');
  const mib = Number((await run('du', ['-sxm', tree])).stdout.split(/\s/)[0]);
  await run('mke2fs', ['-q', '-t', 'ext4', '-L', 'installer', '-E', 'root_owner=0:0', '-d', tree, ext4, `${Math.ceil(mib * 1.3) + 300}M`], { timeout: 10 * 60 * 1000 });

  await run('truncate', ['-s', DISK_SIZE, image]);
  await run('sgdisk', ['--zap-all', image], { allowFailure: true });
  // The guide's partitions (without its BIOS boot partition: this machine boots UEFI only).
  await run('sgdisk', ['-n', `1:2048:+${ESP_MIB}M`, '-t', '1:ef00', '-c', '1:ESP', '-n', `2:0:+${BPOOL_MIB}M`, '-t', '2:be00', '-c', '2:bpool', '-n', '3:0:0', '-t', '3:bf00', '-c', '3:rpool', image]);
  const espPart = await partition(image, 1);

  // The ESP as an empty FAT image of its own (vfat cannot be mounted here): grub-install fills it in the guest.
  const espImg = join(work, 'esp.img');
  await run('mkfs.vfat', ['-F', '32', '-n', 'ESP', '-i', guest.ZFS_ESP_ID.replace('-', ''), '-C', espImg, String(espPart.size / 1024)]);
  await run('dd', [`if=${espImg}`, `of=${image}`, 'bs=1M', `seek=${espPart.offset / (1024 * 1024)}`, 'conv=notrunc,sparse', 'status=none']);
  await rm(espImg, { force: true });
  await rm(tree, { recursive: true, force: true });

  // The installer boot: the guest's kernel straight from the host, the ext4 tree as its root.
  const serial = join(work, 'install.log');
  await writeFile(serial, '');
  // Through the firmware, as the installer runs on a UEFI machine: update-grub and grub-install see EFI.
  const vars = join(work, 'OVMF_VARS.fd');
  await copyFile(OVMF_VARS, vars);
  const outcome = await runVm(
    {
      dir: work,
      disk: image,
      vars,
      serial,
      pidFile: join(work, 'qemu.pid'),
    },
    {
      accel: 'tcg',
      memoryMiB: 1536,
      cpus: 2,
      timeoutMs: 30 * 60 * 1000,
      noReboot: true,
      direct: { kernel: vmlinuz, initrd, append: 'root=/dev/vdb ro console=ttyS0,115200 init=/usr/local/sbin/sysprime-vm-install panic=-1', extraDisk: ext4, diskFormat: 'raw', uefi: true },
    },
  );
  const log = await readFile(serial, 'latin1');
  if (!/SYSPRIME-VM-INSTALL done/.test(log)) {
    const lines = log.split(/\r?\n/).filter((l) => l.includes('SYSPRIME-VM-INSTALL') || /panic|error/i.test(l)).slice(-8);
    throw new Error(`the ZFS installer boot did not finish${outcome.poweredOff ? '' : ' (time limit)'}: ${lines.join(' / ')}`);
  }
  opts.log(`ZFS machine installed in ${Math.round(outcome.seconds)} s`);
  await rm(ext4, { force: true });
}
