/** 3. Changes made after staging (a config edit, a new user) reach the new environment at its first boot. */
import assert from 'node:assert/strict';
import { probe, rootOf, value, type Scenario } from '../scenario.js';

export const changeAfterStaging: Scenario = {
  id: 3,
  name: 'change after staging',
  from: 'adopted',
  verbs: ['stage', 'activate'],
  timeoutMinutes: 24,
  boots: [
    {
      script: `
tstep stage sysprime -v stage --name next
sed -i 's/^greeting = hello$/greeting = bonjour/' /etc/sysprime-vm/merge.conf
step useradd useradd -m -s /bin/sh alice
step activate sysprime activate next
then_reboot
`,
    },
    {
      script: `
value version dpkg-query -W -f='\${Version}' sysprime-vm-hello
step merge cat /etc/sysprime-vm/merge.conf
step alice getent passwd alice
probe unit test -e /etc/systemd/system/sysinit.target.wants/sysprime-reintegrate.service
probe note test -e /var/lib/sysprime/first-boot.json
step reports ls /var/lib/sysprime/reintegration
step unit-log journalctl -b -u sysprime-reintegrate.service --no-pager
then_poweroff
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'ROOT/next', 'the reboot runs the staged environment');
        assert.equal(value(boot, 'version'), '2.0');
        const merged = (await ctx.output('merge')) ?? '';
        assert.match(merged, /^greeting = bonjour$/m, 'the edit made after staging was replayed');
        assert.match(merged, /^size = 2$/m, "the update's own change is there too");
        assert.match((await ctx.output('alice')) ?? '', /^alice:/, 'the user added after staging exists');
        assert.notEqual(probe(boot, 'unit'), 0, 'the first-boot unit disabled itself');
        assert.notEqual(probe(boot, 'note'), 0, 'the first-boot note is gone');
        assert.ok(((await ctx.output('reports')) ?? '').trim().split('\n').length >= 2, 'reports of staging and of the first boot are in the environment');
      },
    },
  ],
};
