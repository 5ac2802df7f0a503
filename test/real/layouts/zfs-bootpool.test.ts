/**
 * The OpenZFS "Debian Bookworm Root on ZFS" layout with its boot pool, built
 * as the guide builds it (test/fixtures/zfs-layouts.ts): `rpool/ROOT/debian`
 * and `bpool/BOOT/debian` (mountpoint=/boot). Each environment's boot
 * dataset is part of it: init adopts the pair, every clone clones the boot
 * dataset from the same-named snapshot, staging's update writes its kernel
 * into the clone's own boot dataset, rename, destroy and prune keep the pair
 * in step, export and import carry it, and a kill between the two halves
 * is finished or undone by the next run.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { sysprime, type EnvJson } from '../../fixtures/cli.js';
import { makeZfsLayout, unmountPool, type ZfsLayout } from '../../fixtures/zfs-layouts.js';

async function zget(id: string, property: string): Promise<string> {
  return (await run('zfs', ['get', '-Hp', '-o', 'value', property, id])).stdout.trim();
}

async function exists(id: string): Promise<boolean> {
  return (await run('zfs', ['list', '-H', '-o', 'name', id], { allowFailure: true })).exitCode === 0;
}

/** Every dataset and snapshot of the pool, sorted. */
async function everything(pool: string): Promise<string[]> {
  const out = await run('zfs', ['list', '-H', '-t', 'all', '-o', 'name', '-r', pool]);
  return out.stdout.trim().split('\n').sort();
}

/** The update: a new kernel in the tree's /boot, as a kernel package's postinst puts it there. */
function updateScript(dir: string): string {
  const script = join(dir, 'update.sh');
  writeFileSync(
    script,
    `#!/bin/sh
set -e
v=$(cat "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION" 2>/dev/null || echo 1)
echo $((v + 1)) > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"
echo "kernel $((v + 1))" > "$SYSPRIME_ROOT/boot/vmlinuz-6.1.0-demo$((v + 1))"
`,
  );
  chmodSync(script, 0o755);
  return script;
}

