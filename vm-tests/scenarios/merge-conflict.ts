/** 4. Drift made before staging: an edit of another line merges, an edit of the same line is a conflict. */
import assert from 'node:assert/strict';
import { rootOf, type Scenario } from '../scenario.js';

export const mergeConflict: Scenario = {
  id: 4,
  name: 'merge and conflict',
  from: 'adopted',
  verbs: ['stage', 'activate'],
  timeoutMinutes: 24,
  boots: [
    {
      script: `
sed -i 's/^greeting = hello$/greeting = bonjour/' /etc/sysprime-vm/merge.conf
sed -i 's/^size = 1$/size = 10/' /etc/sysprime-vm/conflict.conf
tstep stage sysprime -v stage --name next
step activate sysprime activate next
then_reboot
`,
    },
    {
      script: `
step merge cat /etc/sysprime-vm/merge.conf
step conflict cat /etc/sysprime-vm/conflict.conf
step conflict-new cat /etc/sysprime-vm/conflict.conf.sysprime-new
then_poweroff
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'ROOT/next');
        const merged = (await ctx.output('merge')) ?? '';
        assert.match(merged, /^greeting = bonjour$/m, "the admin's line survives the merge");
        assert.match(merged, /^size = 2$/m, "the update's line is merged in");
        assert.match((await ctx.output('conflict')) ?? '', /^size = 10$/m, "on conflict the admin's file stays");
        assert.match((await ctx.output('conflict-new')) ?? '', /^size = 2$/m, "the update's version waits beside it");
      },
    },
  ],
};
