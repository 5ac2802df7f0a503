/**
 * 15. A required health check fails on a new environment, and the machine
 * comes back to the one before by itself (greenboot's model; docs/fleet.md,
 * "Health checks"): the health unit installed as the package installs it,
 * the running environment known good, a copy of it with a failing script in
 * `/etc/sysprime/health.d/required/` activated and booted. That boot runs
 * no scenario script (the runner is masked in the copy): the health unit
 * finds the check failed, activates the known-good environment and reboots.
 * The boot after is the old environment's: `status` says which check
 * failed, and the old environment passed its own checks. (A copy made by
 * `create` has no boot counting, which only a staged entry gets: the
 * fallback here is the health unit's alone.)
 */
import assert from 'node:assert/strict';
import { env, rootOf, type EnvJson, type Scenario } from '../scenario.js';
import { RUNNER_UNIT } from '../guest-files.js';
import { chain } from './chain.js';
import { changeAfterStaging } from './change-after-staging.js';

/** What the failing check prints on the console, where the host counts it (a boot without a script has no other trace). */
const FAILED_MARK = 'health-check-failed';

export function healthFallbackOn(root: string): Scenario {
  return {
    id: 15,
    name: 'a required health check fails: back to the environment before',
    from: 'adopted',
    verbs: ['create', 'activate', 'mount', 'status', 'health'],
    timeoutMinutes: 14,
    boots: [
      {
        script: `
step hc-install sh -c 'cp /opt/sysprime/share/systemd/sysprime-health.service /etc/systemd/system/ && systemctl daemon-reload && systemctl enable sysprime-health.service'
# The running environment passes its checks (none are required here): it is the known-good one to come back to.
step hc-good sysprime boot-hook health
step hc-create sysprime create trial
mkdir -p /mnt/trial
step hc-mount sysprime mount trial /mnt/trial
mkdir -p /mnt/trial/etc/sysprime/health.d/required
printf '#!/bin/sh\\necho "SYSPRIME-VM: ${FAILED_MARK}" > /dev/ttyS0\\necho "the disk says no" >&2\\nexit 1\\n' > /mnt/trial/etc/sysprime/health.d/required/50-vm-says-no
chmod 755 /mnt/trial/etc/sysprime/health.d/required/50-vm-says-no
# The trial's boot runs no scenario script: the health unit's reboot is what ends it.
step hc-no-runner rm /mnt/trial/etc/systemd/system/multi-user.target.wants/${RUNNER_UNIT}
step hc-umount sysprime umount trial
step hc-activate sysprime activate trial
step hc-list-before sysprime --json list
then_reboot
`,
        async check(_boot, ctx) {
          assert.ok(env(await ctx.json<EnvJson[]>('hc-list-before'), 'trial').default, 'the copy is the default: the next boot runs it');
        },
      },
      {
        script: `
step hc-status sysprime status
step hc-list sysprime --json list
step hc-unit systemctl is-active sysprime-health.service
then_poweroff
`,
        async check(boot, ctx) {
          assert.equal(rootOf(boot), root, 'the machine came back to the environment before by itself');
          const status = (await ctx.output('hc-status')) ?? '';
          assert.ok(
            status.split('\n').some((l) => /trial/.test(l) && /50-vm-says-no/.test(l)),
            `\`status\` names the environment and the check that failed:\n${status}`,
          );
          const list = await ctx.json<EnvJson[]>('hc-list');
          assert.ok(env(list, 'trial') !== undefined, 'the failed environment is kept, for the admin');
          assert.ok(!env(list, 'trial').default, 'and is no longer the default');
          assert.equal(((await ctx.output('hc-unit')) ?? '').trim(), 'active', 'the environment fallen back to passed its own checks');
        },
      },
    ],
    checkLog(log) {
      const seen = log.orphans.filter((l) => l === FAILED_MARK).length;
      assert.equal(seen, 1, `the failing check ran once, on the trial's one boot (saw ${seen})`);
    },
  };
}

/**
 * 3 as CI runs it: then 15 in the same VM, from the staged environment 3
 * booted (`next`): a copy of it fails a required check and the machine comes
 * back to `next`.
 */
export const changesThenHealthFallback = chain(
  { id: 3, name: 'changes before staging (merge, conflict) and after it (a new user), then a failing health check falls back', timeoutMinutes: 30 },
  changeAfterStaging,
  healthFallbackOn('ROOT/next'),
);
