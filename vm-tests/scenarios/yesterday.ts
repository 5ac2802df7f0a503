/**
 * 6. `activate --once` boots another environment for one boot; the loader's
 * one-shot is spent and the default entry is still the newer one for the
 * boot after.
 */
import assert from 'node:assert/strict';
import { env, probe, rootOf, type EnvJson, type Scenario } from '../scenario.js';

export const yesterday: Scenario = {
  id: 6,
  name: "yesterday's environment once",
  from: 'adopted',
  verbs: ['create', 'activate'],
  timeoutMinutes: 18,
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
step sort-keys sh -c 'grep -H "^sort-key" /boot/efi/loader/entries/*.conf'
probe oneshot test -e /sys/firmware/efi/efivars/LoaderEntryOneShot-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
then_poweroff
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'ROOT/default', 'the one-shot boot runs the older environment');
        const list = await ctx.json<EnvJson[]>('list');
        assert.ok(env(list, 'default').booted);
        assert.ok(env(list, 'today').default, '"today" stays the default');
        // What the next boot runs: systemd-boot consumed its one-shot variable, and the entry it
        // picks by sort key is still today's (a one-shot boot is no fallback: nothing moves the default).
        assert.notEqual(probe(boot, 'oneshot'), 0, 'systemd-boot cleared LoaderEntryOneShot');
        const keys = ((await ctx.output('sort-keys')) ?? '').split('\n').filter((l) => l.includes('sysprime-1-default'));
        assert.equal(keys.length, 1, `one entry has the default sort key: ${keys.join(', ')}`);
        assert.match(keys[0]!, /\/sysprime-today(\+[\d-]+)?\.conf:/, "the default entry is today's");
      },
    },
  ],
};
