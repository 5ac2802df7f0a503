/** 6. `activate --once` boots another environment for one boot; the next boot is the default again. */
import assert from 'node:assert/strict';
import { env, rootOf, type EnvJson, type Scenario } from '../scenario.js';

export const yesterday: Scenario = {
  id: 6,
  name: "yesterday's environment once",
  from: 'adopted',
  verbs: ['create', 'activate'],
  timeoutMinutes: 24,
  boots: [
    {
      // "today" becomes the default; "default" (older) is yesterday's environment.
      script: `
step create sysprime create today
step activate sysprime activate today
step once sysprime activate --once default
then_reboot
`,
    },
    {
      script: `
step list sysprime --json list
then_reboot
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'ROOT/default', 'the one-shot boot runs the older environment');
        const list = await ctx.json<EnvJson[]>('list');
        assert.ok(env(list, 'default').booted);
        assert.ok(env(list, 'today').default, '"today" stays the default');
      },
    },
    {
      script: `
step list sysprime --json list
then_poweroff
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'ROOT/today', 'the boot after the one-shot returns to the default');
        assert.ok(env(await ctx.json<EnvJson[]>('list'), 'today').booted);
      },
    },
  ],
};
