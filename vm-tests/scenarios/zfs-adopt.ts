/**
 * 8. Debian with its root on OpenZFS, laid out as the OpenZFS guide lays it
 * out (`rpool/ROOT/debian`, shared datasets outside ROOT, the boot pool's
 * `bpool/BOOT/debian` at /boot, GRUB reading it): sysprime is installed as
 * its package would be (units, the update-grub script, the boot generator),
 * `init` adopts the running root and its boot dataset in place and moves
 * GRUB's directory from the boot dataset to the ESP; GRUB then boots it
 * through sysprime's entry, which names the boot dataset the generator
 * mounts at /boot.
 */
import assert from 'node:assert/strict';
import { env, rootOf, type EnvJson, type Scenario } from '../scenario.js';

/** What sysprime's package and its README.Debian have the admin do. */
export const INSTALL_PACKAGE =
  "sh -c 'cp /opt/sysprime/share/systemd/*.service /usr/lib/systemd/system/ && cp /opt/sysprime/share/systemd/system-generators/sysprime-boot-generator /usr/lib/systemd/system-generators/ && systemctl daemon-reload && ln -s /opt/sysprime/share/grub/42_sysprime /etc/grub.d/42_sysprime && update-grub'";

export const zfsAdopt: Scenario = {
  id: 8,
  name: 'OpenZFS: adopt rpool/ROOT/debian with its boot pool, GRUB',
  machine: 'zfs',
  from: 'installed',
  verbs: ['init', 'list', 'drift'],
  timeoutMinutes: 22,
  boots: [
    {
      script: `
step zfs-before zfs list -H -o name,mountpoint,canmount
step boot-before findmnt -n -o SOURCE,FSTYPE /boot
step package ${INSTALL_PACKAGE}
step stub-before cat /boot/efi/EFI/debian/grub.cfg
step init sysprime init
step list sysprime --json list
step stub cat /boot/efi/EFI/debian/grub.cfg
step menu cat /boot/efi/grub/sysprime.cfg
step grubenv grub-editenv /boot/efi/grub/grubenv list
step bootfs zpool get -H -o value bootfs rpool
step state-home findmnt -n -o SOURCE,FSTYPE --mountpoint /var/lib/sysprime/state
step zfs-after zfs list -H -o name,mountpoint,canmount
then_reboot
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'rpool/ROOT/debian', 'the installed system boots from rpool/ROOT/debian');
        assert.match(boot.image, /^\/BOOT\/debian@\/vmlinuz-/, "GRUB loaded the installer's kernel from the boot dataset");
        assert.equal(((await ctx.output('boot-before')) ?? '').trim().split(/\s+/).join(' '), 'bpool/BOOT/debian zfs', 'the installed system has its boot dataset at /boot');
        assert.match((await ctx.output('stub-before')) ?? '', /set prefix=\(\$root\)'\/BOOT\/debian@\/grub'/, "grub-install pointed GRUB into the boot dataset");
        assert.match((await ctx.output('stub')) ?? '', /^search\.fs_uuid [0-9a-f]{4}-[0-9a-f]{4} root\nset prefix=\(\$root\)'\/grub'\nconfigfile \$prefix\/grub\.cfg$/m, 'init pointed GRUB at its directory on the ESP');
        const menu = (await ctx.output('menu')) ?? '';
        assert.match(menu, /--id sysprime-debian \{/);
        assert.match(menu, /search --no-floppy --label --set=root bpool/, 'the entry reads its kernel from the boot pool');
        assert.match(menu, /linux \/BOOT\/debian@\/vmlinuz-\S+ root=ZFS=rpool\/ROOT\/debian sysprime\.boot=bpool\/BOOT\/debian /, 'and names its boot dataset for the generator');
        assert.match((await ctx.output('grubenv')) ?? '', /^saved_entry=sysprime-debian$/m);
        const list = await ctx.json<EnvJson[]>('list');
        assert.equal(env(list, 'debian').generation, 0, "the installer's root dataset is adopted in place, keeping its name");
        assert.equal(((await ctx.output('bootfs')) ?? '').trim(), 'rpool/ROOT/debian');
        // Adoption changes no dataset of the guide's layout but the boot dataset's canmount: the shared ones keep their mountpoints.
        const before = ((await ctx.output('zfs-before')) ?? '').split('\n').filter((l) => !l.includes('@') && !l.startsWith('bpool/BOOT/debian\t'));
        const after = ((await ctx.output('zfs-after')) ?? '').split('\n').filter((l) => !l.includes('@'));
        for (const l of before) assert.ok(after.includes(l), `dataset line kept by init: ${l}`);
        assert.ok(after.includes('bpool/BOOT/debian\t/boot\tnoauto'), 'the boot dataset is noauto: only the booted environment\'s is mounted');
        // The machine runs with the default state directory, inside the installer's root:
        // init gives the database a dataset of its own, shared by every environment.
        assert.equal(((await ctx.output('state-home')) ?? '').trim().split(/\s+/).join(' '), 'rpool/sysprime/state zfs', 'init mounted rpool/sysprime/state at the state directory');
        assert.ok(after.includes('rpool/sysprime\tnone\toff'), 'rpool/sysprime holds the state home without being mounted');
        assert.ok(after.includes('rpool/sysprime/state\t/var/lib/sysprime/state\ton'), 'the state home is mounted by the pool at every boot');
      },
    },
    {
      script: `
step list sysprime --json list
step status sysprime status
step boot findmnt -n -o SOURCE,FSTYPE /boot
step boot-unit systemctl show -P FragmentPath boot.mount
step grubdir findmnt -n -o SOURCE,FSTYPE /boot/grub
step state-home findmnt -n -o SOURCE,FSTYPE --mountpoint /var/lib/sysprime/state
# drift exits 1 when it lists something. Its first run makes and keeps the
# pristine snapshot's manifest, which the scenarios starting from here reuse.
tstep drift sh -c 'sysprime -v drift --no-diff; [ $? -le 1 ]'
then_poweroff
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'rpool/ROOT/debian', 'the adopted environment boots');
        assert.match(boot.grubEntry, /^debian \(generation 0, /, "GRUB picked sysprime's entry by itself (the saved default)");
        assert.match(boot.image, /^\/BOOT\/debian@\/vmlinuz-/, 'from its own boot dataset');
        assert.equal(((await ctx.output('boot')) ?? '').trim().split(/\s+/).join(' '), 'bpool/BOOT/debian zfs', 'its boot dataset is mounted at /boot');
        assert.match(((await ctx.output('boot-unit')) ?? '').trim(), /^\/run\/systemd\/generator\.early\/boot\.mount$/, 'by the unit sysprime-boot-generator wrote');
        assert.match((await ctx.output('grubdir')) ?? '', /vfat/, "GRUB's directory is the ESP's, mounted at /boot/grub");
        const e = env(await ctx.json<EnvJson[]>('list'), 'debian');
        assert.ok(e.booted, '`list` shows "debian" as booted');
        assert.ok(e.default, '`list` shows "debian" as the default');
        assert.equal(((await ctx.output('state-home')) ?? '').trim().split(/\s+/).join(' '), 'rpool/sysprime/state zfs', 'after the reboot the pool mounts the state home (zfs-mount) before sysprime runs');
      },
    },
  ],
};
