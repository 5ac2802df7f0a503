/** 7. `prune` destroys the oldest environments beyond `keep`, with their entries and kernels on the ESP. */
import assert from 'node:assert/strict';
import { type EnvJson, type Scenario } from '../scenario.js';

export const prune: Scenario = {
  id: 7,
  name: 'prune',
  from: 'adopted',
  verbs: ['create', 'prune'],
  timeoutMinutes: 14,
  boots: [
    {
      script: `
printf '\\n[retention]\\nkeep = 2\\nmin_free_percent = 0\\n' >> /etc/sysprime/sysprime.toml
step create-1 sysprime create old1
sleep 1
step create-2 sysprime create old2
sleep 1
step create-3 sysprime create old3
step entries-before ls /boot/efi/loader/entries
step prune sysprime prune
step list sysprime --json list
step entries-after ls /boot/efi/loader/entries
step kernels-after ls /boot/efi/sysprime
then_poweroff
`,
      async check(_boot, ctx) {
        assert.match((await ctx.output('entries-before')) ?? '', /^sysprime-old1\.conf$/m, 'every environment had an entry');
        const names = (await ctx.json<EnvJson[]>('list')).map((e) => e.name).sort();
        assert.deepEqual(names, ['default', 'old2', 'old3'], 'the oldest beyond keep=2 went; the running default stays');
        assert.doesNotMatch((await ctx.output('entries-after')) ?? '', /sysprime-old1/, 'its entry went with it');
        assert.doesNotMatch((await ctx.output('kernels-after')) ?? '', /^old1$/m, 'its kernels left the ESP');
      },
    },
  ],
};
