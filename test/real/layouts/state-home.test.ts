/**
 * The state database at adoption. On a machine as its installer made it,
 * `[state] dir` (/var/lib/sysprime/state) is inside the installer's root:
 * each environment would have its own copy, and a staged environment's first
 * boot would not find the manifests staging kept. `init` gives it a
 * subvolume of its own (ROOT/.sysprime/state), mounts it there at once and
 * in every environment through fstab. Here the "running root" is the
 * Debian layout's @rootfs mounted at a scratch path, its state directory
 * inside it.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sysprime } from '../../fixtures/cli.js';
import { makeBtrfsLayout, readText, type BtrfsLayout } from '../../fixtures/btrfs-layouts.js';
import { run } from '../../../src/process/run.js';

describe('the state database of an adopted machine', () => {
  let l: BtrfsLayout;
  let stateDir: string;
  const sp = (...args: string[]) => sysprime(args, { config: l.config });
  const ok = async (...args: string[]) => {
    const r = await sp(...args);
    assert.equal(r.code, 0, `sysprime ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const mountedThere = async () => (await run('findmnt', ['-n', '-o', 'FSROOT', '--mountpoint', stateDir], { allowFailure: true })).stdout.trim();

  before(async () => {
    l = await makeBtrfsLayout('debian');
    stateDir = join(l.sysroot, 'var/lib/sysprime/state');
    const update = join(l.pool.dir, 'update.sh');
    writeFileSync(update, '#!/bin/sh\nset -e\necho 2 > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"\n');
    chmodSync(update, 0o755);
    const config = readText(l.config).replace(/^dir = .*$/m, `dir = "${stateDir}"`);
    writeFileSync(l.config, `${config}[update]\nmethod = "command"\ncommand = "${update}"\nchroot = false\n`);
  });
  after(async () => {
    await l?.cleanup();
  });

  test('init moves it out of the root it adopts, into a subvolume every environment mounts', async () => {
    await ok('list');
    assert.ok(existsSync(join(stateDir, 'sysprime.db')), 'the database starts inside the installer\'s root');
    assert.equal(await mountedThere(), '', 'nothing is mounted there yet');
    const r = await ok('init', '--adopt', '@rootfs', '--name', 'debian');
    assert.match(r.stderr, /the state database is in ROOT\/\.sysprime\/state/);
    assert.equal(await mountedThere(), '/ROOT/.sysprime/state', 'mounted there at once, for every command until the reboot');
    const line = `UUID=${l.uuid} ${stateDir} btrfs subvol=/ROOT/.sysprime/state 0 0`;
    for (const tree of ['ROOT/debian', 'ROOT/.pristine/debian']) assert.ok(readText(join(l.pool.top, tree, 'etc/fstab')).includes(`\n${line}\n`), `${tree}/etc/fstab mounts it`);
    assert.ok(existsSync(join(l.pool.top, 'ROOT/.sysprime/state/sysprime.db')));
    const list = await ok('--json', 'list');
    assert.match(list.stdout, /"debian"/);
    assert.doesNotMatch(r.stderr, /not sysprime's.*ROOT\/\.sysprime\/state/, 'the home is not taken for another tool\'s subvolume');
  });

  test('what staging records lands in the shared database, and a second init finds it home', async () => {
    await ok('stage', '--name', 'next');
    // The database of the installer's root, hidden under the mount, never saw the staging.
    await run('umount', [stateDir]);
    try {
      const hidden = await ok('status');
      assert.doesNotMatch(hidden.stdout, /last stage:\s+done "next"/);
    } finally {
      await run('mount', ['-t', 'btrfs', '-o', 'subvol=/ROOT/.sysprime/state', l.pool.device, stateDir]);
    }
    const status = await ok('status');
    assert.match(status.stdout, /last stage:\s+done "next"/);
    assert.ok(readText(join(l.pool.top, 'ROOT/next/etc/fstab')).includes('subvol=/ROOT/.sysprime/state'), 'the staged environment mounts it too');
    const again = await sp('init', '--adopt', '@rootfs', '--name', 'other');
    assert.notEqual(again.code, 0, 'already initialised');
  });
});

describe('the state database on a subvolume the admin already mounts there', () => {
  let l: BtrfsLayout;
  let stateDir: string;
  before(async () => {
    l = await makeBtrfsLayout('debian');
    stateDir = join(l.sysroot, 'var/lib/sysprime/state');
    await run('btrfs', ['-q', 'subvolume', 'create', join(l.pool.top, '@sysprime')]);
    await run('mkdir', ['-p', stateDir]);
    await run('mount', ['-t', 'btrfs', '-o', 'subvol=/@sysprime', l.pool.device, stateDir]);
    writeFileSync(l.config, readText(l.config).replace(/^dir = .*$/m, `dir = "${stateDir}"`));
  });
  after(async () => {
    await l?.cleanup();
  });

  test('is left where it is: init neither mounts over it nor makes another home', async () => {
    const r = await sysprime(['init', '--adopt', '@rootfs', '--name', 'debian'], { config: l.config });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await run('findmnt', ['-n', '-o', 'FSROOT', '--mountpoint', stateDir])).stdout.trim(), '/@sysprime');
    assert.ok(!existsSync(join(l.pool.top, 'ROOT/.sysprime/state')));
    assert.ok(existsSync(join(l.pool.top, '@sysprime/sysprime.db')));
  });
});
