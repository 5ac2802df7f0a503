/**
 * A natively encrypted root on OpenZFS, laid out as ZFSBootMenu's Debian
 * guide makes it (`zroot` encrypted with a passphrase in a key file, every
 * dataset below it sharing that key): with the key loaded sysprime adopts,
 * stages, copies, exports and imports (with the pristine state too, which
 * zfs-fuse cannot) as on any root, and every clone stays
 * encrypted under the pool's key; with it unloaded (a rescue system that
 * imported the pool without it) every verb that would mount or clone is
 * refused in one line naming the key to load, before anything changes.
 *
 * OpenZFS only: zfs-fuse has no encryption, so on a host with zfs-fuse the
 * tests are skipped; the VM suite runs them inside its OpenZFS guest.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { environmentMounter, sysprime } from '../../fixtures/cli.js';
import { makeZfsLayout, poolState, type ZfsLayout } from '../../fixtures/zfs-layouts.js';

const openzfs = (await run('zfs', ['version'], { allowFailure: true }).catch(() => ({ exitCode: 1 }))).exitCode === 0;

/**
 * The pool's datasets and snapshots with every property but the space
 * accounting, which OpenZFS settles in the background for a while after a
 * destroy (the export's snapshot): what a refused verb must leave as it was.
 */
async function layoutOf(pool: string): Promise<string> {
  const space = /^(used|usedby\w+|available|referenced|logicalused|logicalreferenced|written|compressratio|refcompressratio)$/;
  const state = await poolState(pool);
  return state.split('\n').filter((l) => !space.test(l.split('\t')[1] ?? '')).join('\n');
}

async function zget(id: string, property: string): Promise<string> {
  return (await run('zfs', ['get', '-Hp', '-o', 'value', property, id])).stdout.trim();
}

/** Every dataset and snapshot of the pools other than `pool` (in the VM suite's guest: its own rpool and bpool). */
async function otherPools(pool: string): Promise<string> {
  const pools = (await run('zpool', ['list', '-H', '-o', 'name'])).stdout.split('\n').filter((p) => p !== '' && p !== pool);
  return pools.length === 0 ? '' : (await run('zfs', ['list', '-H', '-t', 'all', '-o', 'name', '-r', ...pools])).stdout;
}

