/**
 * `export --with-pristine` and `import --with-pristine` on the OpenZFS
 * Debian guide's layout, where /boot is a dataset of a boot pool
 * (`bpool/BOOT/<env>`): the pristine state goes with its boot half, both
 * datasets are received as clones of their received pristine halves and
 * promoted, and the imported pair holds both halves of its generation's
 * pristine as a pair whose pristine was taken here does; kills between the
 * halves leave what the next run finishes or removes.
 *
 * OpenZFS only (zfs-fuse cannot send an increment from before a clone's
 * origin, nor receive one as a clone): skipped on a host with zfs-fuse,
 * run by the VM suite inside its OpenZFS guest.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { environmentMounter, sysprime, type EnvJson } from '../../fixtures/cli.js';
import { makeZfsLayout, unmountPool, type ZfsLayout } from '../../fixtures/zfs-layouts.js';

const openzfs = (await run('zfs', ['version'], { allowFailure: true }).catch(() => ({ exitCode: 1 }))).exitCode === 0;

async function zget(id: string, property: string): Promise<string> {
  return (await run('zfs', ['get', '-Hp', '-o', 'value', property, id])).stdout.trim();
}

async function everything(pool: string): Promise<string[]> {
  return (await run('zfs', ['list', '-H', '-t', 'all', '-o', 'name', '-r', pool])).stdout.trim().split('\n').sort();
}

/** The generations the marked pristine snapshots of `pool` belong to. */
async function pristineGenerations(pool: string): Promise<string[]> {
  const out = await run('zfs', ['get', '-rHp', '-t', 'snapshot', '-s', 'local', '-o', 'value', 'org.sysprime:pristine-generation', pool]);
  return out.stdout.split('\n').filter((l) => l !== '').sort();
}

