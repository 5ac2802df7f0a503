/**
 * ZFSBootMenu through the verbs, on a zfs-fuse pool: it lists environments
 * by itself, so what sysprime keeps in step are properties: each
 * environment's org.zfsbootmenu:commandline and the pool's bootfs. Its
 * one-shot is emulated (bootfs moves, the boot-start hook puts it back) and
 * survives every other verb; doctor finds and repairs property drift.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { run } from '../../../src/process/run.js';
import { CMDLINE_PROP, ONESHOT_RESTORE_PROP, ONESHOT_TARGET_PROP } from '../../../src/bootloaders/zfsbootmenu/index.js';
import { KERNEL, makeBootScratch, removeKernels, replaceKernel, type BootScratch } from './boot-setup.js';

const CMDLINE = 'console=ttyS0 quiet';

describe('boot environments on zfs with ZFSBootMenu', () => {
  let b: BootScratch;
  let pool: string;
  const ds = (name: string) => `${pool}/ROOT/${name}`;
  const ok = async (...args: string[]) => {
    const r = await b.sp(...args);
    assert.equal(r.code, 0, `sysprime ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const bootfs = async () => (await run('zpool', ['list', '-H', '-o', 'bootfs', pool])).stdout.trim();
  /** A property's value when set on the dataset itself, else null. */
  const local = async (dataset: string, prop: string): Promise<string | null> => {
    const [value = '', source = ''] = (await run('zfs', ['get', '-H', '-o', 'value,source', prop, dataset])).stdout.trim().split('\t');
    return source === 'local' ? value : null;
  };
  const problems = async () => {
    const r = await b.sp('--json', 'doctor');
    return { code: r.code, kinds: r.json<{ problems: { kind: string }[] }>().problems.map((p) => p.kind).sort() };
  };

  before(async () => {
    b = await makeBootScratch('zfs', () => `loader = "zfsbootmenu"\ncmdline = "${CMDLINE}"\n`);
    pool = b.s.where;
  });
  after(async () => {
    await b?.cleanup();
  });

  test('init sets the command line property and bootfs', async () => {
    await ok('init', '--adopt', b.s.adopt, '--name', 'base');
    assert.equal(await local(ds('base'), CMDLINE_PROP), CMDLINE);
    assert.equal(await bootfs(), ds('base'));
  });

  test('create and stage give the new environments the property; bootfs stays', async () => {
    await ok('create', 'copy');
    const staged = await ok('stage');
    assert.match(staged.stderr, /ZFSBootMenu has no boot counting/);
    for (const n of ['copy', 'gen-1']) assert.equal(await local(ds(n), CMDLINE_PROP), CMDLINE, n);
    assert.equal(await bootfs(), ds('base'));
  });

  test('activate moves bootfs', async () => {
    await ok('activate', 'gen-1');
    assert.equal(await bootfs(), ds('gen-1'));
  });

  test('activate --once points bootfs at the target until the next boot; other verbs keep it that way', async () => {
    await ok('activate', '--once', 'copy');
    assert.equal(await bootfs(), ds('copy'));
    assert.equal(await local(pool, ONESHOT_RESTORE_PROP), ds('gen-1'));
    assert.equal((await ok('--json', 'status')).json<{ nextBoot: string }>().nextBoot, 'copy');
    // A verb that rewrites the boot set must not turn the one-shot into the default.
    await ok('create', 'spare');
    assert.equal(await bootfs(), ds('copy'));
    assert.equal(await local(pool, ONESHOT_RESTORE_PROP), ds('gen-1'));
    // The environment to come back to cannot go meanwhile.
    const gone = await b.sp('destroy', 'gen-1');
    assert.equal(gone.code, 5, gone.stderr);
    assert.match(gone.stderr, /default again after the one-shot boot of "copy"/);
    // Early in the next boot, the hook puts the default back.
    const hook = await ok('boot-hook', 'start');
    assert.match(hook.stdout, /bootfs is \S+\/ROOT\/gen-1 again/);
    assert.equal(await bootfs(), ds('gen-1'));
    assert.equal(await local(pool, ONESHOT_RESTORE_PROP), null);
    assert.equal(await local(pool, ONESHOT_TARGET_PROP), null);
  });

  test('activate after activate --once replaces the one-shot: the next boot does not undo it', async () => {
    await ok('activate', '--once', 'copy');
    await ok('activate', 'base');
    assert.equal(await bootfs(), ds('base'));
    assert.equal(await local(pool, ONESHOT_RESTORE_PROP), null);
    await ok('boot-hook', 'start');
    assert.equal(await bootfs(), ds('base'));
    await ok('activate', 'gen-1');
  });

  test('activate of the one-shot target makes it the default for good: the next boot does not undo it', async () => {
    await ok('activate', '--once', 'copy');
    assert.equal(await local(pool, ONESHOT_TARGET_PROP), ds('copy'));
    await ok('activate', 'copy');
    assert.equal(await bootfs(), ds('copy'));
    assert.equal(await local(pool, ONESHOT_RESTORE_PROP), null);
    assert.equal(await local(pool, ONESHOT_TARGET_PROP), null);
    await ok('boot-hook', 'start');
    assert.equal(await bootfs(), ds('copy'), 'the boot hook leaves the chosen default alone');
    assert.deepEqual((await problems()).kinds, []);
    await ok('activate', 'gen-1');
  });

  test('rename keeps the property and bootfs on the renamed dataset; destroy takes them away', async () => {
    await ok('rename', 'copy', 'renamed');
    assert.equal(await local(ds('renamed'), CMDLINE_PROP), CMDLINE);
    await ok('rename', 'gen-1', 'current');
    assert.equal(await bootfs(), ds('current'));
    await ok('destroy', 'renamed');
    await ok('destroy', 'spare');
    const names = (await ok('--json', 'list')).json<{ name: string }[]>().map((e) => e.name).sort();
    assert.deepEqual(names, ['base', 'current']);
  });

  test('doctor finds property drift of every kind and --fix repairs it', async () => {
    await ok('create', 'bare');
    await run('zfs', ['set', `${CMDLINE_PROP}=by hand`, ds('base')]);
    await run('zfs', ['inherit', CMDLINE_PROP, ds('bare')]);
    await run('zpool', ['set', `bootfs=${ds('base')}`, pool]);
    await run('zfs', ['set', `${ONESHOT_TARGET_PROP}=${ds('gone')}`, pool]);
    await run('zfs', ['set', `${ONESHOT_RESTORE_PROP}=${ds('gone')}`, pool]);
    // bootfs (set by hand to base) is the backend's default too: that is a choice, not drift.
    const found = await problems();
    assert.equal(found.code, 1);
    assert.deepEqual(found.kinds, ['default', 'entry-missing', 'entry-stale']);
    await ok('doctor', '--fix');
    assert.equal(await local(ds('base'), CMDLINE_PROP), CMDLINE);
    assert.equal(await local(ds('bare'), CMDLINE_PROP), CMDLINE);
    assert.equal(await local(pool, ONESHOT_RESTORE_PROP), null);
    assert.deepEqual(await problems(), { code: 0, kinds: [] });
    await ok('activate', 'current');
  });

  test('doctor reports an environment without a kernel (ZFSBootMenu would not list it)', async () => {
    await b.inTree('bare', (root) => removeKernels(root));
    assert.deepEqual(await problems(), { code: 1, kinds: ['no-kernel'] });
    await b.inTree('bare', (root) => replaceKernel(root, KERNEL));
    assert.deepEqual(await problems(), { code: 0, kinds: [] });
  });

  test('list shows what prune would free; prune keeps the default and its bootfs', async () => {
    for (const n of ['old1', 'old2', 'old3']) await ok('create', n);
    assert.match((await ok('list')).stdout, /^prune would free \d+(\.\d)?[BKMG] \(destroying 1 environment: base\)$/m);
    await ok('prune', '--keep', '2');
    const names = (await ok('--json', 'list')).json<{ name: string }[]>().map((e) => e.name).sort();
    assert.deepEqual(names, ['current', 'old2', 'old3']);
    assert.equal(await bootfs(), ds('current'));
  });
});
