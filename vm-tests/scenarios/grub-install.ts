/**
 * 11. Debian on Btrfs with GRUB, as its installer lays it out (`@rootfs`),
 * for now a probe of what sysprime's GRUB support will meet: how the
 * installed machine boots (command line, mounts, subvolumes, fstab, the
 * ESP's files, GRUB's stub and menu), then whether GRUB honours and clears a
 * one-shot `next_entry` in a grubenv on Btrfs (GRUB cannot write to Btrfs,
 * so its `save_env` in the menu's header is expected to fail). Boot 2 sets
 * `next_entry` to an entry of its own in 40_custom (the same kernel with
 * `sysprime_probe=1`), boot 3 shows whether it was taken and whether GRUB
 * cleared it, boot 4 whether it sticks. The outputs are kept on the script
 * drive (`--keep`); the checks assert only how the machine boots.
 */
import assert from 'node:assert/strict';
import type { Boot } from '../serial.js';
import { rootOf, type Scenario } from '../scenario.js';

/** The installer's root subvolume, and GRUB named the kernel it loaded from there. */
function bootedByGrub(boot: Boot): void {
  assert.equal(rootOf(boot), '@rootfs', `boot ${boot.n} runs the installer's root subvolume`);
  assert.match(boot.image, /^\/@rootfs\/boot\/vmlinuz-\S+$/, `boot ${boot.n}: GRUB loaded the kernel from @rootfs (BOOT_IMAGE)`);
}

export const grubInstall: Scenario = {
  id: 11,
  name: 'GRUB: the installed machine (probe)',
  machine: 'grub',
  from: 'installed',
  verbs: [],
  timeoutMinutes: 28,
  boots: [
    {
      script: `
value cmdline cat /proc/cmdline
step cmdline cat /proc/cmdline
step root findmnt -n -o SOURCE,FSTYPE /
step subvolumes btrfs subvolume list /
step fstab cat /etc/fstab
step esp-files find /boot/efi -type f -printf '%s %p\\n'
step stub cat /boot/efi/EFI/debian/grub.cfg
probe removable-stub cat /boot/efi/EFI/BOOT/grub.cfg
step grubenv grep -n . /boot/grub/grubenv
step grubcfg head -c 4000 /boot/grub/grub.cfg
step menu grep -n -E 'menuentry|submenu|load_env|save_env|next_entry|linux|initrd' /boot/grub/grub.cfg
step editenv grub-editenv list
step boot ls /boot
step defaults cat /etc/default/grub
probe grubenv-extents filefrag -v /boot/grub/grubenv
then_reboot
`,
      check(boot) {
        bootedByGrub(boot);
      },
    },
    {
      // An entry of its own, so the boot it picks is told apart by its command line.
      script: `
uuid=$(findmnt -n -o UUID /)
k=$(uname -r)
cat >> /etc/grub.d/40_custom <<EOF
menuentry 'sysprime probe: the same kernel with sysprime_probe=1' --id sysprime-probe {
	insmod btrfs
	search --no-floppy --fs-uuid --set=root $uuid
	linux /@rootfs/boot/vmlinuz-$k root=UUID=$uuid ro rootflags=subvol=@rootfs console=ttyS0,115200 panic=5 sysprime_probe=1
	initrd /@rootfs/boot/initrd.img-$k
}
EOF
step update-grub update-grub
step menu grep -n -E 'menuentry|submenu' /boot/grub/grub.cfg
step set-next grub-editenv /boot/grub/grubenv set next_entry=sysprime-probe
step editenv grub-editenv list
probe grubenv-extents filefrag -v /boot/grub/grubenv
then_reboot
`,
      check(boot) {
        bootedByGrub(boot);
      },
    },
    {
      script: `
value cmdline cat /proc/cmdline
step cmdline cat /proc/cmdline
step editenv grub-editenv list
value editenv grub-editenv list
then_reboot
`,
      check(boot) {
        bootedByGrub(boot);
      },
    },
    {
      // The probe's one-shot is taken out again afterwards, so the machine is left as installed.
      script: `
value cmdline cat /proc/cmdline
step cmdline cat /proc/cmdline
step editenv grub-editenv list
value editenv grub-editenv list
step unset grub-editenv /boot/grub/grubenv unset next_entry
then_poweroff
`,
      check(boot) {
        bootedByGrub(boot);
      },
    },
  ],
};
