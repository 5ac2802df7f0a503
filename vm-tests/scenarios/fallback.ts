/**
 * 5. A staged environment that cannot boot (its init exits, the kernel
 * panics and reboots) uses up its tries, and the bootloader falls back to
 * the previous environment by itself: systemd-boot with its own boot
 * counting (entry file names), GRUB with sysprime's counting in grubenv.
 */
import assert from 'node:assert/strict';
import type { Machine } from '../guest-files.js';
import { env, rootOf, type EnvJson, type Scenario } from '../scenario.js';
import { chain } from './chain.js';
import { yesterday } from './yesterday.js';

/** Where each bootloader keeps its counting, and what it says before and after `tries` failed tries. */
const COUNTING = {
  'systemd-boot': {
    settle: '',
    show: 'ls /boot/efi/loader/entries',
    before: (out: string, tries: number) => assert.match(out, new RegExp(`^sysprime-broken\\+${tries}\\.conf$`, 'm'), 'the activated staged entry counts tries'),
    after: (out: string, _root: string, tries: number) => assert.match(out, new RegExp(`^sysprime-broken\\+0-${tries}\\.conf$`, 'm'), 'the broken entry has no tries left'),
  },
  grub: {
    // The unit that ends the trial runs beside the runner: wait for it (a no-op once it ran).
    settle: 'step settle systemctl start sysprime-boot-complete.service',
    show: 'grub-editenv /boot/grub/grubenv list',
    before: (out: string, tries: number) => {
      assert.match(out, new RegExp(`^boot_counter=${tries}$`, 'm'), 'the activated staged entry counts tries in grubenv');
      assert.match(out, /^sysprime_counting=sysprime-broken$/m);
    },
    after: (out: string, root: string) => {
      assert.doesNotMatch(out, /^sysprime_counting=/m, 'the trial is over');
      assert.match(out, /^sysprime_failed=sysprime-broken$/m, 'its failure is on record');
      assert.match(out, new RegExp(`^saved_entry=sysprime-${root.split('/').pop()}$`, 'm'), 'the environment fallen back to is the default again');
    },
  },
} as const;

/**
 * The scenario on a machine whose adopted root (the one to fall back to) is
 * `root`, with `tries` failed boots before the fallback (two where the
 * counting's steps down are what is tried; one where each failed boot costs
 * minutes and the fallback is the point).
 */
export function fallbackOn(id: number, name: string, machine: Machine, root: string, timeoutMinutes: number, loader: keyof typeof COUNTING = 'systemd-boot', tries = 2): Scenario {
  const counting = COUNTING[loader];
  return {
    id,
    name,
    machine,
    from: 'adopted',
    verbs: ['stage', 'activate', 'mount', 'status'],
    timeoutMinutes,
    boots: [
      {
        script: `
sed -i 's/^tries = .*/tries = ${tries}/' /etc/sysprime/sysprime.toml
tstep stage sysprime -v stage --name broken
mkdir -p /mnt/broken
step mount sysprime mount broken /mnt/broken
rm -f /mnt/broken/sbin/init
printf '#!/bin/sh\\necho "SYSPRIME-VM: broken-init"\\nexit 1\\n' > /mnt/broken/sbin/init
chmod 755 /mnt/broken/sbin/init
step umount sysprime umount broken
step activate sysprime activate broken
step entries ${counting.show}
then_reboot
`,
        async check(_boot, ctx) {
          counting.before((await ctx.output('entries')) ?? '', tries);
        },
      },
      {
        script: `
${counting.settle}
step entries ${counting.show}
step status sysprime status
then_poweroff
`,
        async check(boot, ctx) {
          assert.equal(rootOf(boot), root, 'the machine fell back to the previous environment');
          counting.after((await ctx.output('entries')) ?? '', root, tries);
          const status = (await ctx.output('status')) ?? '';
          assert.match(status, /broken/, '`status` names the environment that failed');
          // One line names it and says it did not boot (a reintegration line's "failure(s)" is not that).
          assert.ok(
            status.split('\n').some((l) => /broken/.test(l) && /failed to boot|did not boot|fell back|fallback|tries/i.test(l)),
            '`status` says the environment failed to boot and the machine fell back',
          );
        },
      },
    ],
    checkLog(log) {
      const seen = log.orphans.filter((l) => l === 'broken-init').length;
      assert.equal(seen, tries, `the broken environment was tried ${tries} times (saw ${seen})`);
    },
  };
}

export const fallback = fallbackOn(5, 'fallback after failed tries', 'btrfs', 'ROOT/default', 28);

/** 5 as CI runs it: then 6 (yesterday's environment once) in the same VM, from the environment fallen back to. */
export const fallbackThenYesterday = chain({ id: 5, name: "fallback after failed tries, then yesterday's environment once", timeoutMinutes: 34 }, fallback, yesterday);

/**
 * Between a fallback and a staging in one chain: the broken environment
 * destroyed, which takes its generation's pristine state too (updates chain
 * on the newest pristine state: with it kept, staging again would find
 * nothing to do). Checks first that the environment fallen back to
 * (`adopted`) is the default, as the bootloader's saved entry is.
 */
export function destroyBroken(machine: Machine, adopted: string): Scenario {
  return {
    id: 0,
    name: 'destroy the broken environment',
    machine,
    from: 'adopted',
    verbs: ['destroy'],
    timeoutMinutes: 0,
    boots: [
      {
        script: 'step settled sysprime --json list\nstep destroy-broken sysprime destroy broken\nthen_poweroff\n',
        async check(_boot, ctx) {
          assert.ok(env(await ctx.json<EnvJson[]>('settled'), adopted).default, `"${adopted}" is the default after the fallback, not "broken"`);
        },
      },
    ],
  };
}
