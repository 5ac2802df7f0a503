/** 1. A Debian installed in `@` adopts its running root and boots into it. */
import assert from 'node:assert/strict';
import { env, rootOf, type EnvJson, type Scenario } from '../scenario.js';

export const installAdopt: Scenario = {
  id: 1,
  name: 'install and adopt',
  from: 'installed',
  verbs: ['init', 'list', 'activate', 'drift'],
  timeoutMinutes: 20,
  boots: [
    {
      script: `
step init sysprime init
step list sysprime --json list
step activate sysprime activate default
step entries ls /boot/efi/loader/entries
step loader cat /boot/efi/loader/loader.conf
then_reboot
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), '@', 'the installed system boots from @');
        const list = await ctx.json<EnvJson[]>('list');
        assert.equal(env(list, 'default').generation, 0);
        assert.match((await ctx.output('entries')) ?? '', /^sysprime-default(\+\d+(-\d+)?)?\.conf$/m, 'init/activate wrote an entry for "default"');
        assert.match((await ctx.output('loader')) ?? '', /^default sysprime-\*$/m, 'loader.conf defaults to the sysprime entries');
      },
    },
    {
      script: `
step list sysprime --json list
step status sysprime status
# drift exits 1 when it lists something. Its first run makes and keeps the
# pristine snapshot's manifest, which every scenario starting from this
# machine then reuses instead of making it again.
tstep drift sh -c 'sysprime -v drift --no-diff; [ $? -le 1 ]'
then_poweroff
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'ROOT/default', 'the second boot runs the adopted environment');
        assert.match(boot.entry, /^sysprime-default/, 'systemd-boot picked the sysprime entry');
        const e = env(await ctx.json<EnvJson[]>('list'), 'default');
        assert.ok(e.booted, '`list` shows "default" as booted');
        assert.ok(e.default, '`list` shows "default" as the default');
      },
    },
  ],
};
