/** 2. `stage` builds generation 1 with the update while the system runs; the running system is unchanged. */
import assert from 'node:assert/strict';
import { env, probe, value, type EnvJson, type Scenario } from '../scenario.js';

/** Manifests of what an update could touch on the running system, before and after staging. */
const TREES = ['/etc', '/boot', '/var/lib/dpkg', '/usr/share/sysprime-vm-hello'];

export const preemptiveUpdate: Scenario = {
  id: 2,
  name: 'preemptive update',
  from: 'adopted',
  verbs: ['stage', 'mount', 'bart'],
  timeoutMinutes: 24,
  boots: [
    {
      script: `
manifests() { i=0; for t in ${TREES.join(' ')}; do i=$((i+1)); sysprime bart create -R "$t" > /run/m-$1-$i; done; }
value before dpkg-query -W -f='\${Version}' sysprime-vm-hello
step manifest-before manifests before
tstep stage sysprime --json -v stage --name next
step list sysprime --json list
mkdir -p /mnt/next
step mount sysprime mount next /mnt/next
value staged dpkg-query --admindir=/mnt/next/var/lib/dpkg -W -f='\${Version}' sysprime-vm-hello
value staged-file cat /mnt/next/usr/share/sysprime-vm-hello/version
step umount sysprime umount next
value after dpkg-query -W -f='\${Version}' sysprime-vm-hello
step manifest-after manifests after
${TREES.map((t, i) => `probe compare-${i + 1} sysprime bart compare /run/m-before-${i + 1} /run/m-after-${i + 1}`).join('\n')}
then_poweroff
`,
      async check(boot, ctx) {
        assert.equal(value(boot, 'before'), '1.0');
        const list = await ctx.json<EnvJson[]>('list');
        const next = env(list, 'next');
        assert.equal(next.generation, 1, 'the staged environment is generation 1');
        assert.ok(!next.booted && !next.default, 'the staged environment is neither running nor the default');
        assert.equal(value(boot, 'staged'), '2.0', 'the staged environment has version 2.0');
        assert.equal(value(boot, 'staged-file'), '2.0');
        assert.equal(value(boot, 'after'), '1.0', 'the running system still has 1.0');
        TREES.forEach((t, i) => assert.equal(probe(boot, `compare-${i + 1}`), 0, `bart compare finds no change in ${t} of the running system`));
      },
    },
  ],
};