describe('the pristine state with its boot half through export and import (OpenZFS Debian guide, boot pool)', { skip: openzfs ? false : 'needs OpenZFS (zfs-fuse cannot receive an increment as a clone); the VM suite runs it in its OpenZFS guest' }, () => {
  let l: ZfsLayout;
  let dir: string;
  let bp: string;
  const sp = (...args: string[]) => sysprime(args, { config: l.config });
  const ok = async (...args: string[]) => {
    const r = await sp(...args);
    assert.equal(r.code, 0, `sysprime ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const env = (n: string) => `${l.pool}/ROOT/${n}`;
  const bootOf = (n: string) => `${bp}/BOOT/${n}`;
  // A new directory for each mount: an existing one below /dev (the VM suite runs this in /dev/shm) needs --force.
  let mounts = 0;
  const inside = environmentMounter(sp, () => join(dir, `mnt-${mounts}`));
  const within = <T>(n: string, fn: (root: string) => T): Promise<T> => {
    mounts++;
    return inside(n, fn);
  };
  /** Every boot pristine has its root half, and the reverse; nothing is left under a temporary name. */
  async function assertWhole(): Promise<void> {
    assert.deepEqual(await pristineGenerations(bp), await pristineGenerations(l.pool), 'the pristine halves pair up');
    const left = [...(await everything(l.pool)), ...(await everything(bp))].filter((d) => /sysprime-tmp|sysprime-copy-export/.test(d));
    assert.deepEqual(left, [], 'nothing is left under a temporary name');
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-bootpool-pristine-'));
    const script = join(dir, 'update.sh');
    // A kernel package's update: a new kernel in the tree's /boot, which is the boot dataset.
    writeFileSync(
      script,
      '#!/bin/sh\nset -e\nv=$(cat "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION" 2>/dev/null || echo 1)\necho $((v + 1)) > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"\necho "kernel $((v + 1))" > "$SYSPRIME_ROOT/boot/vmlinuz-6.1.0-demo$((v + 1))"\n',
    );
    chmodSync(script, 0o755);
    l = await makeZfsLayout('debian', `[update]\nmethod = "command"\ncommand = "${script}"\nchroot = false\n`);
    bp = l.bootPool!;
    await unmountPool(bp);
    await unmountPool(l.pool);
  });
  after(async () => {
    await l?.cleanup();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  test('both halves of the pristine go and come back: each dataset a clone of its received half, promoted, held', async () => {
    const boot = join(l.altroot, 'boot');
    await run('zfs', ['mount', bootOf('debian')]);
    try {
      // Named: `/` of the guest is a ZFS root of its own, which init would take.
      const r = await sysprime(['init', '--adopt', l.rootDataset], { config: l.config, env: { SYSPRIME_BOOT_PARTITION: boot } });
      assert.equal(r.code, 0, r.stderr);
    } finally {
      await unmountPool(bp);
    }
    // A copy of the adopted environment: a clone of a snapshot taken after its pristine, so the increment starts
    // before its origin (what OpenZFS can send and zfs-fuse cannot).
    await ok('create', 'copy', '--from', 'debian');
    // Changed since the pristine, in both halves: these must stay changes where it is imported.
    await within('copy', (root) => {
      writeFileSync(join(root, 'etc/marker'), 'made on the source\n');
      writeFileSync(join(root, 'boot/marker'), 'in the boot half\n');
    });
    const file = join(dir, 'copy.sysprime');
    await ok('export', '--with-pristine', 'copy', file);
    const text = readFileSync(file);
    const header = JSON.parse(text.subarray(text.indexOf(10) + 1, text.indexOf(10, text.indexOf(10) + 1)).toString()) as { parts: string[] };
    assert.deepEqual(header.parts, ['pristine', 'environment', 'boot-pristine', 'boot']);

    const imported = (await ok('--json', 'import', '--with-pristine', file, 'copy-p')).json<EnvJson>();
    const generation = String(imported.generation);
    for (const ds of [env('copy-p'), bootOf('copy-p')]) {
      assert.equal(await zget(ds, 'origin'), '-', `${ds} holds its pristine half itself`);
      assert.equal(await zget(`${ds}@sysprime-pristine`, 'org.sysprime:pristine-generation'), generation, `${ds}: the pristine of its own generation`);
      assert.equal(await zget(`${ds}@sysprime-pristine`, 'userrefs'), '1', `${ds}: held as every pristine is`);
    }
    assert.equal(await zget(bootOf('copy-p'), 'org.sysprime:boot-of'), 'copy-p');
    assert.equal(await zget(bootOf('copy-p'), 'canmount'), 'noauto');
    assert.equal(
      await within('copy-p', (root) => readFileSync(join(root, 'boot/marker'), 'utf8') + readFileSync(join(root, 'boot/vmlinuz-6.1.0-demo'), 'utf8')),
      'in the boot half\nkernel\n',
    );
    const drift = await sp('drift', 'copy-p', '--no-record', '--no-diff');
    assert.equal(drift.code, 1, drift.stderr);
    assert.match(drift.stdout, /\/etc\/marker/, 'what was changed on the source is a change here too');
    await assertWhole();

    // Without the option (both halves discarded) the boot pool's import is the plain one zfs-bootpool.test.ts covers.

    // Killed once the root has its name, its boot dataset not yet: the next run renames it and holds its half.
    const halfway = await sysprime(['import', '--with-pristine', file, 'halfway'], { config: l.config, env: { SYSPRIME_FAULT_INJECT: 'kill:backend:zfs:received-root-in-place' } });
    assert.notEqual(halfway.code, 0);
    await ok('doctor', '--fix');
    assert.equal(await zget(`${bootOf('halfway')}@sysprime-pristine`, 'userrefs'), '1', 'renamed into place and held by the recovery');
    assert.equal(await zget(`${env('halfway')}@sysprime-pristine`, 'userrefs'), '1');
    await assertWhole();
    // Killed before the check: nothing of it is left in either pool.
    const early = await sysprime(['import', '--with-pristine', file, 'early'], { config: l.config, env: { SYSPRIME_FAULT_INJECT: 'kill:backend:zfs:received' } });
    assert.notEqual(early.code, 0);
    await ok('doctor', '--fix');
    assert.deepEqual([...(await everything(l.pool)), ...(await everything(bp))].filter((d) => d.includes('early')), []);
    await assertWhole();
  });
});
