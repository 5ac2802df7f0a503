/**
 * 8. Debian with its root on OpenZFS, laid out as the OpenZFS guide lays it
 * out (`rpool/ROOT/debian`, shared datasets outside ROOT), adopts its
 * running root in place and boots into it through sysprime's entry.
 */
import assert from 'node:assert/strict';
import { env, rootOf, type EnvJson, type Scenario } from '../scenario.js';

export const zfsAdopt: Scenario = {
  id: 8,
  name: 'OpenZFS: adopt rpool/ROOT/debian',
  machine: 'zfs',
  from: 'installed',
  verbs: ['init', 'list', 'activate', 'drift'],
  timeoutMinutes: 20,
  boots: [
    {
      script: `
step zfs-before zfs list -H -o name,mountpoint,canmount
step init sysprime init
step list sysprime --json list
step activate sysprime activate debian
step entries ls /boot/efi/loader/entries
step loader cat /boot/efi/loader/loader.conf
step bootfs zpool get -H -o value bootfs rpool
step state-home findmnt -n -o SOURCE,FSTYPE --mountpoint /var/lib/sysprime/state
step zfs-after zfs list -H -o name,mountpoint,canmount
then_reboot
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'rpool/ROOT/debian', 'the installed system boots from rpool/ROOT/debian');
        const list = await ctx.json<EnvJson[]>('list');
        assert.equal(env(list, 'debian').generation, 0, 'the installer\'s root dataset is adopted in place, keeping its name');
        assert.match((await ctx.output('entries')) ?? '', /^sysprime-debian(\+\d+(-\d+)?)?\.conf$/m, 'init/activate wrote an entry for "debian"');
        assert.match((await ctx.output('loader')) ?? '', /^default sysprime-\*$/m, 'loader.conf defaults to the sysprime entries');
        assert.equal(((await ctx.output('bootfs')) ?? '').trim(), 'rpool/ROOT/debian');
        // Adoption changes no dataset of the guide's layout: the shared ones keep their mountpoints.
        const before = ((await ctx.output('zfs-before')) ?? '').split('\n').filter((l) => !l.includes('@'));
        const after = ((await ctx.output('zfs-after')) ?? '').split('\n').filter((l) => !l.includes('@'));
        for (const l of before) assert.ok(after.includes(l), `dataset line kept by init: ${l}`);
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
step state-home findmnt -n -o SOURCE,FSTYPE --mountpoint /var/lib/sysprime/state
# drift exits 1 when it lists something. Its first run makes and keeps the
# pristine snapshot's manifest, which the scenarios starting from here reuse.
tstep drift sh -c 'sysprime -v drift --no-diff; [ $? -le 1 ]'
then_poweroff
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'rpool/ROOT/debian', 'the adopted environment boots');
        assert.match(boot.entry, /^sysprime-debian/, 'systemd-boot picked the sysprime entry');
        const e = env(await ctx.json<EnvJson[]>('list'), 'debian');
        assert.ok(e.booted, '`list` shows "debian" as booted');
        assert.ok(e.default, '`list` shows "debian" as the default');
        assert.equal(((await ctx.output('state-home')) ?? '').trim().split(/\s+/).join(' '), 'rpool/sysprime/state zfs', 'after the reboot the pool mounts the state home (zfs-mount) before sysprime runs');
      },
    },
  ],
};
