/**
 * 9. On OpenZFS: an apt update staged preemptively in a clone (with a boot
 * dataset of its own), changes made after staging (a config edit, a user's
 * file on the shared home dataset) there after GRUB booted it, its own boot
 * dataset at /boot, drift by `zfs diff` equal to drift by a walk, and
 * prune of the adopted root the new environment was cloned from. (Booting an
 * older environment on this machine is scenario 10's fallback; the one-shot
 * is the loader's own, tried on Btrfs (6) and GRUB (12).)
 */
import assert from 'node:assert/strict';
import { env, probe, rootOf, value, type EnvJson, type Scenario } from '../scenario.js';
import { chain } from './chain.js';
import { destroyBroken } from './fallback.js';
import { zfsFallback } from './zfs-fallback.js';

export const zfsUpdate: Scenario = {
  id: 9,
  name: 'OpenZFS: update, first boot, drift, prune',
  machine: 'zfs',
  from: 'adopted',
  verbs: ['stage', 'activate', 'prune'],
  timeoutMinutes: 22,
  boots: [
    {
      script: `
tstep stage sysprime -v stage --name next
step pristine-manifest grep -o 'manifest of the pristine snapshot of generation [0-9]*[^|]*' out/b$N-stage.err
value running-version dpkg-query -W -f='\${Version}' sysprime-vm-hello
sed -i 's/^greeting = hello$/greeting = bonjour/' /etc/sysprime-vm/merge.conf
mkdir -p /home/alice && echo "notes of alice" > /home/alice/notes.txt
step datasets zfs list -H -o name,origin
step activate sysprime activate next
step menu cat /boot/grub/sysprime.cfg
then_reboot
`,
      async check(boot, ctx) {
        assert.equal(value(boot, 'running-version'), '1.0', 'staging changed nothing on the running system');
        // The new pristine state's manifest is the base's patched with what \`zfs diff\` lists between the two
        // snapshots, not a walk of the whole tree (drift in the next boot lists only the admin's changes against it).
        assert.match(
          (await ctx.output('pristine-manifest')) ?? '',
          /^manifest of the pristine snapshot of generation \d+ from zfs diff rpool\/ROOT\/debian@sysprime-pristine rpool\/ROOT\/next@sysprime-pristine: /m,
          "the new pristine state's manifest comes from zfs diff between the two pristine snapshots",
        );
        const datasets = (await ctx.output('datasets')) ?? '';
        assert.match(datasets, /^rpool\/ROOT\/next\t/m, 'the new environment is a dataset beside debian');
        assert.match(datasets, /^bpool\/BOOT\/next\tbpool\/BOOT\/debian@sysprime-pristine$/m, 'with a boot dataset of its own, cloned from the same-named snapshot');
        assert.match((await ctx.output('menu')) ?? '', /linux \/BOOT\/next@\/vmlinuz-\S+ root=ZFS=rpool\/ROOT\/next sysprime\.boot=bpool\/BOOT\/next /, "its entry reads its own boot dataset's kernel and names it");
      },
    },
    {
      script: `
value version dpkg-query -W -f='\${Version}' sysprime-vm-hello
step boot findmnt -n -o SOURCE,FSTYPE /boot
step merge cat /etc/sysprime-vm/merge.conf
step alice cat /home/alice/notes.txt
probe unit test -e /etc/systemd/system/sysinit.target.wants/sysprime-reintegrate.service
step list sysprime --json list
# drift from \`zfs diff\` (the fast path) and from a walk of the whole tree must agree (exit 1: changes listed).
tstep drift-changes sh -c 'SYSPRIME_DRIFT_METHOD=changes sysprime -v drift --format json --no-record; [ $? -le 1 ]'
tstep drift-walk sh -c 'SYSPRIME_DRIFT_METHOD=walk sysprime -v drift --format json --no-record; [ $? -le 1 ]'
printf '\\n[retention]\\nkeep = 2\\nmin_free_percent = 0\\n' >> /etc/sysprime/sysprime.toml
step create-a sysprime create extra-a
step create-b sysprime create extra-b
step prune sysprime prune
step pruned-list sysprime --json list
step datasets-after zfs list -H -o name
# The pool tests that need OpenZFS itself (native encryption), on scratch pools
# in memory (a pool on files inside ZFS can deadlock under memory pressure).
tstep openzfs-tests sh -c 'cd /opt/sysprime && TMPDIR=/dev/shm node --test --test-reporter=spec --test-reporter-destination=stdout --test-reporter=spec --test-reporter-destination=stderr "dist/test/real/openzfs/*.test.js"'
then_poweroff
`,
      async check(boot, ctx) {
        assert.equal(rootOf(boot), 'rpool/ROOT/next', 'the reboot runs the staged environment');
        assert.match(boot.grubEntry, /^next \(generation 1, /, "through sysprime's entry");
        assert.match(boot.image, /^\/BOOT\/next@\/vmlinuz-/, 'GRUB loaded the kernel from its own boot dataset');
        // Two boot datasets at /boot now: zfs-mount-generator would mount neither; sysprime's generator mounts the booted one's.
        assert.equal(((await ctx.output('boot')) ?? '').trim().split(/\s+/).join(' '), 'bpool/BOOT/next zfs', 'its own boot dataset is mounted at /boot');
        assert.equal(value(boot, 'version'), '2.0');
        const merged = (await ctx.output('merge')) ?? '';
        assert.match(merged, /^greeting = bonjour$/m, 'the edit made after staging was replayed at the first boot');
        assert.match(merged, /^size = 2$/m, "the update's own change is there too");
        assert.equal(((await ctx.output('alice')) ?? '').trim(), 'notes of alice', 'the user file on the shared home dataset is there');
        assert.notEqual(probe(boot, 'unit'), 0, 'the first-boot unit disabled itself');
        // On OpenZFS drift reads only what `zfs diff` lists; its report is the walk's, item for item.
        type Drift = { at?: string; manifests?: unknown; counts: unknown; items: { path: string }[]; sharedData: unknown };
        const fast = await ctx.json<Drift>('drift-changes');
        const walk = await ctx.json<Drift>('drift-walk');
        // When each ran, and the digests of the manifests each wrote (each with its own creation time), are the run's own.
        delete fast.at;
        delete walk.at;
        delete fast.manifests;
        delete walk.manifests;
        // Exactly the admin's changes: the edit carried at the first boot and the configuration edited before
        // staging. A file of the update missing from the new pristine state's manifest (made from zfs diff
        // at staging) would be listed here as a change of the admin's.
        assert.deepEqual(
          walk.items.map((i) => i.path).sort(),
          ['/etc/sysprime-vm/merge.conf', '/etc/sysprime/sysprime.toml'],
          "the walk lists the admin's changes and nothing of the update's",
        );
        assert.deepEqual(fast, walk, 'drift from zfs diff equals drift from the walk');
        const list = await ctx.json<EnvJson[]>('list');
        assert.ok(env(list, 'next').booted && env(list, 'next').default);
        const pruned = await ctx.json<EnvJson[]>('pruned-list');
        const datasets = ((await ctx.output('datasets-after')) ?? '').split('\n');
        for (const shared of ['rpool/home', 'rpool/home/root', 'rpool/var/log', 'rpool/sysprime/state']) {
          assert.ok(datasets.includes(shared), `prune left the shared dataset ${shared}`);
        }
        const names = pruned.map((e) => e.name).sort();
        assert.deepEqual(names, ['extra-a', 'extra-b', 'next'], 'the oldest beyond keep=2 went (the adopted root, whose snapshot the others were cloned from); the running default stays');
        assert.ok(!datasets.includes('rpool/ROOT/debian'), 'its dataset went with it');
        assert.ok(!datasets.includes('bpool/BOOT/debian'), 'and its boot dataset');
        for (const n of names) assert.ok(datasets.includes(`bpool/BOOT/${n}`), `${n} keeps its boot dataset`);
        // They ran, on OpenZFS, and none was skipped (on zfs-fuse they skip themselves).
        const tests = (await ctx.output('openzfs-tests')) ?? '';
        assert.match(tests, /^ℹ pass [1-9]\d*$/m, `the OpenZFS pool tests ran:\n${tests}`);
        assert.match(tests, /^ℹ fail 0$/m);
        assert.match(tests, /^ℹ skipped 0$/m, 'none skipped: this guest has OpenZFS');
      },
    },
  ],
};

/**
 * 9 as CI runs it: 10 (the fallback) first, in the same VM, then the broken
 * environment destroyed (destroyBroken), then 9 stages `next` with the
 * update from the adopted root the machine fell back to: one VM and one
 * boot fewer than the two apart.
 */
export const zfsFallbackThenUpdate = chain(
  { id: 9, name: 'OpenZFS: fallback after failed tries, then update, first boot, drift, prune', timeoutMinutes: 44 },
  zfsFallback,
  destroyBroken('zfs', 'debian'),
  zfsUpdate,
);
