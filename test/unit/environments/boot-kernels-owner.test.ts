/**
 * A separate /boot changing hands: the environment that held the partition
 * keeps what apt put there while it ran, and a partition the size of one
 * environment's kernels takes another's. On the directory backend.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createEnvironment } from '../../../src/environments/lifecycle.js';
import { kernelsInto, OWNER_FILE } from '../../../src/environments/boot-kernels.js';
import { setLevel } from '../../../src/log.js';
import { makeDirectoryMachine, type DirectoryMachine } from '../../fixtures/directory-machine.js';

describe('a /boot partition changing hands', () => {
  let m: DirectoryMachine;
  let partition: string;

  const treeBoot = async (name: string): Promise<string> => {
    const t = await m.ctx.backend.openEnvironment(name);
    try {
      return join(t.path, 'boot');
    } finally {
      await t.release();
    }
  };
  const orders = new Map<string, number>();
  const order = (name: string): number => orders.get(name)!;
  const kernels = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true })
      .filter((d) => d.isFile() && /^(vmlinuz|initrd\.img)-/.test(d.name))
      .map((d) => d.name)
      .sort();

  before(async () => {
    setLevel('error');
    m = await makeDirectoryMachine();
    await createEnvironment(m.ctx, 'other', 'base');
    partition = join(m.dir, 'boot-partition');
    mkdirSync(partition);
    for (const [env, v] of [['base', '1'], ['other', '3']] as const) {
      const b = await treeBoot(env);
      mkdirSync(b, { recursive: true });
      writeFileSync(join(b, `vmlinuz-${v}`), `kernel ${v} of ${env}\n`);
      writeFileSync(join(b, `initrd.img-${v}`), `initrd ${v} of ${env}\n`);
    }
    // The partition as `base` left it: its kernel 1, and kernel 2, which apt installed there since its last sync.
    for (const v of ['1', '2']) {
      writeFileSync(join(partition, `vmlinuz-${v}`), `kernel ${v} of base\n`);
      writeFileSync(join(partition, `initrd.img-${v}`), `initrd ${v} of base\n`);
    }
    // Written before the file named the creation order: read by name.
    writeFileSync(join(partition, OWNER_FILE), 'base\n');
    for (const e of await m.ctx.backend.listEnvironments()) orders.set(e.name, e.createdOrder);
  });
  after(async () => {
    await m?.cleanup();
  });

  test("the owner's kernels are saved into its own tree before another's go onto the partition", async () => {
    assert.equal(await kernelsInto(m.ctx, 'other', partition), 'onto-partition');
    assert.deepEqual(kernels(partition), ['initrd.img-3', 'vmlinuz-3'], 'the partition holds the running environment\'s kernels');
    assert.equal(readFileSync(join(partition, OWNER_FILE), 'utf8'), `other\ncreated-order ${order('other')}\n`);
    const base = await treeBoot('base');
    assert.deepEqual(kernels(base), ['initrd.img-1', 'initrd.img-2', 'vmlinuz-1', 'vmlinuz-2'], 'the kernel apt installed while "base" ran is in its tree, not lost');
    assert.equal(readFileSync(join(base, 'vmlinuz-2'), 'utf8'), 'kernel 2 of base\n');
  });

  test('and back: the partition gets them again, the other environment keeps its own', async () => {
    assert.equal(await kernelsInto(m.ctx, 'base', partition), 'onto-partition');
    assert.deepEqual(kernels(partition), ['initrd.img-1', 'initrd.img-2', 'vmlinuz-1', 'vmlinuz-2']);
    assert.deepEqual(kernels(await treeBoot('other')), ['initrd.img-3', 'vmlinuz-3']);
    assert.ok(!existsSync(join(partition, 'vmlinuz-3')));
  });

  test('a change of hands that fails halfway is copied into no tree; the next sync finishes it', async () => {
    // "base" holds the partition; putting "other"'s kernels there fails after "base"'s were removed
    // (a directory where a kernel goes stands in for a full partition or a kill).
    assert.deepEqual(kernels(partition), ['initrd.img-1', 'initrd.img-2', 'vmlinuz-1', 'vmlinuz-2']);
    mkdirSync(join(partition, 'vmlinuz-3'));
    await assert.rejects(kernelsInto(m.ctx, 'other', partition));
    assert.deepEqual(kernels(partition), ['initrd.img-3'], 'part of one set');
    assert.equal(readFileSync(join(partition, OWNER_FILE), 'utf8'), `other\nincomplete\ncreated-order ${order('other')}\n`, 'marked as nobody\'s whole set');
    rmdirSync(join(partition, 'vmlinuz-3'));
    // The next sync for "other": "base"'s tree is not replaced by the partial set on the partition.
    assert.equal(await kernelsInto(m.ctx, 'other', partition), 'onto-partition');
    assert.deepEqual(kernels(await treeBoot('base')), ['initrd.img-1', 'initrd.img-2', 'vmlinuz-1', 'vmlinuz-2'], '"base" keeps all its kernels');
    assert.deepEqual(kernels(partition), ['initrd.img-3', 'vmlinuz-3']);
    assert.equal(readFileSync(join(partition, OWNER_FILE), 'utf8'), `other\ncreated-order ${order('other')}\n`);

    // Left halfway towards "base", then a boot of "base" again (a fallback): it finishes, and nothing goes from its tree.
    mkdirSync(join(partition, 'vmlinuz-2'));
    await assert.rejects(kernelsInto(m.ctx, 'base', partition));
    rmdirSync(join(partition, 'vmlinuz-2'));
    assert.equal(await kernelsInto(m.ctx, 'base', partition), 'onto-partition');
    assert.deepEqual(kernels(partition), ['initrd.img-1', 'initrd.img-2', 'vmlinuz-1', 'vmlinuz-2']);
    assert.deepEqual(kernels(await treeBoot('base')), ['initrd.img-1', 'initrd.img-2', 'vmlinuz-1', 'vmlinuz-2']);
    assert.deepEqual(kernels(await treeBoot('other')), ['initrd.img-3', 'vmlinuz-3'], '"other" keeps its own');
    assert.equal(readFileSync(join(partition, OWNER_FILE), 'utf8'), `base\ncreated-order ${order('base')}\n`);
  });
});

describe('a copy of the running environment, with /boot a partition of its own', () => {
  let m: DirectoryMachine;
  let partition: string;
  const saved = process.env['SYSPRIME_BOOT_PARTITION'];

  before(async () => {
    setLevel('error');
    m = await makeDirectoryMachine();
    // The directory backend boots nothing: "base" is the running environment here.
    const list = m.ctx.backend.listEnvironments.bind(m.ctx.backend);
    m.ctx.backend.listEnvironments = async () => (await list()).map((e) => ({ ...e, booted: e.name === 'base' }));
    partition = join(m.dir, 'boot-partition');
    mkdirSync(partition);
    process.env['SYSPRIME_BOOT_PARTITION'] = partition;
    const t = await m.ctx.backend.openEnvironment('base');
    try {
      mkdirSync(join(t.path, 'boot'), { recursive: true });
      writeFileSync(join(t.path, 'boot/vmlinuz-1'), 'kernel 1\n');
    } finally {
      await t.release();
    }
    // The partition as "base" runs with it: kernel 1, and kernel 2 that apt installed since the last sync.
    writeFileSync(join(partition, 'vmlinuz-1'), 'kernel 1\n');
    writeFileSync(join(partition, 'vmlinuz-2'), 'kernel 2\n');
    writeFileSync(join(partition, OWNER_FILE), 'base\n');
  });
  after(async () => {
    if (saved === undefined) delete process.env['SYSPRIME_BOOT_PARTITION'];
    else process.env['SYSPRIME_BOOT_PARTITION'] = saved;
    await m?.cleanup();
  });

  test('has the kernel apt installed since the last sync, not only those of the last sync', async () => {
    await createEnvironment(m.ctx, 'copy', 'base');
    const t = await m.ctx.backend.openEnvironment('copy');
    try {
      assert.equal(readFileSync(join(t.path, 'boot/vmlinuz-2'), 'utf8'), 'kernel 2\n');
    } finally {
      await t.release();
    }
  });
});

describe('the partition\'s owner is an environment, not a name', () => {
  let m: DirectoryMachine;
  let partition: string;
  const boot = async (name: string, write?: Record<string, string>): Promise<string[]> => {
    const t = await m.ctx.backend.openEnvironment(name);
    try {
      const b = join(t.path, 'boot');
      mkdirSync(b, { recursive: true });
      for (const [f, text] of Object.entries(write ?? {})) writeFileSync(join(b, f), text);
      return readdirSync(b).filter((n) => n.startsWith('vmlinuz-')).sort().map((n) => `${n}: ${readFileSync(join(b, n), 'utf8').trim()}`);
    } finally {
      await t.release();
    }
  };

  before(async () => {
    setLevel('error');
    m = await makeDirectoryMachine();
    partition = join(m.dir, 'boot-partition');
    mkdirSync(partition);
    const base = (await m.ctx.backend.listEnvironments()).find((e) => e.name === 'base')!;
    writeFileSync(join(partition, OWNER_FILE), `base\ncreated-order ${base.createdOrder}\n`);
  });
  after(async () => {
    await m?.cleanup();
  });

  test('one destroyed and made again under its name does not take the old one\'s kernels for its own', async () => {
    await createEnvironment(m.ctx, 'gone', 'base');
    await boot('gone', { 'vmlinuz-7': 'kernel 7 of the first "gone"' });
    assert.equal(await kernelsInto(m.ctx, 'gone', partition), 'onto-partition');
    await m.ctx.backend.destroyEnvironment('gone');
    await createEnvironment(m.ctx, 'gone', 'base');
    await boot('gone', { 'vmlinuz-8': 'kernel 8 of the second "gone"' });
    assert.equal(await kernelsInto(m.ctx, 'gone', partition), 'onto-partition', 'the partition takes the new one\'s kernels');
    assert.deepEqual(await boot('gone'), ['vmlinuz-8: kernel 8 of the second "gone"'], 'its own kernel, not the old one\'s');
    assert.deepEqual(readdirSync(partition).filter((n) => n.startsWith('vmlinuz-')), ['vmlinuz-8']);
  });

  test('a renamed owner is still the owner: what apt put on the partition goes into its tree', async () => {
    await m.ctx.backend.renameEnvironment('gone', 'kept');
    writeFileSync(join(partition, 'vmlinuz-9'), 'kernel 9, installed by apt while it ran\n');
    assert.equal(await kernelsInto(m.ctx, 'kept', partition), 'into-environment');
    assert.deepEqual(await boot('kept'), ['vmlinuz-8: kernel 8 of the second "gone"', 'vmlinuz-9: kernel 9, installed by apt while it ran']);
    assert.match(readFileSync(join(partition, OWNER_FILE), 'utf8'), /^kept\ncreated-order \d+\n$/);
  });
});