describe('the OpenZFS boot pool: each environment has its own boot dataset', () => {
  let l: ZfsLayout;
  let dir: string;
  let bp: string;
  let boot: string;
  const sp = (...args: string[]) => sysprime(args, { config: l.config });
  const list = async () => (await sp('--json', 'list')).json<EnvJson[]>();
  const env = (n: string) => `${l.pool}/ROOT/${n}`;
  const bootOf = (n: string) => `${bp}/BOOT/${n}`;
  const mnt = () => join(dir, 'mnt');
  async function mounted<T>(n: string, fn: (tree: string) => T): Promise<T> {
    const m = await sp('mount', n, mnt());
    assert.equal(m.code, 0, m.stderr);
    try {
      return fn(mnt());
    } finally {
      const u = await sp('umount', n);
      assert.equal(u.code, 0, u.stderr);
    }
  }
  /** The pair is whole: a boot dataset for every environment and none besides, noauto, saying whose it is. */
  async function assertPairs(): Promise<void> {
    const names = (await list()).map((e) => e.name).sort();
    const boots = (await everything(bp)).filter((d) => d.startsWith(`${bp}/BOOT/`) && !d.includes('@')).map((d) => d.slice(`${bp}/BOOT/`.length)).sort();
    assert.deepEqual(boots, names, 'one boot dataset per environment, named as it is');
    for (const n of names) {
      assert.equal(await zget(bootOf(n), 'canmount'), 'noauto', n);
      assert.equal(await zget(bootOf(n), 'org.sysprime:boot-of'), n);
    }
    // Every pristine of the boot pool has its root half.
    const rootGens = new Set(await pristineGenerations(l.pool));
    for (const g of await pristineGenerations(bp)) assert.ok(rootGens.has(g), `the boot pristine of generation ${g} has its root pristine`);
  }
  async function pristineGenerations(pool: string): Promise<string[]> {
    // zfs-fuse's `zfs get` has no -t: snapshots are told by their name.
    const out = await run('zfs', ['get', '-rHp', '-s', 'local', '-o', 'name,value', 'org.sysprime:pristine-generation', pool]);
    return out.stdout.split('\n').map((l) => l.split('\t')).filter((f) => f[0]?.includes('@') && f[1] !== undefined).map((f) => f[1]!);
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-bootpool-'));
    l = await makeZfsLayout('debian', `[update]\nmethod = "command"\ncommand = "${updateScript(dir)}"\nchroot = false\n`);
    bp = l.bootPool!;
    boot = join(l.altroot, 'boot');
    // The fixture unmounts the root pool first, which the boot dataset mounted inside it keeps busy: the boot pool first.
    await unmountPool(bp);
    await unmountPool(l.pool);
  });
  after(async () => {
    await l?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('init, with the boot dataset mounted as the running /boot, adopts the pair: the boot pool recorded, one pristine name on both pools', async () => {
    assert.equal(await zget(env('debian'), 'mounted'), 'no');
    await run('zfs', ['mount', bootOf('debian')]);
    try {
      const r = await sysprime(['init'], { config: l.config, env: { SYSPRIME_BOOT_PARTITION: boot } });
      assert.equal(r.code, 0, r.stderr);
      const d = await sysprime(['doctor'], { config: l.config, env: { SYSPRIME_BOOT_PARTITION: boot } });
      assert.doesNotMatch(d.stdout, /zfs-boot-pool/);
      assert.ok(existsSync(join(boot, 'vmlinuz-6.1.0-demo')), 'the running /boot is left as it is');
    } finally {
      await unmountPool(bp);
    }
    assert.equal(await zget(`${l.pool}/ROOT`, 'org.sysprime:boot-pool'), bp);
    assert.equal(await zget(`${bootOf('debian')}@sysprime-pristine`, 'org.sysprime:pristine-generation'), '0');
    assert.equal(await zget(`${env('debian')}@sysprime-pristine`, 'org.sysprime:pristine-generation'), '0');
    assert.equal(await zget(bootOf('debian'), 'mountpoint'), boot, 'mountpoint=/boot (below the altroot) is kept');
    await assertPairs();
    await mounted('debian', (tree) => {
      assert.notEqual(statSync(join(tree, 'boot')).dev, statSync(tree).dev, 'its /boot is its boot dataset');
      assert.equal(readFileSync(join(tree, 'boot/vmlinuz-6.1.0-demo'), 'utf8'), 'kernel\n');
    });
  });

  test('an environment without sysprime-boot-generator is not staged from: nothing would mount its /boot beside a second boot dataset', async () => {
    const generator = 'usr/lib/systemd/system-generators/sysprime-boot-generator';
    await mounted('debian', (tree) => renameSync(join(tree, generator), join(tree, `${generator}.off`)));
    await run('zfs', ['mount', bootOf('debian')]);
    try {
      const before = await everything(l.pool);
      const r = await sysprime(['stage'], { config: l.config, env: { SYSPRIME_BOOT_PARTITION: boot } });
      assert.equal(r.code, 5, r.stderr);
      assert.match(r.stderr, /"debian" has no sysprime-boot-generator: with a second environment's boot dataset beside it, nothing would mount \/boot at boot/);
      assert.match(r.stderr, /\/lib\/systemd\/system-generators/, 'the hint says where it goes');
      assert.deepEqual(await everything(l.pool), before, 'nothing was made');
      const d = await sysprime(['doctor'], { config: l.config, env: { SYSPRIME_BOOT_PARTITION: boot } });
      assert.match(d.stdout, /zfs-boot-pool.*sysprime-boot-generator/);
    } finally {
      await unmountPool(bp);
      await mounted('debian', (tree) => renameSync(join(tree, `${generator}.off`), join(tree, generator)));
    }
  });

  test('stage clones the boot dataset from the same-named snapshot; the new kernel lands in the clone\'s, the running one is untouched', async () => {
    const r = await sp('--json', 'stage');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json<{ name: string }>().name, 'gen-1');
    assert.equal(await zget(env('gen-1'), 'origin'), `${env('debian')}@sysprime-pristine`);
    assert.equal(await zget(bootOf('gen-1'), 'origin'), `${bootOf('debian')}@sysprime-pristine`);
    assert.equal(await zget(bootOf('gen-1'), 'mountpoint'), boot);
    assert.equal(await zget(`${bootOf('gen-1')}@sysprime-pristine`, 'org.sysprime:pristine-generation'), '1');
    await mounted('gen-1', (tree) => {
      assert.equal(readFileSync(join(tree, 'boot/vmlinuz-6.1.0-demo2'), 'utf8'), 'kernel 2\n');
      assert.equal(readFileSync(join(tree, 'boot/vmlinuz-6.1.0-demo'), 'utf8'), 'kernel\n');
    });
    await mounted('debian', (tree) => {
      assert.deepEqual(readdirSync(join(tree, 'boot')).filter((f) => f.startsWith('vmlinuz')), ['vmlinuz-6.1.0-demo'], 'the adopted root\'s boot dataset has no new kernel');
    });
    await assertPairs();
  });

  test('create and rename carry the boot dataset', async () => {
    assert.equal((await sp('create', 'copy', '--from', 'gen-1')).code, 0);
    assert.match(await zget(bootOf('copy'), 'origin'), new RegExp(`^${bootOf('gen-1')}@sysprime-copy-`));
    const rn = await sp('rename', 'copy', 'spare');
    assert.equal(rn.code, 0, rn.stderr);
    assert.equal(await exists(bootOf('copy')), false);
    await mounted('spare', (tree) => assert.equal(readFileSync(join(tree, 'boot/vmlinuz-6.1.0-demo2'), 'utf8'), 'kernel 2\n'));
    await assertPairs();
  });

  test('a kill between the two clones leaves no environment, and the next run removes both halves', async () => {
    const before = { root: await everything(l.pool), boot: await everything(bp) };
    const k = await sysprime(['create', 'killed'], { config: l.config, env: { SYSPRIME_FAULT_INJECT: 'kill:backend:zfs:boot-cloned' } });
    assert.notEqual(k.code, 0);
    assert.equal(await exists(env('killed')), false);
    assert.ok((await everything(bp)).some((d) => d.includes('/BOOT/.sysprime-tmp-new-')), 'the boot half is under its temporary name');
    const fix = await sp('doctor', '--fix');
    assert.equal(fix.code, 0, fix.stdout + fix.stderr);
    assert.deepEqual({ root: await everything(l.pool), boot: await everything(bp) }, before, 'both temporary clones and both copy snapshots are gone');
  });

  test('a kill after the root is in place is finished by the next run: the boot dataset is renamed to its environment', async () => {
    const k = await sysprime(['create', 'killed'], { config: l.config, env: { SYSPRIME_FAULT_INJECT: 'kill:backend:zfs:root-in-place' } });
    assert.notEqual(k.code, 0);
    assert.equal(await exists(env('killed')), true);
    assert.equal(await exists(bootOf('killed')), false);
    const fix = await sp('doctor', '--fix');
    assert.equal(fix.code, 0, fix.stdout + fix.stderr);
    assert.match(fix.stdout + fix.stderr, new RegExp(`renamed .*BOOT/\\.sysprime-tmp-new-.* to ${bootOf('killed')}`));
    await assertPairs();
  });

  test('a kill inside a rename or a destroy is finished by the next run', async () => {
    const rn = await sysprime(['rename', 'killed', 'renamed'], { config: l.config, env: { SYSPRIME_FAULT_INJECT: 'kill:backend:zfs:rename-root-renamed' } });
    assert.notEqual(rn.code, 0);
    assert.equal(await exists(env('renamed')), true);
    assert.equal(await exists(bootOf('killed')), true);
    assert.equal((await sp('doctor', '--fix')).code, 0);
    assert.equal(await exists(bootOf('renamed')), true);
    assert.equal(await exists(bootOf('killed')), false);
    await assertPairs();
    const d = await sysprime(['destroy', 'renamed'], { config: l.config, env: { SYSPRIME_FAULT_INJECT: 'kill:backend:zfs:root-destroyed' } });
    assert.notEqual(d.code, 0);
    assert.equal(await exists(env('renamed')), false);
    assert.equal(await exists(bootOf('renamed')), true, 'the boot half is still there');
    assert.equal((await sp('doctor', '--fix')).code, 0);
    assert.equal(await exists(bootOf('renamed')), false);
    await assertPairs();
  });

  test('destroying the root the others are clones of promotes in both pools; the clones keep their kernels', async () => {
    assert.equal((await sp('activate', 'gen-1')).code, 0);
    const r = await sp('destroy', 'debian');
    assert.equal(r.code, 0, `${r.stderr}\n${readFileSync('/proc/self/mounts', 'utf8').split('\n').filter((m) => m.includes(l.pool) || m.includes(bp)).join('\n')}`);
    assert.equal(await exists(bootOf('debian')), false);
    assert.equal((await everything(bp)).some((d) => d.startsWith(`${bootOf('debian')}@`)), false);
    assert.equal(await zget(bootOf('gen-1'), 'origin'), '-', 'gen-1\'s boot dataset was promoted');
    await mounted('spare', (tree) => {
      assert.equal(readFileSync(join(tree, 'boot/vmlinuz-6.1.0-demo'), 'utf8'), 'kernel\n');
      assert.equal(readFileSync(join(tree, 'boot/vmlinuz-6.1.0-demo2'), 'utf8'), 'kernel 2\n');
    });
    await assertPairs();
  });

  test('a snapshot keeps /boot too: an environment made from it has its kernels; destroying it takes both halves', async () => {
    const taken = await sp('snapshot', 'gen-1', 'before');
    assert.equal(taken.code, 0, taken.stderr);
    assert.equal(await exists(`${bootOf('gen-1')}@before`), true, 'the boot half is taken with the root');
    const made = await sp('create', 'back', '--from', 'gen-1@before');
    assert.equal(made.code, 0, made.stderr);
    assert.equal(await zget(bootOf('back'), 'origin'), `${bootOf('gen-1')}@before`);
    await mounted('back', (tree) => assert.equal(readFileSync(join(tree, 'boot/vmlinuz-6.1.0-demo2'), 'utf8'), 'kernel 2\n'));
    await assertPairs();
    const refused = await sp('destroy', 'gen-1@before');
    assert.notEqual(refused.code, 0, 'an environment is made from it');
    assert.equal((await sp('destroy', 'back')).code, 0);
    const gone = await sp('destroy', 'gen-1@before');
    assert.equal(gone.code, 0, gone.stderr);
    assert.equal(await exists(`${env('gen-1')}@before`), false);
    assert.equal(await exists(`${bootOf('gen-1')}@before`), false, 'the boot half goes with it');

    // A kill between the halves leaves a boot snapshot alone: the next run removes it.
    const killed = await sysprime(['snapshot', 'gen-1', 'halfway'], { config: l.config, env: { SYSPRIME_FAULT_INJECT: 'kill:backend:zfs:boot-snapshot-taken' } });
    assert.equal(killed.code, -1, killed.stderr);
    assert.equal(await exists(`${bootOf('gen-1')}@halfway`), true);
    assert.equal((await sp('doctor', '--fix')).code, 0);
    assert.equal(await exists(`${bootOf('gen-1')}@halfway`), false, 'the lone boot half was swept');

    // A snapshot from before sysprime kept /boot in snapshots: said, and nothing made.
    await run('zfs', ['snapshot', '-o', 'org.sysprime:snapshot-generation=1', `${env('gen-1')}@old`]);
    const lone = await sp('create', 'old', '--from', 'gen-1@old');
    assert.notEqual(lone.code, 0);
    assert.match(lone.stderr, /has no partner .*BOOT\/gen-1@old.* would have no \/boot/);
    assert.equal(await exists(env('old')), false);
    await run('zfs', ['destroy', `${env('gen-1')}@old`]);

    await assertPairs();
  });

  test('export and import carry the boot dataset: the imported environment has its kernels; a kill between the halves is finished by the next run', async () => {
    const file = join(dir, 'gen-1.sysprime');
    const exported = await sp('export', 'gen-1', file);
    assert.equal(exported.code, 0, exported.stderr);
    assert.equal(readFileSync(file).subarray(0, 18).toString(), 'SYSPRIME-EXPORT 2\n', 'two send streams: the root, then its boot dataset');
    assert.deepEqual((await everything(bp)).filter((d) => d.includes('copy-export')), [], 'its copy snapshots are gone');
    const imported = await sp('import', file, 'moved');
    assert.equal(imported.code, 0, imported.stderr);
    assert.equal(await zget(bootOf('moved'), 'origin'), '-', 'received, not cloned');
    assert.equal(await zget(bootOf('moved'), 'mountpoint'), await zget(bootOf('gen-1'), 'mountpoint'), 'at /boot, below the pool\'s altroot as every boot dataset');
    await mounted('moved', (tree) => assert.equal(readFileSync(join(tree, 'boot/vmlinuz-6.1.0-demo2'), 'utf8'), 'kernel 2\n'));
    await assertPairs();

    // Killed once the root has its name: the next run gives the boot dataset its name too.
    const killed = await sysprime(['import', file, 'halfway'], { config: l.config, env: { SYSPRIME_FAULT_INJECT: 'kill:backend:zfs:received-root-in-place' } });
    assert.equal(killed.code, -1, killed.stderr);
    assert.equal(await exists(bootOf('halfway')), false);
    const fixed = await sp('doctor', '--fix');
    assert.equal(fixed.code, 0, fixed.stderr);
    assert.equal(await exists(bootOf('halfway')), true, 'renamed into place by the recovery');
    assert.equal(await exists(`${bootOf('halfway')}@sysprime-pristine`), true, 'before its pristine was taken: with its boot half');
    await mounted('halfway', (tree) => assert.equal(readFileSync(join(tree, 'boot/vmlinuz-6.1.0-demo2'), 'utf8'), 'kernel 2\n'));
    await assertPairs();
    // Killed before: nothing of it is left, in either pool.
    const early = await sysprime(['import', file, 'early'], { config: l.config, env: { SYSPRIME_FAULT_INJECT: 'kill:backend:zfs:received' } });
    assert.equal(early.code, -1, early.stderr);
    assert.equal((await sp('doctor', '--fix')).code, 0);
    assert.deepEqual([...(await everything(l.pool)), ...(await everything(bp))].filter((d) => d.includes('sysprime-tmp') || d.includes('early')), [], 'nothing of the killed import is left');
    for (const n of ['moved', 'halfway']) assert.equal((await sp('destroy', n)).code, 0);
    await assertPairs();

    // What this pool cannot take whole is refused before anything is received: a stream without /boot, the pristine with it.
    const header = { backend: 'zfs', environment: 'gen-1', generation: 1, description: null, exported: new Date().toISOString() };
    writeFileSync(join(dir, 'bare.sysprime'), `SYSPRIME-EXPORT 1\n${JSON.stringify(header)}\n`);
    const bare = await sp('import', join(dir, 'bare.sysprime'), 'bare');
    assert.equal(bare.code, 5, bare.stderr);
    assert.match(bare.stderr, /holds no boot dataset, and this pool's environments have their \/boot in boot pool/);
    const withPristine = await sp('export', '--with-pristine', 'gen-1', join(dir, 'p.sysprime'));
    assert.equal(withPristine.code, 5, withPristine.stderr);
    assert.equal(existsSync(join(dir, 'p.sysprime')), false, 'no partial file is left');
    await assertPairs();
  });

  test('a boot dataset of the name without its root is not taken for a new environment\'s /boot', async () => {
    await run('zfs', ['create', '-o', 'canmount=noauto', '-o', 'mountpoint=/boot', bootOf('stale')]);
    try {
      const r = await sp('create', 'stale', '--from', 'gen-1');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /already has .*BOOT\/stale, which no environment owns/);
      assert.equal(await exists(env('stale')), false);
    } finally {
      await run('zfs', ['destroy', bootOf('stale')]);
    }
    await assertPairs();
  });

  test('prune destroys environments with their boot datasets and leaves no boot snapshot without its root half', async () => {
    assert.equal((await sp('stage')).code, 0);
    const r = await sp('prune', '--keep', '1');
    assert.equal(r.code, 0, r.stderr);
    await assertPairs();
    assert.ok((await list()).length < 3, JSON.stringify(await list()));
  });
});
