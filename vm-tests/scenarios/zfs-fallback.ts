/**
 * 10. On OpenZFS: a staged environment that cannot boot uses up its tries
 * (systemd-boot's counting), and the machine falls back to the adopted root
 * by itself.
 */
import assert from 'node:assert/strict';
import { rootOf, type Scenario } from '../scenario.js';

const TRIES = 2;

export const zfsFallback: Scenario = {
  id: 10,
  name: 'OpenZFS: fallback after failed tries',
  machine: 'zfs',
  from: 'adopted',
  verbs: ['stage', 'activate', 'mount', 'status'],
  timeoutMinutes: 28,
  boots: [
    {
      script: `
sed -i 's/^tries = .*/tries = ${TRIES}/' /etc/sysprime/sysprime.toml
tstep stage sysprime -v stage --name broken
mkdir -p /mnt/broken
step mount sysprime mount broken /mnt/broken
rm -f /mnt/broken/sbin/init
printf '#!/bin/sh\\necho "SYSPRIME-VM: broken-init"\\nexit 1\\n' > /mnt/broken/sbin/init
chmod 755 /mnt/broken/sbin/init
step umount sysprime umount broken
step activate sysprime activate broken
step entries ls /boot/efi/loader/entries
then_reboot
`,
      async check(_boot, ctx) {
        assert.match((await ctx.output('entries')) ?? '', new RegExp(`^sysprime-broken\\+${TRIES}\\.conf$`, 'm'), 'the activated staged entry counts tries');
      },
    },
    {
      script: `
step entries ls /boot/efi/loader/entries
step status sysprime status
then_poweroff
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'rpool/ROOT/debian', 'the machine fell back to the previous environment');
        assert.match((await ctx.output('entries')) ?? '', new RegExp(`^sysprime-broken\\+0-${TRIES}\\.conf$`, 'm'), 'the broken entry has no tries left');
        const status = (await ctx.output('status')) ?? '';
        assert.ok(status.split('\n').some((l) => /broken/.test(l) && /failed to boot|did not boot|fell back|tries/i.test(l)), '`status` says the environment failed to boot');
      },
    },
  ],
  checkLog(log) {
    const tries = log.orphans.filter((l) => l === 'broken-init').length;
    assert.equal(tries, TRIES, `the broken environment was tried ${TRIES} times (saw ${tries})`);
  },
};
