/**
 * 11. Debian 12 as its installer lays out a Btrfs root with GRUB on UEFI
 * (`@rootfs`, GRUB's directory inside it, the signed GRUB's stub on the ESP
 * pointing there): sysprime is installed as its package would be (the
 * update-grub script, then update-grub), `init` adopts the running root and
 * moves GRUB's directory to the ESP; GRUB boots the new environment through
 * sysprime's entry, the installer's `@rootfs` is deleted, and GRUB still
 * boots it.
 */
import assert from 'node:assert/strict';
import { env, probe, rootOf, type EnvJson, type Scenario } from '../scenario.js';

export const grubAdopt: Scenario = {
  id: 11,
  name: 'GRUB: adopt the Debian installer\'s @rootfs, delete it',
  machine: 'grub',
  from: 'installed',
  verbs: ['init', 'list', 'drift'],
  timeoutMinutes: 24,
  boots: [
    {
      script: `
# What sysprime's package and its README.Debian have the admin do: the units where the package
# puts them, the update-grub script linked in, grub.cfg made again.
step package sh -c 'cp /opt/sysprime/share/systemd/*.service /usr/lib/systemd/system/ && systemctl daemon-reload && ln -s /opt/sysprime/share/grub/42_sysprime /etc/grub.d/42_sysprime && update-grub'
step stub-before cat /boot/efi/EFI/debian/grub.cfg
step init sysprime init --name debian
step list sysprime --json list
step stub cat /boot/efi/EFI/debian/grub.cfg
step menu cat /boot/efi/grub/sysprime.cfg
step grubenv grub-editenv /boot/efi/grub/grubenv list
then_reboot
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), '@rootfs', 'the installed system boots from @rootfs');
        assert.equal(boot.grubEntry, 'Debian GNU/Linux', 'through Debian\'s own menu entry');
        assert.match(boot.image, /^\/@rootfs\/boot\/vmlinuz-/, 'GRUB loaded the installer\'s kernel');
        assert.match((await ctx.output('stub-before')) ?? '', /set prefix=\(\$root\)'\/@rootfs\/boot\/grub'/, 'grub-install pointed GRUB into @rootfs');
        assert.match((await ctx.output('stub')) ?? '', /^search\.fs_uuid [0-9a-f]{4}-[0-9a-f]{4} root\nset prefix=\(\$root\)'\/grub'\nconfigfile \$prefix\/grub\.cfg$/m, 'init pointed GRUB at its directory on the ESP');
        assert.match((await ctx.output('menu')) ?? '', /--id sysprime-debian \{/);
        assert.match((await ctx.output('grubenv')) ?? '', /^saved_entry=sysprime-debian$/m);
        assert.equal(env(await ctx.json<EnvJson[]>('list'), 'debian').generation, 0);
      },
    },
    {
      script: `
step list sysprime --json list
step grubdir findmnt -n -o SOURCE,FSTYPE /boot/grub
step fstab cat /etc/fstab
step state findmnt -n -o FSROOT /var/lib/sysprime/state
probe complete systemctl is-enabled --quiet sysprime-boot-complete.service
mkdir -p /mnt/top
step top mount -o subvolid=5 /dev/vda2 /mnt/top
step delete btrfs subvolume delete /mnt/top/@rootfs
umount /mnt/top
step update-grub update-grub
# drift exits 1 when it lists something; its first run keeps the pristine manifest the other scenarios reuse.
tstep drift sh -c 'sysprime -v drift --no-diff; [ $? -le 1 ]'
then_reboot
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'ROOT/debian', 'GRUB booted the adopted environment');
        assert.match(boot.grubEntry, /^debian \(generation 0, /, 'GRUB picked sysprime\'s entry by itself (the saved default, with Debian\'s GRUB_DEFAULT=0)');
        assert.match(boot.image, /^\/ROOT\/debian\/boot\/vmlinuz-/, 'through sysprime\'s entry, from the environment\'s own /boot');
        const e = env(await ctx.json<EnvJson[]>('list'), 'debian');
        assert.ok(e.booted && e.default, '`list` shows "debian" booted and default');
        assert.equal(probe(boot, 'complete'), 0, 'init enabled the unit that marks a boot good');
        assert.match((await ctx.output('grubdir')) ?? '', /vfat/, 'GRUB\'s directory is the ESP\'s, mounted at /boot/grub');
        assert.equal(((await ctx.output('state')) ?? '').trim(), '/ROOT/.sysprime/state', 'the state database is in the home init gave it');
        assert.match((await ctx.output('fstab')) ?? '', /^\/boot\/efi\/grub \/boot\/grub none bind,nofail,x-systemd\.requires-mounts-for=\/boot\/efi 0 0$/m, 'the environment mounts it');
      },
    },
    {
      script: `
step list sysprime --json list
value include grep -c 'sysprime boot environments' /boot/grub/grub.cfg
then_poweroff
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'ROOT/debian', 'with @rootfs gone, GRUB still boots the environment');
        assert.match(boot.grubEntry, /^debian \(generation 0, /, 'through sysprime\'s entry');
        assert.ok(env(await ctx.json<EnvJson[]>('list'), 'debian').booted);
      },
    },
  ],
};
