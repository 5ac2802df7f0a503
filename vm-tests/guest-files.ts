/**
 * The files the base image carries besides Debian itself: mounts, the
 * bootloader's first entry, sysprime's configuration, and the runner that
 * executes one scenario script per boot from the script drive. Pure: text in,
 * text out.
 */

/** Printed at the start of every line the guest means for the host. */
export const MARK = 'SYSPRIME-VM:';

export const SYSPRIME_HOME = '/opt/sysprime';
/**
 * The state database, on a subvolume of its own so every environment sees the
 * same one. Not /var/lib/sysprime itself: staging writes the first-boot note
 * and reports into each environment's /var/lib/sysprime, which a mount there
 * would hide.
 */
export const STATE_DIR = '/var/lib/sysprime-state';
export const RUNNER = '/usr/local/sbin/sysprime-vm-runner';
export const RUNNER_UNIT = 'sysprime-vm-runner.service';

export interface ImageIds {
  /** UUID of the Btrfs filesystem. */
  root: string;
  /** Volume id of the FAT ESP (XXXX-XXXX). */
  esp: string;
  /** UUID of the separate ext4 /boot, on the machine that has one. */
  boot?: string;
}

/** Kernel arguments every entry carries: serial console, and a panic that reboots (a failed boot must end). */
export const CMDLINE = 'rw console=ttyS0,115200 panic=5';

export function fstab(ids: ImageIds): string {
  // No subvol= on `/`: each environment is mounted by the kernel argument, and
  // a different subvol here would make systemd's remount fail.
  return [
    `UUID=${ids.root} / btrfs defaults 0 0`,
    `UUID=${ids.root} /home btrfs subvol=/@home 0 0`,
    `UUID=${ids.root} /var/log btrfs subvol=/@var_log 0 0`,
    `UUID=${ids.root} ${STATE_DIR} btrfs subvol=/@sysprime 0 0`,
    `UUID=${ids.esp} /boot/efi vfat umask=0077 0 0`,
    '',
  ].join('\n');
}

export type UpdaterChoice = 'apt' | 'command';

/**
 * The machines the suite boots: Debian on Btrfs with systemd-boot, Debian
 * with its root on OpenZFS, and Debian on Btrfs with GRUB as its installer
 * lays it out (`@rootfs`), without and with a separate ext4 `/boot`.
 */
export type Machine = 'btrfs' | 'zfs' | 'grub' | 'grub-boot';

export const isGrubMachine = (m: Machine): boolean => m === 'grub' || m === 'grub-boot';
/** The machines GRUB boots: the two Btrfs GRUB machines and the OpenZFS one (the guide's layout with its boot pool). */
export const bootsWithGrub = (m: Machine): boolean => isGrubMachine(m) || m === 'zfs';

/** The Btrfs partition's device in the guest: the third partition when a separate /boot is the second. */
export const btrfsDevice = (m: Machine): string => (m === 'grub-boot' ? '/dev/vda3' : '/dev/vda2');

/** The ESP's FAT volume id on the ZFS machine, fixed so fstab can be written before the ESP exists. */
export const ZFS_ESP_ID = '5EC0-2F50';
/** The pool and the installer's root dataset, as the OpenZFS "Root on ZFS" guide names them. */
export const ZFS_POOL = 'rpool';
export const ZFS_INSTALLED_ROOT = 'rpool/ROOT/debian';
/** The guide's boot pool, holding `BOOT/debian` (mounted at /boot) and GRUB's directory. */
export const ZFS_BOOT_POOL = 'bpool';
/** A fixed hostid shared by the installer, the initramfs and the system, so the pool imports at every boot. */
export const ZFS_HOSTID = '5a564d31';

/**
 * fstab as the OpenZFS guide leaves it: datasets mount themselves (their
 * mountpoint property), the root by the kernel's `root=ZFS=`; only the ESP is here.
 */
export function zfsFstab(): string {
  return [
    `UUID=${ZFS_ESP_ID} /boot/efi vfat umask=0077 0 1`,
    sysprimeDriveLine(),
    '',
  ].join('\n');
}

/**
 * The build under test, on a drive of its own (not part of any environment); no nofail:
 * the first-boot unit runs after local-fs.target and needs it mounted by then.
 */
function sysprimeDriveLine(): string {
  return `LABEL=${SYSPRIME_DRIVE_LABEL} ${SYSPRIME_HOME} ext4 ro 0 0`;
}

/** The GRUB machine's root subvolume, as Debian 12's installer (partman-btrfs) names it. */
export const GRUB_ROOT_SUBVOLUME = '@rootfs';

/**
 * fstab as Debian 12's installer writes it for a guided Btrfs root on UEFI
 * (its header, a comment naming each device as it was during installation,
 * partman's columns), and `subvol=@rootfs` on `/`. The installer also makes a
 * swap partition and its line; this machine has none (a test never swaps).
 */
