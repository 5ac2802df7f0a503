/**
 * 3. The admin's changes before staging and after it: an edit of a conffile
 * the update changes on another line merges at staging, an edit of the same
 * line is a conflict (the admin's file stays, the update's waits beside
 * it), and a user added after staging reaches the new environment at its
 * first boot, whose unit then disables itself. (An edit made after staging
 * of a file the update changed, merged at the first boot, is in 9 and 12.)
 */
import assert from 'node:assert/strict';
import { probe, rootOf, value, type Scenario } from '../scenario.js';

export const changeAfterStaging: Scenario = {
  id: 3,
  name: 'changes before staging (merge, conflict) and after it (a new user)',
  from: 'adopted',
  verbs: ['stage', 'activate'],
  timeoutMinutes: 24,
  boots: [
    {
      script: `
sed -i 's/^greeting = hello$/greeting = bonjour/' /etc/sysprime-vm/merge.conf
sed -i 's/^size = 1$/size = 10/' /etc/sysprime-vm/conflict.conf
tstep stage sysprime -v stage --name next
step useradd useradd -m -s /bin/sh alice
step activate sysprime activate next
then_reboot
`,
    },
    {
      script: `
value version dpkg-query -W -f='\${Version}' sysprime-vm-hello
step merge cat /etc/sysprime-vm/merge.conf
step conflict cat /etc/sysprime-vm/conflict.conf
step conflict-new cat /etc/sysprime-vm/conflict.conf.sysprime-new
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
        assert.match(merged, /^greeting = bonjour$/m, "the admin's line survives the merge");
        assert.match(merged, /^size = 2$/m, "the update's line is merged in");
        assert.match((await ctx.output('conflict')) ?? '', /^size = 10$/m, "on conflict the admin's file stays");
        assert.match((await ctx.output('conflict-new')) ?? '', /^size = 2$/m, "the update's version waits beside it");
        assert.match((await ctx.output('alice')) ?? '', /^alice:/, 'the user added after staging exists');
        assert.notEqual(probe(boot, 'unit'), 0, 'the first-boot unit disabled itself');
        assert.notEqual(probe(boot, 'note'), 0, 'the first-boot note is gone');
        assert.ok(((await ctx.output('reports')) ?? '').trim().split('\n').length >= 2, 'reports of staging and of the first boot are in the environment');
      },
    },
  ],
};
