/**
 * 90. A benchmark, not a test (run only with `--only 90`, never by `npm
 * test`): `bench/drift-zfs.sh` in the OpenZFS guest, where `zfs diff`
 * exists (this project's hosts have only zfs-fuse). Drift through `zfs diff`
 * against the walk and against `find -printf`, on a tree of 60,000 files
 * with 1% changed; the numbers are in the step's output
 * (`out/b1-bench.out` on the kept script drive) and bench/RESULTS.md.
 * Under TCG the guest is some 30 times slower than the host: the ratios
 * are what to read, not the seconds.
 */
import assert from 'node:assert/strict';
import type { Scenario } from '../scenario.js';

export const benchZfsDrift: Scenario = {
  id: 90,
  name: 'benchmark: drift through zfs diff against the walk, on OpenZFS',
  machine: 'zfs',
  from: 'adopted',
  verbs: ['drift'],
  timeoutMinutes: 40,
  bench: true,
  boots: [
    {
      script: `
tstep bench sh -c 'TMPDIR=/dev/shm bash /opt/sysprime/bench/drift-zfs.sh 60000'
then_poweroff
`,
      async check(_boot, ctx) {
        const out = (await ctx.output('bench')) ?? '';
        process.stdout.write(`${out.trim().split('\n').map((l) => `       ${l}`).join('\n')}\n`);
        assert.match(out, /^reports equal: \d+ items$/m, 'the walk and zfs diff agree');
      },
    },
  ],
};