export function grubFstab(ids: ImageIds): string {
  const line = (fs: string, dir: string, type: string, opts: string, dump: string, pass: string): string =>
    `${fs.padEnd(15)} ${dir.padEnd(15)} ${type.padEnd(7)} ${opts.padEnd(15)} ${dump.padEnd(7)} ${pass}`;
  return [
    '# /etc/fstab: static file system information.',
    '#',
    "# Use 'blkid' to print the universally unique identifier for a",
    '# device; this may be used with UUID= as a more robust way to name devices',
    '# that works even if disks are added and removed. See fstab(5).',
    '#',
    '# systemd generates mount units based on this file, see systemd.mount(5).',
    "# Please run 'systemctl daemon-reload' after you make changes to this file.",
    '#',
    '# <file system> <mount point>   <type>  <options>       <dump>  <pass>',
    `# / was on ${ids.boot === undefined ? '/dev/vda2' : '/dev/vda3'} during installation`,
    line(`UUID=${ids.root}`, '/', 'btrfs', `defaults,subvol=${GRUB_ROOT_SUBVOLUME}`, '0', '0'),
    // A separate /boot, as partman writes it: ext4, checked after the root.
    ...(ids.boot === undefined ? [] : ['# /boot was on /dev/vda2 during installation', line(`UUID=${ids.boot}`, '/boot', 'ext4', 'defaults', '0', '2')]),
    '# /boot/efi was on /dev/vda1 during installation',
    line(`UUID=${ids.esp}`, '/boot/efi', 'vfat', 'umask=0077', '0', '1'),
    // Not the installer's: the build under test, on a drive of its own. (The state database
    // is left where sysprime puts it by default, inside the root: init gives it a home.)
    sysprimeDriveLine(),
    '',
  ].join('\n');
}

/** The label of the drive that carries the sysprime build (image.ts, sysprimeDrive). */
export const SYSPRIME_DRIVE_LABEL = 'sysprime-vm';

/** The command updater's stand-in for apt, for a sysprime without the apt updater. */
export const DPKG_COMMAND = `dpkg -i ${'/opt/vm-repo'}/sysprime-vm-hello_2.0_all.deb`;

export function sysprimeConfig(updater: UpdaterChoice, machine: Machine = 'btrfs'): string {
  return [
    ...(machine !== 'zfs'
      ? ['backend = "btrfs"', '', '[btrfs]', 'top = "/run/sysprime/top"', `device = "${btrfsDevice(machine)}"`, '']
      : ['backend = "zfs"', '', '[zfs]', `pool = "${ZFS_POOL}"`, '']),
    // The GRUB and OpenZFS machines run with sysprime's default state directory: init gives
    // the database a home every environment shares (ROOT/.sysprime/state on Btrfs,
    // rpool/sysprime/state on ZFS). The machines GRUB boots also carry the kernel's
    // arguments from the installed system's own command line.
    ...(machine === 'btrfs' ? ['[state]', `dir = "${STATE_DIR}"`, ''] : []),
    '[boot]',
    `loader = "${bootsWithGrub(machine) ? 'grub' : 'systemd-boot'}"`,
    'esp = "/boot/efi"',
    ...(bootsWithGrub(machine) ? [] : [`cmdline = "${CMDLINE}"`]),
    'tries = 3',
    '',
    '[update]',
    ...(updater === 'apt' ? ['method = "apt"'] : ['method = "command"', `command = "${DPKG_COMMAND}"`]),
    '',
  ].join('\n');
}

export const loaderConf = (): string => 'timeout 0\nconsole-mode keep\ndefault debian.conf\n';

/** The entry a freshly installed system boots from: Debian's own layout, root in `@`. */
export function installerEntry(ids: ImageIds): string {
  return ['title Debian (installer layout)', 'linux /debian/vmlinuz', 'initrd /debian/initrd.img', `options root=UUID=${ids.root} rootflags=subvol=@ ${CMDLINE}`, ''].join('\n');
}