describe('an encrypted root on OpenZFS (ZFSBootMenu guide)', { skip: openzfs ? false : 'needs OpenZFS (zfs-fuse has no encryption); the VM suite runs it in its OpenZFS guest' }, () => {
  let l: ZfsLayout;
  let dir: string;
  const sp = (...args: string[]) => sysprime(args, { config: l.config });
  const ok = async (...args: string[]) => {
    const r = await sp(...args);
    assert.equal(r.code, 0, `sysprime ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  // A new directory for each mount: an existing one below /dev (the VM suite runs this in /dev/shm) needs --force.
  let mounts = 0;
  const inside = environmentMounter(sp, () => join(dir, `mnt-${mounts}`));
  const version = (name: string): Promise<string> => {
    mounts++;
    return inside(name, (root) => readFileSync(join(root, 'usr/share/doc/demo/VERSION'), 'utf8'));
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-encrypted-'));
    const script = join(dir, 'update.sh');
    writeFileSync(script, '#!/bin/sh\nset -e\nv=$(cat "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION" 2>/dev/null || echo 1)\necho $((v + 1)) > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"\n');
    chmodSync(script, 0o755);
    l = await makeZfsLayout('zfsbootmenu', `[update]\nmethod = "command"\ncommand = "${script}"\nchroot = false\n`, { encrypted: true });
  });
  after(async () => {
    await l?.cleanup();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  test('with the key loaded: init, stage and copy; every clone is encrypted under the pool\'s key', async () => {
    assert.equal(await zget(l.rootDataset, 'keystatus'), 'available');
    const others = await otherPools(l.pool);
    // Named: where this runs (the VM suite's guest) `/` is a ZFS root of its own, which init would take.
    await ok('init', '--adopt', l.rootDataset);
    await ok('stage');
    await ok('create', 'copy', '--from', 'gen-1');
    for (const name of ['gen-1', 'copy']) {
      const ds = `${l.pool}/ROOT/${name}`;
      assert.equal(await zget(ds, 'encryption'), 'aes-256-gcm', `${ds} is encrypted`);
      assert.equal(await zget(ds, 'encryptionroot'), l.pool, `${ds} shares the pool's key`);
    }
    assert.equal(await version('gen-1'), '2\n', 'the update ran inside the encrypted clone');
    // The guest's own boot pool has a bpool/BOOT/debian too, at its /boot: never this pool's root's partner.
    assert.equal(await otherPools(l.pool), others, 'no dataset or snapshot of another pool was made or removed');
  });

  test('export and import: received unmounted, encrypted under the pool\'s key, its content whole', async () => {
    const file = join(dir, 'gen-1.export');
    await ok('export', 'gen-1', file);
    await ok('import', file, 'back');
    const ds = `${l.pool}/ROOT/back`;
    assert.equal(await zget(ds, 'mounted'), 'no', 'zfs receive -u: nothing mounted over the running system');
    assert.equal(await zget(ds, 'canmount'), 'noauto', 'only the booted environment is mounted at boot');
    assert.notEqual(await zget(ds, 'encryption'), 'off', 'a stream received below the encrypted pool is encrypted at rest');
    assert.equal(await zget(ds, 'encryptionroot'), l.pool);
    assert.equal(await version('back'), '2\n');
  });

  test('export --with-pristine and import --with-pristine: the pristine comes along, the environment received as a clone of it, then its holder', async () => {
    // `copy` is a clone of a snapshot of gen-1 taken after gen-1's pristine: the increment starts before its origin.
    mounts++;
    await inside('copy', (root) => writeFileSync(join(root, 'etc/marker'), 'made on the source\n'));
    const file = join(dir, 'copy-p.export');
    await ok('export', '--with-pristine', 'copy', file);
    await ok('import', '--with-pristine', file, 'copy-p');
    const ds = `${l.pool}/ROOT/copy-p`;
    assert.equal(await zget(ds, 'origin'), '-', 'it holds its pristine itself, as an environment whose pristine was taken here');
    assert.equal(await zget(ds, 'mounted'), 'no');
    assert.equal(await zget(ds, 'encryptionroot'), l.pool, 'encrypted under the pool\'s key');
    const generation = await zget(ds, 'org.sysprime:generation');
    assert.equal(await zget(`${ds}@sysprime-pristine`, 'org.sysprime:pristine-generation'), generation, 'the pristine of its own generation');
    assert.equal(await zget(`${ds}@sysprime-pristine`, 'userrefs'), '1', 'held as every pristine is');
    const drift = await sp('drift', 'copy-p', '--no-record', '--no-diff');
    assert.equal(drift.code, 1, drift.stderr);
    assert.match(drift.stdout, /\/etc\/marker/, 'what was changed on the source is a change here too');
    mounts++;
    assert.equal(await inside('copy-p', (root) => readFileSync(join(root, 'etc/marker'), 'utf8')), 'made on the source\n');
    // Without the option the pristine it carries goes once the environment is made: its state on arrival is the baseline.
    await ok('import', file, 'copy-q');
    assert.equal(await zget(`${l.pool}/ROOT/copy-q`, 'origin'), '-');
    const clean = await sp('drift', 'copy-q', '--no-record', '--no-diff');
    assert.equal(clean.code, 0, clean.stdout);
    const left = (await run('zfs', ['list', '-H', '-t', 'all', '-o', 'name', '-r', `${l.pool}/ROOT`])).stdout.split('\n').filter((n) => /sysprime-tmp|sysprime-copy-export/.test(n));
    assert.deepEqual(left, [], 'nothing received is left under a temporary name');
    for (const n of ['copy-p', 'copy-q']) await ok('destroy', n);
  });

  test('with the key unloaded: stage, create and mount are refused in one line naming the key, and the pool is as it was', async () => {
    await run('zfs', ['unload-key', '-r', l.pool]);
    assert.equal(await zget(l.rootDataset, 'keystatus'), 'unavailable');
    const state = await layoutOf(l.pool);
    for (const args of [['stage'], ['create', 'other', '--from', 'gen-1'], ['mount', 'gen-1', join(dir, 'locked')]]) {
      const r = await sp(...args);
      assert.notEqual(r.code, 0, `sysprime ${args.join(' ')} is refused`);
      const lines = r.stderr.trim().split('\n');
      assert.ok(lines.some((line) => line.includes(`the key of ${l.pool} is not loaded`)), `sysprime ${args.join(' ')} names the key:\n${r.stderr}`);
      assert.match(r.stderr, new RegExp(`zfs load-key ${l.pool}`), 'and says how to load it');
    }
    assert.equal(await layoutOf(l.pool), state, 'nothing of the pool changed');
  });

  test('with the key loaded again, the environments open again', async () => {
    await run('zfs', ['load-key', '-r', l.pool]);
    assert.equal(await version('gen-1'), '2\n');
  });
});
