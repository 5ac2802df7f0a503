import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createZfsBootMenu, CMDLINE_PROP, ONESHOT_RESTORE_PROP } from '../../../src/bootloaders/zfsbootmenu/index.js';
import { rootArgsFor } from '../../../src/bootloaders/bls.js';
import type { BootEnvironment } from '../../../src/bootloaders/types.js';
import { run } from '../../../src/process/run.js';
import { makeZfsPool, type ZfsPool } from '../../fixtures/zfs-pool.js';

let pool: ZfsPool;
before(async () => {
  pool = await makeZfsPool({ sizeMiB: 128 });
  await run('zfs', ['create', '-o', 'mountpoint=none', `${pool.name}/ROOT`]);
  for (const n of ['a', 'b', 'nokernel']) await run('zfs', ['create', '-o', 'mountpoint=none', `${pool.name}/ROOT/${n}`]);
});
after(async () => {
  await pool?.cleanup();
});

async function prop(dataset: string, property: string): Promise<{ value: string; source: string }> {
  const out = await run('zfs', ['get', '-H', '-o', 'value,source', property, dataset]);
  const [value = '', source = ''] = out.stdout.trim().split('\t');
  return { value, source };
}
async function bootfs(): Promise<string> {
  return (await run('zpool', ['list', '-H', '-o', 'bootfs', pool.name])).stdout.trim();
}

function env(name: string, generation: number, cmdline: string, kernel = true): BootEnvironment {
  // The trees stand in for the mounted datasets: only their /boot is read.
  const tree = join(pool.dir, 'trees', name);
  mkdirSync(join(tree, 'boot'), { recursive: true });
  if (kernel) writeFileSync(join(tree, 'boot', 'vmlinuz-6.1.0-13-amd64'), 'k');
  const root = { fs: 'zfs' as const, pool: pool.name, dataset: `${pool.name}/ROOT/${name}` };
  return { name, generation, created: new Date(Date.UTC(2026, 0, generation)), rootArgs: rootArgsFor(root), cmdline, root, tree };
}

test('sync sets the command line per environment and bootfs for the default', async () => {
  const zbm = createZfsBootMenu({ pool: pool.name });
  await zbm.probe();
  const res = await zbm.sync([env('a', 1, 'quiet'), env('b', 2, 'quiet splash'), env('nokernel', 3, 'quiet', false)], { defaultName: 'b', staged: { name: 'b', tries: 3 } });
  assert.deepEqual(res.added.sort(), ['a', 'b']);
  assert.match(res.warnings.join('\n'), /"nokernel" has no kernel/);
  assert.match(res.warnings.join('\n'), /no boot counting/);
  assert.deepEqual(await prop(`${pool.name}/ROOT/b`, CMDLINE_PROP), { value: 'quiet splash', source: 'local' });
  assert.equal((await prop(`${pool.name}/ROOT/nokernel`, CMDLINE_PROP)).source, '-');
  assert.equal(await bootfs(), `${pool.name}/ROOT/b`);

  const again = await zbm.sync([env('a', 1, ''), env('b', 2, 'quiet splash')], { defaultName: 'b' });
  assert.deepEqual(again.kept, ['b']);
  assert.deepEqual(again.updated, ['a']);
  assert.equal((await prop(`${pool.name}/ROOT/a`, CMDLINE_PROP)).source, '-', 'an empty command line removes the property');

  const state = await zbm.inspect();
  assert.deepEqual(state.entries.map((e) => e.name).sort(), ['a', 'b', 'nokernel']);
  assert.equal(state.defaultName, 'b');
  assert.equal(state.oneShotName, null);
});

test('one-shot points bootfs at the target and the next boot puts the default back', async () => {
  const zbm = createZfsBootMenu({ pool: pool.name });
  await zbm.setDefault('b');
  await zbm.setOneShot('a');
  assert.equal(await bootfs(), `${pool.name}/ROOT/a`);
  assert.equal((await prop(pool.name, ONESHOT_RESTORE_PROP)).value, `${pool.name}/ROOT/b`);
  const state = await zbm.inspect();
  assert.equal(state.oneShotName, 'a');
  assert.equal(state.defaultName, 'b');
  // A second one-shot before rebooting keeps the real default to come back to.
  await zbm.setOneShot('nokernel');
  assert.equal((await prop(pool.name, ONESHOT_RESTORE_PROP)).value, `${pool.name}/ROOT/b`);
  const notes = await zbm.bootStarted!();
  assert.match(notes[0]!, /bootfs is .*ROOT\/b again/);
  assert.equal(await bootfs(), `${pool.name}/ROOT/b`);
  assert.equal((await prop(pool.name, ONESHOT_RESTORE_PROP)).source, '-');
  assert.deepEqual(await zbm.bootStarted!(), []);
});

test('activate during a pending one-shot cancels it', async () => {
  const zbm = createZfsBootMenu({ pool: pool.name });
  await zbm.setOneShot('a');
  await zbm.setDefault('nokernel');
  assert.equal(await bootfs(), `${pool.name}/ROOT/nokernel`);
  assert.deepEqual(await zbm.bootStarted!(), []);
  await assert.rejects(zbm.setOneShot('ghost'), /no dataset/);
});