export function runnerUnit(): string {
  // After=multi-user.target: the runner reboots or powers off when it is done,
  // so it must come last; without the ordering systemd drops it as a cycle.
  return [
    '[Unit]',
    'Description=sysprime VM test runner (one script per boot from the script drive)',
    'After=multi-user.target',
    '',
    '[Service]',
    'Type=oneshot',
    `ExecStart=${RUNNER}`,
    'StandardOutput=tty',
    'StandardError=tty',
    'TTYPath=/dev/ttyS0',
    'TimeoutStartSec=infinity',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/**
 * The runner: mounts the script drive (the second virtio disk), counts this
 * boot there, runs `boot-<n>.sh` with its output on the serial console and in
 * `out/boot-<n>.log`, then reboots or powers off as the script asked
 * (`out/next-<n>`), powering off on failure.
 */
export function runnerScript(): string {
  return `#!/bin/sh
say() { echo "${MARK} $*" > /dev/ttyS0; }
efivar() {
  f=/sys/firmware/efi/efivars/$1-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
  # efivarfs files cannot seek: read through a pipe; 4 bytes of attributes, then UTF-16.
  if [ -r "$f" ]; then cat "$f" | tail -c +5 | tr -d '\\000'; else echo none; fi
}
drive=/run/vm-script
mkdir -p $drive
if ! mount -t vfat -o flush /dev/vdb $drive; then
  say "runner: no script drive"
  systemctl poweroff
  exit 0
fi
n=$(( $(cat $drive/count 2>/dev/null || echo 0) + 1 ))
echo $n > $drive/count
mkdir -p $drive/out
sync
root=$(sed -n 's/.*rootflags=subvol=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
[ -n "$root" ] || root=$(sed -n 's/.*root=ZFS=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
# GRUB names the kernel it loaded (BOOT_IMAGE=, its first argument); systemd-boot does not.
image=$(sed -n 's/.*BOOT_IMAGE=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
say "boot $n begin root=$root entry=$(efivar LoaderEntrySelected) image=$image"
if [ -f $drive/boot-$n.sh ]; then
  # The host's time limit kills qemu; stopping the script a little earlier
  # leaves time to save the journal below (the guest clock is the host's).
  deadline=$(cat $drive/deadline 2>/dev/null || echo 0)
  left=$(( deadline - $(date +%s) ))
  [ "$deadline" -gt 0 ] || left=0
  [ "$left" -ge 0 ] || left=1
  { (cd $drive && SYSPRIME_VM_BOOT=$n PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin timeout -k 10 $left sh -e ./lib.sh ./boot-$n.sh); echo $? > $drive/out/status-$n; } 2>&1 | tee $drive/out/boot-$n.log > /dev/ttyS0
  status=$(cat $drive/out/status-$n)
  [ "$status" != 124 ] && [ "$status" != 137 ] || say "boot $n timeout: the script was stopped at the scenario's time limit"
else
  say "boot $n: no script for this boot"
  status=0
fi
next=$(cat $drive/out/next-$n 2>/dev/null || echo poweroff)
[ "$status" = 0 ] || next=poweroff
if [ "$status" != 0 ]; then
  journalctl -b --no-pager -o short-monotonic > $drive/out/journal-$n.txt 2>&1 || true
  systemctl status --no-pager --full sysprime-reintegrate.service > $drive/out/reintegrate-$n.txt 2>&1 || true
  say "boot $n diagnostics: out/journal-$n.txt out/reintegrate-$n.txt"
fi
say "boot $n end status=$status next=$next"
sync
umount $drive
sync
systemctl $next
`;
}

/**
 * Sourced first by the runner (it then sources the boot's script). Steps
 * print markers the host asserts on; a failing step prints the tail of its
 * output and ends the boot, so a broken scenario fails fast.
 */
export function scriptLibrary(): string {
  return `# sysprime VM scenario library
N=$SYSPRIME_VM_BOOT
say() { echo "${MARK} $*"; }
# step NAME CMD...: must succeed; stdout kept in out/b<N>-NAME.out for the host. The
# begin marker tells the host which step a time limit cut off.
step() {
  name=$1; shift
  say "step $name begin"
  if "$@" > out/b$N-$name.out 2> out/b$N-$name.err; then
    say "step $name ok"
  else
    rc=$?
    say "step $name FAIL rc=$rc"
    tail -n 20 out/b$N-$name.out out/b$N-$name.err
    exit 1
  fi
}
# tstep NAME CMD...: a step whose stderr lines get the seconds since it began
# (and the time of day), to see where a long command spends its time.
tstep() {
  name=$1; shift
  say "step $name begin"
  { { if "$@" 4>&-; then echo 0 >&4; else echo $? >&4; fi; } 2>&1 >&3 3>&- | node -e "$STAMP" > out/b$N-$name.err 4>&-; } 3> out/b$N-$name.out 4> out/b$N-$name.rc
  rc=$(cat out/b$N-$name.rc)
  if [ "$rc" = 0 ]; then
    say "step $name ok"
  else
    say "step $name FAIL rc=$rc"
    tail -n 20 out/b$N-$name.out out/b$N-$name.err
    exit 1
  fi
}
STAMP='const t0 = Date.now(); require("readline").createInterface({ input: process.stdin }).on("line", (l) => console.log(((Date.now() - t0) / 1000).toFixed(1).padStart(7) + " " + new Date().toISOString().slice(11, 19) + " " + l));'
# probe NAME CMD...: may fail; its exit status is a marker.
probe() {
  name=$1; shift
  set +e
  "$@" > out/b$N-$name.out 2> out/b$N-$name.err
  rc=$?
  set -e
  say "probe $name rc=$rc"
}
# value NAME CMD...: the first line of the command's output as a marker.
value() {
  name=$1; shift
  v=$("$@" 2>/dev/null | head -n 1 || true)
  say "value $name=$v"
}
then_reboot() { echo reboot > out/next-$N; }
then_poweroff() { echo poweroff > out/next-$N; }
set -e
. "$1"
`;
}
