/**
 * 12. On the GRUB machine: an apt update staged, then a conffile edited and
 * a user's file written; activated and booted through GRUB, where the first
 * boot carries the changes made after staging (with the state database in
 * the home init gave it); yesterday's environment for one boot with
 * `activate --once` (GRUB's next_entry, cleared by GRUB itself in the ESP's
 * grubenv, with GRUB's saved entry still the new one for the boot after).
 */
import assert from 'node:assert/strict';
import { env, probe, rootOf, value, type EnvJson, type Scenario } from '../scenario.js';
import { destroyBroken } from './fallback.js';
import { chain } from './chain.js';
import { grubFallback } from './grub-fallback.js';

export const grubUpdate: Scenario = {
  id: 12,
  name: 'GRUB: update, boot it, yesterday once',
  machine: 'grub',
  from: 'adopted',
  verbs: ['stage', 'activate', 'list'],
  timeoutMinutes: 28,
  boots: [
    {
      script: `
tstep stage sysprime -v stage --name next
value running-version dpkg-query -W -f='\${Version}' sysprime-vm-hello
# Changes after staging: the first boot carries them (it needs what staging kept in the state database).
sed -i 's/^greeting = hello$/greeting = bonjour/' /etc/sysprime-vm/merge.conf
mkdir -p /home/alice && echo "notes of alice" > /home/alice/notes.txt
step activate sysprime activate next
step menu cat /boot/grub/sysprime.cfg
then_reboot
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'ROOT/debian');
        assert.equal(value(boot, 'running-version'), '1.0', 'staging changed nothing on the running system');
        assert.match((await ctx.output('menu')) ?? '', /--id sysprime-next \{/);
      },
    },
    {
      script: `
value version dpkg-query -W -f='\${Version}' sysprime-vm-hello
step merge cat /etc/sysprime-vm/merge.conf
step alice cat /home/alice/notes.txt
probe unit test -e /etc/systemd/system/sysinit.target.wants/sysprime-reintegrate.service
step state findmnt -n -o FSROOT /var/lib/sysprime/state
step list sysprime --json list
step once sysprime activate --once debian
step grubenv grub-editenv /boot/grub/grubenv list
then_reboot
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'ROOT/next', 'GRUB booted the staged environment');
        assert.equal(value(boot, 'version'), '2.0');
        const merged = (await ctx.output('merge')) ?? '';
        assert.match(merged, /^greeting = bonjour$/m, 'the edit made after staging was replayed at the first boot');
        assert.match(merged, /^size = 2$/m, "the update's own change is there too");
        assert.equal(((await ctx.output('alice')) ?? '').trim(), 'notes of alice', 'a user\'s file written after staging is there');
        assert.notEqual(probe(boot, 'unit'), 0, 'the first-boot unit did its work and disabled itself');
        assert.equal(((await ctx.output('state')) ?? '').trim(), '/ROOT/.sysprime/state', 'the state database init gave a home, mounted here too');
        assert.ok(env(await ctx.json<EnvJson[]>('list'), 'next').booted);
        assert.match((await ctx.output('grubenv')) ?? '', /^next_entry=sysprime-debian$/m);
      },
    },
    {
      script: `
value version dpkg-query -W -f='\${Version}' sysprime-vm-hello
# The unit that ends a boot runs beside the runner: wait for it, so what it leaves is what is checked.
step settle systemctl start sysprime-boot-complete.service
step grubenv grub-editenv /boot/grub/grubenv list
step list sysprime --json list
then_poweroff
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'ROOT/debian', 'the one-shot boot runs yesterday\'s environment');
        assert.equal(value(boot, 'version'), '1.0');
        const grubenv = (await ctx.output('grubenv')) ?? '';
        assert.doesNotMatch(grubenv, /^next_entry=sysprime/m, 'GRUB cleared the one-shot in the ESP\'s grubenv');
        // The next boot is GRUB's saved entry: still "next", not the one-shot (a one-shot boot is no fallback).
        assert.match(grubenv, /^saved_entry=sysprime-next$/m, 'the default entry stays "next" after the one-shot boot');
        assert.ok(env(await ctx.json<EnvJson[]>('list'), 'next').default, '"next" stays the default');
      },
    },
  ],
};

/**
 * 12 as CI runs it: 13 (GRUB's fallback) first, in the same VM. The broken
 * environment is staged from the adopted root with the update, and the
 * machine falls back to the adopted root; destroying it takes its
 * generation's pristine state too, so 12 then stages `next` with the update
 * again (updates chain on the newest pristine state: with it kept, staging
 * would find nothing to do).
 */
export const grubFallbackThenUpdate = chain(
  { id: 12, name: 'GRUB: fallback after failed tries, then update, boot it, yesterday once', timeoutMinutes: 36 },
  grubFallback,
  destroyBroken('grub', 'debian'),
  grubUpdate,
);
