/**
 * 12. On the GRUB machine: an apt update staged, activated and booted
 * through GRUB; yesterday's environment for one boot with `activate --once`
 * (GRUB's next_entry, cleared by GRUB itself in the ESP's grubenv), and back.
 */
import assert from 'node:assert/strict';
import { env, rootOf, value, type EnvJson, type Scenario } from '../scenario.js';

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
step list sysprime --json list
step once sysprime activate --once debian
step grubenv grub-editenv /boot/grub/grubenv list
then_reboot
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'ROOT/next', 'GRUB booted the staged environment');
        assert.equal(value(boot, 'version'), '2.0');
        assert.ok(env(await ctx.json<EnvJson[]>('list'), 'next').booted);
        assert.match((await ctx.output('grubenv')) ?? '', /^next_entry=sysprime-debian$/m);
      },
    },
    {
      script: `
value version dpkg-query -W -f='\${Version}' sysprime-vm-hello
step grubenv grub-editenv /boot/grub/grubenv list
step list sysprime --json list
then_reboot
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'ROOT/debian', 'the one-shot boot runs yesterday\'s environment');
        assert.equal(value(boot, 'version'), '1.0');
        assert.doesNotMatch((await ctx.output('grubenv')) ?? '', /^next_entry=sysprime/m, 'GRUB cleared the one-shot in the ESP\'s grubenv');
        assert.ok(env(await ctx.json<EnvJson[]>('list'), 'next').default, '"next" stays the default');
      },
    },
    {
      script: `
step list sysprime --json list
then_poweroff
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'ROOT/next', 'the boot after the one-shot returns to the default');
        assert.ok(env(await ctx.json<EnvJson[]>('list'), 'next').booted);
      },
    },
  ],
};
