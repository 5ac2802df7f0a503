/**
 * 14. Debian 12 on Btrfs with a separate ext4 `/boot`, as its installer
 * lays it out when asked for one (ESP, `/boot`, `@rootfs`; GRUB's directory
 * and the kernels on `/boot`): sysprime is installed as its package would
 * be, `init` adopts the running root, GRUB boots the adopted environment
 * with the kernel from the environment's own `/boot` (inside its subvolume,
 * not the shared partition), a staged update is booted, and yesterday's
 * environment once: early in each boot sysprime-boot-start.service puts the
 * running environment's kernels on the partition and names it there, and
 * GRUB clears its one-shot itself (grubenv on ext4, which GRUB can write).
 */
import assert from 'node:assert/strict';
import { env, probe, rootOf, value, type EnvJson, type Scenario } from '../scenario.js';

/** Mounts the Btrfs top level at /mnt/top for a look at the environments' own trees. */
const TOP = 'mkdir -p /mnt/top && mount -o subvolid=5 /dev/vda3 /mnt/top';

export const grubBoot: Scenario = {
  id: 14,
  name: 'GRUB with a separate /boot: adopt, update, boot it, yesterday once',
  machine: 'grub-boot',
  from: 'installed',
  verbs: ['init', 'stage', 'activate', 'list'],
  timeoutMinutes: 30,
  boots: [
    {
      script: `
step package sh -c 'cp /opt/sysprime/share/systemd/*.service /usr/lib/systemd/system/ && systemctl daemon-reload && ln -s /opt/sysprime/share/grub/42_sysprime /etc/grub.d/42_sysprime && update-grub'
step stub-before cat /boot/efi/EFI/debian/grub.cfg
step init sysprime init --name debian
step stub cat /boot/efi/EFI/debian/grub.cfg
step menu cat /boot/grub/sysprime.cfg
step grubenv grub-editenv /boot/grub/grubenv list
step owner cat /boot/.sysprime-kernels-of
step top sh -c '${TOP}'
step tree-boot ls /mnt/top/ROOT/debian/boot
umount /mnt/top
then_reboot
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), '@rootfs', 'the installed system boots from @rootfs');
        assert.equal(boot.grubEntry, 'Debian GNU/Linux', 'through Debian\'s own menu entry');
        assert.match(boot.image, /^\/vmlinuz-/, 'GRUB loaded the kernel from the /boot partition');
        const stub = (await ctx.output('stub')) ?? '';
        assert.match(stub, /set prefix=\(\$root\)'\/grub'/, 'grub-install pointed GRUB at the /boot partition');
        assert.equal(stub, (await ctx.output('stub-before')) ?? '', 'init left the stub alone: GRUB\'s directory is on /boot, which GRUB can write');
        const menu = (await ctx.output('menu')) ?? '';
        assert.match(menu, /--id sysprime-debian \{/);
        assert.match(menu, /linux \/ROOT\/debian\/boot\/vmlinuz-/, 'the entry reads the kernel from the environment\'s own tree');
        assert.match((await ctx.output('grubenv')) ?? '', /^saved_entry=sysprime-debian$/m);
        assert.match(((await ctx.output('owner')) ?? '').trim(), /^debian\ncreated-order \d+$/, 'the partition holds the adopted environment\'s kernels');
        assert.match((await ctx.output('tree-boot')) ?? '', /^vmlinuz-/m, 'init copied the kernels into the environment\'s own /boot');
      },
    },
    {
      script: `
step list sysprime --json list
step bootfs findmnt -n -o FSTYPE /boot
tstep stage sysprime -v stage --name next
value running-version dpkg-query -W -f='\${Version}' sysprime-vm-hello
step top sh -c '${TOP}'
step next-boot ls /mnt/top/ROOT/next/boot
umount /mnt/top
step activate sysprime activate next
step owner cat /boot/.sysprime-kernels-of
then_reboot
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'ROOT/debian', 'GRUB booted the adopted environment');
        assert.match(boot.grubEntry, /^debian \(generation 0, /, 'through sysprime\'s entry, the saved default');
        assert.match(boot.image, /^\/ROOT\/debian\/boot\/vmlinuz-/, 'with the kernel from the environment\'s own /boot');
        assert.ok(env(await ctx.json<EnvJson[]>('list'), 'debian').booted);
        assert.equal(((await ctx.output('bootfs')) ?? '').trim(), 'ext4');
        assert.equal(value(boot, 'running-version'), '1.0', 'staging changed nothing on the running system');
        assert.match((await ctx.output('next-boot')) ?? '', /^vmlinuz-/m, 'the staged environment has kernels of its own');
        assert.match(((await ctx.output('owner')) ?? '').trim(), /^debian\ncreated-order \d+$/, 'the partition still holds the running environment\'s kernels');
      },
    },
    {
      script: `
value version dpkg-query -W -f='\${Version}' sysprime-vm-hello
probe boot-start systemctl is-active --quiet sysprime-boot-start.service
step owner cat /boot/.sysprime-kernels-of
step list sysprime --json list
step kernels sh -c 'ls /boot | grep -E "^(vmlinuz|initrd.img)-"'
step once sysprime activate --once debian
step grubenv grub-editenv /boot/grub/grubenv list
then_reboot
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'ROOT/next', 'GRUB booted the staged environment');
        assert.match(boot.image, /^\/ROOT\/next\/boot\/vmlinuz-/, 'from its own /boot');
        assert.equal(value(boot, 'version'), '2.0');
        assert.ok(env(await ctx.json<EnvJson[]>('list'), 'next').booted);
        assert.equal(probe(boot, 'boot-start'), 0, 'sysprime-boot-start.service ran early in the boot');
        assert.match(((await ctx.output('owner')) ?? '').trim(), /^next\ncreated-order \d+$/, 'the partition holds the kernels of the environment that runs from the start of its boot, before any verb');
        assert.match((await ctx.output('kernels')) ?? '', /^vmlinuz-/m);
        assert.match((await ctx.output('grubenv')) ?? '', /^next_entry=sysprime-debian$/m);
      },
    },
    {
      script: `
value version dpkg-query -W -f='\${Version}' sysprime-vm-hello
probe boot-start systemctl is-active --quiet sysprime-boot-start.service
step owner cat /boot/.sysprime-kernels-of
step grubenv grub-editenv /boot/grub/grubenv list
step list sysprime --json list
then_poweroff
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'ROOT/debian', 'the one-shot boot runs yesterday\'s environment');
        assert.match(boot.image, /^\/ROOT\/debian\/boot\/vmlinuz-/);
        assert.equal(value(boot, 'version'), '1.0');
        assert.doesNotMatch((await ctx.output('grubenv')) ?? '', /^next_entry=sysprime/m, 'GRUB cleared the one-shot in grubenv on /boot');
        assert.equal(probe(boot, 'boot-start'), 0);
        assert.match(((await ctx.output('owner')) ?? '').trim(), /^debian\ncreated-order \d+$/, 'and the partition holds its kernels again, from the start of the boot');
        assert.ok(env(await ctx.json<EnvJson[]>('list'), 'next').default, '"next" stays the default');
      },
    },
  ],
};
