/**
 * A pool that goes away or turns read-only while staging runs, on a pool the
 * test made itself:
 * - Btrfs: the top-level mount disappears under the updater (a lazy
 *   unmount, as when a disk is pulled and the admin unmounts it). Staging
 *   fails naming the missing mount and what to do; nothing is written into
 *   the directory where the mount was (on a real machine, the root
 *   filesystem); every verb says the same in one line while it is gone; the
 *   next run once it is mounted again finishes the undo and stages.
 * - ZFS: the pool turns read-only (`readonly=on` on its root dataset, which
 *   every environment inherits) under the updater. Staging fails saying so;
 *   the next run once it is writable stages cleanly. (zfs-fuse refuses to
 *   export a busy pool, and stopping its daemon would take every pool of
 *   the machine with it, so a vanishing ZFS pool is not tested here.)
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { sysprime } from '../../fixtures/cli.js';
import { slowUpdater, stageWith } from './mid-staging.js';

/** One clear line on stderr, no stack trace. */
function oneClearLine(stderr: string, what: string): void {
  assert.doesNotMatch(stderr, /^\s+at /m, `${what}: no stack trace\n${stderr}`);
  assert.ok(stderr.trim() !== '', `${what}: says something`);
}

describe('a Btrfs top-level mount that disappears mid-run', () => {
  let s: Scratch;
  let dir: string;
  let device: string;
  const sp = (...args: string[]) => sysprime(args, { config: s.config });
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-gone-'));
    s = await makeScratch('btrfs', `[update]\nmethod = "command"\ncommand = "${slowUpdater(dir)}"\nchroot = false\n`);
    assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
    device = (await run('findmnt', ['-n', '-o', 'SOURCE', '--mountpoint', s.where])).stdout.trim();
    assert.match(device, /^\/dev\/loop\d+/);
  });
  after(async () => {
    const mounted = await run('mountpoint', ['-q', s.where], { allowFailure: true });
    if (s && mounted.exitCode !== 0) await run('mount', ['-o', 'subvolid=5', device.replace(/\[.*$/, ''), s.where], { allowFailure: true });
    await s?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('staging fails naming the missing mount; nothing is written where it was; the next run once it is back recovers', { timeout: 300_000 }, async () => {
    const r = await stageWith(s.config, dir, () => run('umount', ['-l', s.where]).then(() => undefined));
    assert.notEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`${s.where.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*not a mount point`));
    assert.match(r.stderr, /mount/);
    oneClearLine(r.stderr.split('\n').filter((l) => !/^(warning|recovered|info)/.test(l)).join('\n'), 'stage');
    assert.deepEqual(readdirSync(s.where), [], 'nothing was written into the directory the mount left');

    for (const verb of [['list'], ['status'], ['doctor'], ['stage']]) {
      const v = await sp(...verb);
      assert.notEqual(v.code, 0, `${verb.join(' ')} while the pool is gone: ${v.stdout}`);
      assert.match(v.stderr, /not a mount point/, `${verb.join(' ')}: ${v.stderr}`);
      oneClearLine(v.stderr, verb.join(' '));
      assert.deepEqual(readdirSync(s.where), [], `${verb.join(' ')} wrote nothing where the mount was`);
    }

    await run('mount', ['-o', 'subvolid=5', device.replace(/\[.*$/, ''), s.where]);
    const again = await sp('--json', 'stage');
    assert.equal(again.code, 0, again.stderr);
    const out = again.json<{ kind: string; name: string }>();
    assert.equal(out.kind, 'staged');
    const envs = (await sp('--json', 'list')).json<{ name: string }[]>();
    assert.deepEqual(envs.map((e) => e.name).sort(), ['base', out.name].sort(), 'nothing of the failed staging is left');
    const doctor = await sp('doctor');
    assert.equal(doctor.code, 0, doctor.stdout);
  });
});

describe('a zfs-fuse pool that turns read-only mid-run', () => {
  let s: Scratch;
  let dir: string;
  const sp = (...args: string[]) => sysprime(args, { config: s.config });
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-zro-'));
    s = await makeScratch('zfs', `[update]\nmethod = "command"\ncommand = "${slowUpdater(dir)}"\nchroot = false\n`);
    assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
  });
  after(async () => {
    if (s) await run('zfs', ['inherit', 'readonly', s.where], { allowFailure: true });
    await s?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('staging fails saying the filesystem is read-only and leaves nothing; the next run once writable stages', { timeout: 300_000 }, async () => {
    const before = (await sp('--json', 'list')).json<{ name: string }[]>().map((e) => e.name);
    const r = await stageWith(s.config, dir, () => run('zfs', ['set', 'readonly=on', s.where]).then(() => undefined));
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /failed at step "apply the updates/);
    assert.match(r.stderr, /Read-only file system/);
    const envs = (await sp('--json', 'list')).json<{ name: string }[]>();
    assert.deepEqual(envs.map((e) => e.name), before, 'the clone is gone: destroying needs no write to the files');

    await run('zfs', ['inherit', 'readonly', s.where]);
    const again = await sp('--json', 'stage');
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.json<{ kind: string }>().kind, 'staged');
    const doctor = await sp('doctor');
    assert.equal(doctor.code, 0, doctor.stdout);
  });
});
