/**
 * 7. `prune` destroys the oldest environments beyond `keep`, with their
 * entries and kernels on the ESP. Then the read-only /usr the store updater
 * gives every environment it builds (`usr.mount`, written by the same code,
 * src/updaters/store/read-only-usr.ts) is booted once: /usr comes up
 * read-only over a writable root.
 */
import assert from 'node:assert/strict';
import { probe, rootOf, type EnvJson, type Scenario } from '../scenario.js';
import { chain } from './chain.js';
import { preemptiveUpdate } from './preemptive-update.js';

export const prune: Scenario = {
  id: 7,
  name: 'prune',
  from: 'adopted',
  verbs: ['create', 'prune'],
  timeoutMinutes: 16,
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
step pruned-list sysprime --json list
step entries-after ls /boot/efi/loader/entries
step kernels-after ls /boot/efi/sysprime
cat > /tmp/read-only-usr.mjs <<'EOF'
const { installReadOnlyUsr } = await import('/opt/sysprime/dist/src/updaters/store/read-only-usr.js');
if (!installReadOnlyUsr(process.argv[2])) process.exit(1);
EOF
mkdir -p /mnt/old3
step usr-mount-dir sysprime mount old3 /mnt/old3
step usr-unit node /tmp/read-only-usr.mjs /mnt/old3
step usr-umount sysprime umount old3
step usr-once sysprime activate --once old3
then_reboot
`,
      async check(_boot, ctx) {
        assert.match((await ctx.output('entries-before')) ?? '', /^sysprime-old1\.conf$/m, 'every environment had an entry');
        const names = (await ctx.json<EnvJson[]>('pruned-list')).map((e) => e.name).sort();
        assert.deepEqual(names, ['default', 'old2', 'old3'], 'the oldest beyond keep=2 went; the running default stays');
        assert.doesNotMatch((await ctx.output('entries-after')) ?? '', /sysprime-old1/, 'its entry went with it');
        assert.doesNotMatch((await ctx.output('kernels-after')) ?? '', /^old1$/m, 'its kernels left the ESP');
      },
    },
    {
      script: `
step usr-options findmnt -n -o OPTIONS --mountpoint /usr
step root-options findmnt -n -o OPTIONS --mountpoint /
probe usr-write touch /usr/sysprime-probe
step unit systemctl is-active usr.mount
then_poweroff
`,
      async check(boot, ctx) {
        assert.match(rootOf(boot), /old3$/, 'the one-shot boots old3, which has the store\'s usr.mount');
        assert.match((await ctx.output('usr-options')) ?? '', /^ro(,|\n|$)/, '/usr is mounted read-only');
        assert.match((await ctx.output('root-options')) ?? '', /^rw(,|\n|$)/, 'the root below stays writable');
        assert.notEqual(probe(boot, 'usr-write'), 0, 'nothing can be written in /usr');
        assert.equal(((await ctx.output('unit')) ?? '').trim(), 'active');
      },
    },
  ],
};

/**
 * 7 as CI runs it: 2 (the preemptive update) first, in the same VM; its
 * staged `next` is then the oldest environment beyond keep = 2, so prune
 * takes it and old1, which leaves the same three.
 */
export const updateThenPrune = chain({ id: 7, name: 'preemptive update, then prune', timeoutMinutes: 26 }, preemptiveUpdate, prune);
