// The Btrfs backend against a real loop-file filesystem; each test makes its own and removes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { makeBtrfsPool, mountsBelow, type BtrfsPool } from '../../fixtures/btrfs-pool.js';
import { createBtrfsBackend, type BtrfsBackend } from '../../../src/backends/btrfs/index.js';
import { listSubvolumes, showSubvolume } from '../../../src/backends/btrfs/progs.js';
import { run } from '../../../src/process/run.js';
import { isSysprimeError } from '../../../src/errors.js';

interface Setup {
  pool: BtrfsPool;
  backend: BtrfsBackend;
  privateDir: string;
}

async function withPool(fn: (s: Setup) => Promise<void>): Promise<void> {
  const pool = await makeBtrfsPool();
  const privateDir = join(pool.dir, 'private');
  const backend = createBtrfsBackend({ top: pool.top, privateDir });
  try {
    await fn({ pool, backend, privateDir });
  } finally {
    await backend.close().catch(() => undefined);
    await pool.cleanup();
  }
}

/** Every file below a directory with its content (symlink targets, directory markers), for equality checks. */
async function treeOf(dir: string, prefix = ''): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of (await readdir(join(dir, prefix), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = join(prefix, e.name);
    if (e.isDirectory()) {
      out[`${rel}/`] = 'dir';
      Object.assign(out, await treeOf(dir, rel));
    } else {
      out[rel] = await readFile(join(dir, rel), 'utf8');
    }
  }
  return out;
}

async function fillOsTree(root: string, motd = 'welcome\n'): Promise<void> {
  await mkdir(join(root, 'etc'), { recursive: true });
  await mkdir(join(root, 'usr/bin'), { recursive: true });
  await writeFile(join(root, 'etc/hostname'), 'box\n');
  await writeFile(join(root, 'etc/motd'), motd);
  await writeFile(join(root, 'usr/bin/tool'), '#!/bin/sh\necho tool\n');
}

const codeIs = (code: Parameters<typeof isSysprimeError>[1]) => (e: unknown) => isSysprimeError(e, code);

async function envNamed(backend: BtrfsBackend, name: string) {
  const env = (await backend.listEnvironments()).find((e) => e.name === name);
  assert.ok(env, `environment ${name} is listed`);
  return env;
}

test('probe: accepts the top level, refuses a plain directory and a subvolume mount, names btrfs-progs when missing', async () => {
  await withPool(async ({ pool, backend }) => {
    await backend.probe();

    const plain = join(pool.dir, 'plain');
    await mkdir(plain);
    await assert.rejects(createBtrfsBackend({ top: plain }).probe(), (e) => isSysprimeError(e, 'BACKEND') && /\[btrfs\] top/.test(e.hint ?? ''));
    await assert.rejects(createBtrfsBackend({ top: join(pool.dir, 'missing') }).probe(), codeIs('BACKEND'));

    await run('btrfs', ['subvolume', 'create', join(pool.top, '@')]);
    const sub = join(pool.dir, 'sub');
    await mkdir(sub);
    await run('mount', ['-o', 'subvol=@', pool.device, sub]);
    await assert.rejects(createBtrfsBackend({ top: sub }).probe(), (e) => isSysprimeError(e, 'BACKEND') && /not of the top-level subvolume/.test(e.message));
    await assert.rejects(createBtrfsBackend({ top: sub }).listEnvironments(), codeIs('BACKEND'));

    const savedPath = process.env['PATH'];
    const empty = join(pool.dir, 'empty-bin');
    await mkdir(empty);
    process.env['PATH'] = empty;
    try {
      await assert.rejects(backend.probe(), (e) => isSysprimeError(e, 'COMMAND_MISSING') && /btrfs-progs/.test(e.hint ?? ''));
    } finally {
      process.env['PATH'] = savedPath;
    }
  });
});

test('a configured device: the backend mounts the top level itself and leaves it mounted for the others', async () => {
  await withPool(async ({ pool }) => {
    const top2 = join(pool.dir, 'top2');
    try {
      const own = createBtrfsBackend({ top: top2, device: pool.device });
      await own.probe();
      await own.ensureLayout();
      await own.createEmpty('one', 1);
      assert.deepEqual((await own.listEnvironments()).map((e) => e.name), ['one']);
      assert.ok((await mountsBelow(top2)).includes(top2));
      // Another sysprime found it mounted and works in it: this one's end must not pull it from under that one.
      const other = createBtrfsBackend({ top: top2, device: pool.device });
      await own.close();
      assert.ok((await mountsBelow(top2)).includes(top2), 'still mounted');
      assert.deepEqual((await other.listEnvironments()).map((e) => e.name), ['one']);
      await other.close();
      assert.deepEqual((await mountsBelow(top2)).filter((m) => m === top2).length, 1, 'mounted once, not once per process');
      // It was the same filesystem all along.
      assert.ok((await stat(join(pool.top, 'ROOT/one'))).isDirectory());
    } finally {
      for (const m of (await mountsBelow(top2)).reverse()) await run('umount', [m], { allowFailure: true });
    }
  });
});

test('adopt: an unmounted @ is moved with its files and nested subvolumes; a mounted one is snapshotted', async () => {
  await withPool(async ({ pool, backend }) => {
    await run('btrfs', ['subvolume', 'create', join(pool.top, '@')]);
    await fillOsTree(join(pool.top, '@'));
    await mkdir(join(pool.top, '@/var/lib'), { recursive: true });
    await run('btrfs', ['subvolume', 'create', join(pool.top, '@/var/lib/machines')]);
    await writeFile(join(pool.top, '@/var/lib/machines/m'), 'machine\n');
    const before = (await listSubvolumes(pool.top)).find((s) => s.path === '@')!;

    await backend.ensureLayout();
    await backend.adopt('@', 'debian', 0);
    const after = (await listSubvolumes(pool.top)).find((s) => s.path === 'ROOT/debian')!;
    assert.equal(after.id, before.id, 'moved, not copied');
    assert.equal((await listSubvolumes(pool.top)).some((s) => s.path === '@'), false);
    assert.equal(await readFile(join(pool.top, 'ROOT/debian/etc/motd'), 'utf8'), 'welcome\n');
    assert.equal(await readFile(join(pool.top, 'ROOT/debian/var/lib/machines/m'), 'utf8'), 'machine\n');
    const env = await envNamed(backend, 'debian');
    assert.equal(env.generation, 0);
    assert.equal(env.id, 'ROOT/debian');
    assert.equal(env.booted, false);
    assert.ok(env.created.getTime() > 0);
    assert.equal(env.spaceUnique, null, 'quotas are off');

    // A mounted subvolume stays where it is; the environment is a writable snapshot of it.
    await run('btrfs', ['subvolume', 'create', join(pool.top, '@live')]);
    await fillOsTree(join(pool.top, '@live'), 'live\n');
    const live = join(pool.dir, 'live');
    await mkdir(live);
    await run('mount', ['-o', 'subvol=@live', pool.device, live]);
    await backend.adopt('/@live/', 'live', 3);
    assert.ok((await listSubvolumes(pool.top)).some((s) => s.path === '@live'));
    assert.deepEqual(await treeOf(join(pool.top, 'ROOT/live')), await treeOf(live));
    assert.equal((await showSubvolume(join(pool.top, 'ROOT/live'))).readonly, false);
    assert.equal((await envNamed(backend, 'live')).generation, 3);

    await assert.rejects(backend.adopt('@', 'again', 0), codeIs('NOT_FOUND'));
    await assert.rejects(backend.adopt('@live', 'debian', 0), codeIs('EXISTS'));
    await assert.rejects(backend.adopt('ROOT/debian', 'x', 0), codeIs('REFUSED'));
    await assert.rejects(backend.adopt('../etc', 'x', 0), codeIs('USAGE'));
    // This machine's root is not on the scratch filesystem.
    await assert.rejects(backend.adopt('/', 'x', 0), codeIs('BACKEND'));
  });
});

/**
 * The mount table of this machine plus one line saying `/` is ROOT of the
 * scratch filesystem: the only way to show the backend a running root on it
 * without touching this machine's own root.
 */
function tableWithRootAt(pool: BtrfsPool, root: string, subvolid: number): () => Promise<string> {
  return async () => {
    const real = await readFile('/proc/self/mountinfo', 'utf8');
    const topLine = real.split('\n').find((l) => l.split(' ')[4] === pool.top);
    assert.ok(topLine, 'the scratch top level is mounted');
    const dev = topLine.split(' ')[2];
    return `${real}99999 1 ${dev} ${root} / rw,relatime - btrfs ${pool.device} rw,space_cache=v2,subvolid=${subvolid},subvol=${root}\n`;
  };
}

test('adopt "/": the running root is snapshotted, from a subvolume or from the top level itself', async () => {
  await withPool(async ({ pool }) => {
    await run('btrfs', ['subvolume', 'create', join(pool.top, '@')]);
    await fillOsTree(join(pool.top, '@'));
    const id = (await listSubvolumes(pool.top)).find((s) => s.path === '@')!.id;
    const running = createBtrfsBackend({ top: pool.top, mountTable: tableWithRootAt(pool, '/@', id) });
    await running.ensureLayout();
    await running.adopt('/', 'debian', 0);
    assert.ok((await listSubvolumes(pool.top)).some((s) => s.path === '@'), 'the running root stays');
    assert.deepEqual(await treeOf(join(pool.top, 'ROOT/debian')), await treeOf(join(pool.top, '@')));
    const env = (await running.listEnvironments()).find((e) => e.name === 'debian');
    assert.equal(env?.booted, false, 'the machine boots the new one only after activate and a reboot');

    // A system installed straight into the top-level subvolume: the snapshot must not carry ROOT/ along.
    await fillOsTree(pool.top, 'top level\n');
    const flat = createBtrfsBackend({ top: pool.top, mountTable: tableWithRootAt(pool, '/', 5) });
    const said: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => said.push(String(chunk)) > 0) as typeof process.stderr.write;
    try {
      await flat.adopt('/', 'flat', 0);
    } finally {
      process.stderr.write = write;
    }
    assert.match(said.join(''), /warning: ROOT\/flat: the subvolumes \/@ of the top level are not copied/, 'the admin is told what is left out');
    const tree = await treeOf(join(pool.top, 'ROOT/flat'));
    assert.equal(tree['etc/motd'], 'top level\n');
    assert.equal(tree['ROOT/'], undefined);
    assert.equal(tree['@/'], 'dir', 'nested subvolumes are empty directories in a snapshot');
    assert.equal(Object.keys(tree).filter((k) => k.startsWith('@/')).length, 1);
  });
});

test('the booted environment: reported as mounted at /, never destroyed, renamed or unmounted', async () => {
  await withPool(async ({ pool }) => {
    const plain = createBtrfsBackend({ top: pool.top });
    await plain.ensureLayout();
    await plain.createEmpty('live', 0);
    await plain.createEmpty('other', 0);
    const id = (await listSubvolumes(pool.top)).find((s) => s.path === 'ROOT/live')!.id;
    const backend = createBtrfsBackend({ top: pool.top, mountTable: tableWithRootAt(pool, '/ROOT/live', id) });
    const envs = await backend.listEnvironments();
    assert.deepEqual(envs.map((e) => [e.name, e.booted, e.mounted]), [['live', true, '/'], ['other', false, null]]);
    await assert.rejects(backend.destroyEnvironment('live'), (e) => isSysprimeError(e, 'REFUSED') && /running system/.test(e.hint ?? ''));
    await assert.rejects(backend.renameEnvironment('live', 'x'), codeIs('REFUSED'));
    await assert.rejects(backend.unmount('live'), codeIs('REFUSED')); // / is left alone
    assert.deepEqual((await listSubvolumes(pool.top)).map((s) => s.path).sort(), ['ROOT/live', 'ROOT/other']);
  });
});

test('pristine: read-only, clones equal it, clone from environment carries the generation', async () => {
  await withPool(async ({ pool, backend }) => {
    await backend.ensureLayout();
    await backend.createEmpty('base', 0);
    const base = join(pool.top, 'ROOT/base');
    await fillOsTree(base);
    assert.equal((await envNamed(backend, 'base')).pristine, null);

    const p = await backend.takePristine('base', 1);
    assert.equal(p.id, 'ROOT/.pristine/base');
    assert.equal(p.generation, 1);
    assert.equal(p.holder, 'base');
    assert.equal((await showSubvolume(join(pool.top, p.id))).readonly, true);
    await assert.rejects(writeFile(join(pool.top, p.id, 'etc/motd'), 'changed\n'), (e: NodeJS.ErrnoException) => e.code === 'EROFS');
    assert.deepEqual(await backend.listPristines(), [{ id: p.id, generation: 1, created: p.created, holder: 'base' }]);
    const baseEnv = await envNamed(backend, 'base');
    assert.equal(baseEnv.generation, 1, 'the environment is now exactly generation 1');
    assert.equal(baseEnv.pristine, p.id);

    // The admin edits after the pristine was taken.
    await writeFile(join(base, 'etc/motd'), 'edited by hand\n');

    await backend.cloneFromPristine(1, 'next');
    const next = await backend.openEnvironment('next');
    const pristine = await backend.openPristine(1);
    assert.equal(pristine.path, join(pool.top, 'ROOT/.pristine/base'));
    assert.deepEqual(await treeOf(next.path), await treeOf(pristine.path));
    assert.equal(await readFile(join(next.path, 'etc/motd'), 'utf8'), 'welcome\n');
    await writeFile(join(next.path, 'etc/new'), 'writable\n');
    await next.release();
    await pristine.release();
    assert.equal((await envNamed(backend, 'next')).generation, 1);

    await backend.cloneFromEnvironment('base', 'copy');
    assert.equal(await readFile(join(pool.top, 'ROOT/copy/etc/motd'), 'utf8'), 'edited by hand\n');
    const copy = await envNamed(backend, 'copy');
    assert.equal(copy.generation, 1);
    assert.equal(copy.pristine, p.id);
    // Made within a second or two: the creation order, not the clock, tells them apart.
    const order = (await backend.listEnvironments()).sort((a, b) => a.createdOrder - b.createdOrder).map((e) => e.name);
    assert.deepEqual(order, ['base', 'next', 'copy']);

    await assert.rejects(backend.cloneFromPristine(7, 'nope'), codeIs('NOT_FOUND'));
    await assert.rejects(backend.cloneFromEnvironment('base', 'copy'), codeIs('EXISTS'));
    await assert.rejects(backend.cloneFromEnvironment('ghost', 'x'), codeIs('NOT_FOUND'));
    await assert.rejects(backend.openEnvironment('ghost'), codeIs('NOT_FOUND'));
    await assert.rejects(backend.openPristine(9), codeIs('NOT_FOUND'));
    assert.deepEqual((await readdir(join(pool.top, 'ROOT'))).filter((n) => n.startsWith('.partial')), []);
  });
});

test('takePristine again: the older pristine is kept under <env>@<generation>; the same generation twice is refused', async () => {
  await withPool(async ({ pool, backend }) => {
    await backend.ensureLayout();
    await backend.createEmpty('e', 0);
    await fillOsTree(join(pool.top, 'ROOT/e'), 'one\n');
    await backend.takePristine('e', 1);
    await backend.cloneFromPristine(1, 'old');
    await writeFile(join(pool.top, 'ROOT/e/etc/motd'), 'two\n');
    await backend.takePristine('e', 2);

    const ps = (await backend.listPristines()).map((x) => [x.id, x.generation]).sort();
    assert.deepEqual(ps, [
      ['ROOT/.pristine/e', 2],
      ['ROOT/.pristine/e@1', 1],
    ]);
    assert.equal(await readFile(join((await backend.openPristine(1)).path, 'etc/motd'), 'utf8'), 'one\n');
    assert.equal(await readFile(join((await backend.openPristine(2)).path, 'etc/motd'), 'utf8'), 'two\n');
    assert.equal((await envNamed(backend, 'old')).pristine, 'ROOT/.pristine/e@1');
    await assert.rejects(backend.takePristine('old', 2), codeIs('EXISTS'));
  });
});

test('setGeneration and setMeta; rename keeps metadata and the pristine lookup', async () => {
  await withPool(async ({ pool, backend }) => {
    await backend.ensureLayout();
    await backend.createEmpty('a', 0);
    await fillOsTree(join(pool.top, 'ROOT/a'));
    await backend.takePristine('a', 4);
    await backend.setMeta('a', { note: 'first', other: 'x' });
    await backend.setMeta('a', { other: null });
    assert.deepEqual((await envNamed(backend, 'a')).meta, { note: 'first' });
    await backend.setGeneration('a', 5);
    assert.equal((await envNamed(backend, 'a')).generation, 5);
    await backend.setGeneration('a', 4);

    await backend.renameEnvironment('a', 'b');
    const names = (await backend.listEnvironments()).map((e) => e.name);
    assert.deepEqual(names, ['b']);
    const b = await envNamed(backend, 'b');
    assert.equal(b.generation, 4);
    assert.deepEqual(b.meta, { note: 'first' });
    assert.equal(b.pristine, 'ROOT/.pristine/b');
    assert.deepEqual(
      (await backend.listPristines()).map((p) => [p.id, p.generation, p.holder]),
      [['ROOT/.pristine/b', 4, 'b']],
    );
    assert.equal((await backend.openPristine(4)).path, join(pool.top, 'ROOT/.pristine/b'));
    assert.deepEqual((await readdir(join(pool.top, 'ROOT/.sysprime/envs'))).sort(), ['b.json']);
    assert.deepEqual((await readdir(join(pool.top, 'ROOT/.sysprime/pristine'))).sort(), ['b.json']);
    const onDisk = JSON.parse(await readFile(join(pool.top, 'ROOT/.sysprime/envs/b.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(onDisk, { version: 1, generation: 4, meta: { note: 'first' } });

    await backend.createEmpty('c', 4);
    await assert.rejects(backend.renameEnvironment('b', 'c'), codeIs('EXISTS'));
    await assert.rejects(backend.renameEnvironment('zz', 'y'), codeIs('NOT_FOUND'));
    await assert.rejects(backend.renameEnvironment('b', '../x'), codeIs('INVALID_NAME'));
  });
});

test('rename onto the name of a destroyed environment whose pristine is still needed keeps both pristines', async () => {
  await withPool(async ({ backend }) => {
    await backend.ensureLayout();
    await backend.createEmpty('x', 0);
    await backend.takePristine('x', 1);
    await backend.cloneFromPristine(1, 'keeper');
    await backend.destroyEnvironment('x');
    await backend.createEmpty('y', 0);
    await backend.takePristine('y', 2);

    await backend.renameEnvironment('y', 'x');
    assert.deepEqual((await backend.listPristines()).map((p) => [p.id, p.generation, p.holder]).sort(), [
      ['ROOT/.pristine/x', 2, 'x'],
      ['ROOT/.pristine/x@1', 1, 'x'],
    ]);
    assert.equal((await envNamed(backend, 'keeper')).pristine, 'ROOT/.pristine/x@1');
    assert.equal((await envNamed(backend, 'x')).pristine, 'ROOT/.pristine/x');
  });
});

test('metadata: a hand-made environment has generation -1 until recorded; a damaged file is named', async () => {
  await withPool(async ({ pool, backend }) => {
    await backend.ensureLayout();
    await run('btrfs', ['subvolume', 'create', join(pool.top, 'ROOT/manual')]);
    const manual = await envNamed(backend, 'manual');
    assert.equal(manual.generation, -1);
    assert.deepEqual(manual.meta, {});
    await assert.rejects(backend.setMeta('manual', { a: 'b' }), codeIs('BACKEND'));
    await assert.rejects(backend.cloneFromEnvironment('manual', 'copy'), codeIs('BACKEND'));
    await backend.setGeneration('manual', 2);
    assert.equal((await envNamed(backend, 'manual')).generation, 2);

    const file = join(pool.top, 'ROOT/.sysprime/envs/manual.json');
    await writeFile(file, '{"version":1,"generation":"two"}');
    await assert.rejects(backend.listEnvironments(), (e) => isSysprimeError(e, 'BACKEND') && e.message.includes(file));
    await writeFile(file, 'not json');
    await assert.rejects(backend.listEnvironments(), (e) => isSysprimeError(e, 'BACKEND') && e.message.includes(file));
  });
});

test('mount and unmount at a private directory, with something mounted inside', async () => {
  await withPool(async ({ pool, backend, privateDir }) => {
    await backend.ensureLayout();
    await backend.createEmpty('m', 0);
    await fillOsTree(join(pool.top, 'ROOT/m'));
    await mkdir(join(pool.top, 'ROOT/m/proc'));
    const dir = join(privateDir, 'm');
    await backend.mount('m', dir);
    await backend.mount('m', dir); // already there: nothing to do
    assert.equal(await readFile(join(dir, 'etc/hostname'), 'utf8'), 'box\n');
    assert.equal((await envNamed(backend, 'm')).mounted, dir);
    assert.equal((await mountsBelow(dir)).length, 1);
    await run('mount', ['-t', 'proc', 'proc', join(dir, 'proc')]);

    await assert.rejects(backend.destroyEnvironment('m'), codeIs('REFUSED'));
    await backend.unmount('m');
    assert.deepEqual(await mountsBelow(dir), []);
    assert.equal((await envNamed(backend, 'm')).mounted, null);
    await backend.unmount('m'); // not mounted: nothing to do
  });
});

test('setDefault and isDefault; the default cannot be destroyed', async () => {
  await withPool(async ({ pool, backend }) => {
    await backend.ensureLayout();
    await backend.createEmpty('one', 0);
    await backend.createEmpty('two', 0);
    assert.deepEqual((await backend.listEnvironments()).map((e) => e.isDefault), [false, false]);
    await backend.setDefault('two');
    const envs = await backend.listEnvironments();
    assert.deepEqual(envs.map((e) => [e.name, e.isDefault]), [['one', false], ['two', true]]);
    const out = await run('btrfs', ['subvolume', 'get-default', pool.top]);
    assert.match(out.stdout, /path ROOT\/two$/m);
    await assert.rejects(backend.destroyEnvironment('two'), codeIs('REFUSED'));
    await backend.setDefault('one');
    await backend.destroyEnvironment('two');
    await assert.rejects(backend.setDefault('two'), codeIs('NOT_FOUND'));
  });
});

test('destroy: removes the environment and nested subvolumes, its unshared pristine; keeps a shared one', async () => {
  await withPool(async ({ pool, backend }) => {
    await backend.ensureLayout();
    await backend.createEmpty('g1', 0);
    await fillOsTree(join(pool.top, 'ROOT/g1'));
    await backend.takePristine('g1', 1);
    await backend.cloneFromPristine(1, 'sibling');
    await backend.cloneFromPristine(1, 'g2');
    await backend.takePristine('g2', 2);
    await mkdir(join(pool.top, 'ROOT/g2/var/lib'), { recursive: true });
    await run('btrfs', ['subvolume', 'create', join(pool.top, 'ROOT/g2/var/lib/machines')]);
    await run('btrfs', ['subvolume', 'create', join(pool.top, 'ROOT/g2/var/lib/machines/inner')]);

    await assert.rejects(backend.destroyPristine(2), codeIs('REFUSED'));

    // g2 is the only environment of generation 2: its pristine goes with it, nested subvolumes first.
    await backend.destroyEnvironment('g2');
    let paths = (await listSubvolumes(pool.top)).map((s) => s.path).sort();
    assert.deepEqual(paths, ['ROOT/.pristine/g1', 'ROOT/g1', 'ROOT/sibling']);

    // g1's pristine (generation 1) is still the base of "sibling": it stays, without a holder.
    await backend.destroyEnvironment('g1');
    paths = (await listSubvolumes(pool.top)).map((s) => s.path).sort();
    assert.deepEqual(paths, ['ROOT/.pristine/g1', 'ROOT/sibling']);
    assert.deepEqual((await backend.listPristines()).map((p) => [p.id, p.generation, p.holder]), [['ROOT/.pristine/g1', 1, null]]);
    assert.equal((await envNamed(backend, 'sibling')).pristine, 'ROOT/.pristine/g1');

    await backend.destroyEnvironment('sibling');
    assert.deepEqual((await listSubvolumes(pool.top)).map((s) => s.path), []);
    assert.deepEqual(await readdir(join(pool.top, 'ROOT/.sysprime/envs')), []);
    assert.deepEqual(await readdir(join(pool.top, 'ROOT/.sysprime/pristine')), []);
    await assert.rejects(backend.destroyEnvironment('sibling'), codeIs('NOT_FOUND'));
    await assert.rejects(backend.destroyPristine(1), codeIs('NOT_FOUND'));
  });
});

test('destroyPristine: deletes an unused generation', async () => {
  await withPool(async ({ pool, backend }) => {
    await backend.ensureLayout();
    await backend.createEmpty('e', 0);
    await backend.takePristine('e', 1);
    await backend.takePristine('e', 2);
    await backend.destroyPristine(1);
    assert.deepEqual((await listSubvolumes(pool.top)).map((s) => s.path).sort(), ['ROOT/.pristine/e', 'ROOT/e']);
    assert.deepEqual(await readdir(join(pool.top, 'ROOT/.sysprime/pristine')), ['e.json']);
  });
});

test('recover: after a simulated crash, removes stale private mounts, temp files, half-made subvolumes and orphan metadata', async () => {
  await withPool(async ({ pool, backend, privateDir }) => {
    await backend.ensureLayout();
    await backend.createEmpty('keep', 0);
    await fillOsTree(join(pool.top, 'ROOT/keep'));
    await backend.takePristine('keep', 0);
    await backend.cloneFromPristine(0, 'staged');
    await mkdir(join(pool.top, 'ROOT/staged/proc'));

    // What a run killed halfway leaves: the staged environment mounted privately with /proc inside, ...
    const stale = join(privateDir, 'stage');
    await backend.mount('staged', stale);
    await run('mount', ['-t', 'proc', 'proc', join(stale, 'proc')]);
    // ... an admin's own mount elsewhere (must stay), ...
    const adminDir = join(pool.dir, 'admin-mount');
    await backend.mount('keep', adminDir);
    // ... a half-made environment with a nested subvolume, a half-made pristine, ...
    await run('btrfs', ['subvolume', 'create', join(pool.top, 'ROOT/.partial-new')]);
    await run('btrfs', ['subvolume', 'create', join(pool.top, 'ROOT/.partial-new/nested')]);
    await run('btrfs', ['subvolume', 'snapshot', '-r', join(pool.top, 'ROOT/keep'), join(pool.top, 'ROOT/.pristine/.partial-staged')]);
    // ... a live export's copy snapshot and a live import's receive (at work: export takes no lock, so another
    // verb's recovery may run meanwhile), a dead drift's snapshot, ...
    const live = process.pid;
    const dead = spawnSync('true').pid!;
    await run('btrfs', ['subvolume', 'snapshot', '-r', join(pool.top, 'ROOT/keep'), join(pool.top, `ROOT/.partial-keep@export-${live}-n0`)]);
    await mkdir(join(pool.top, `ROOT/.partial-receive-${live}-0a1b2c`));
    await run('btrfs', ['subvolume', 'create', join(pool.top, `ROOT/.partial-receive-${live}-0a1b2c/keep`)]);
    await mkdir(join(pool.top, `ROOT/.partial-receive-${live}-3d4e5f`));
    await run('btrfs', ['subvolume', 'snapshot', '-r', join(pool.top, 'ROOT/keep'), join(pool.top, `ROOT/.partial-keep@drift-${dead}`)]);
    // ... a metadata write cut short and metadata whose rename never happened.
    await writeFile(join(pool.top, 'ROOT/.sysprime/envs/.staged.json.tmp-1234-abcd0123'), '{"gen');
    await writeFile(join(pool.top, 'ROOT/.sysprime/envs/new.json'), '{"version":1,"generation":1,"meta":{}}\n');
    await writeFile(join(pool.top, 'ROOT/.sysprime/pristine/staged.json'), '{"version":1,"generation":1,"source":"staged"}\n');

    const done = await backend.recover();
    assert.ok(done.includes(`unmounted ${join(stale, 'proc')}`), done.join('\n'));
    assert.ok(done.includes(`unmounted ${stale}`));
    assert.ok(done.includes('deleted half-made subvolume ROOT/.partial-new'));
    assert.ok(done.includes('deleted half-made subvolume ROOT/.pristine/.partial-staged'));
    assert.ok(done.includes(`deleted half-made subvolume ROOT/.partial-keep@drift-${dead}`));
    assert.ok(done.some((d) => d.startsWith('removed temporary file') && d.endsWith('.staged.json.tmp-1234-abcd0123')));
    assert.ok(done.includes('removed metadata of missing environment ROOT/.sysprime/envs/new.json'));
    assert.ok(done.includes('removed metadata of missing pristine snapshot ROOT/.sysprime/pristine/staged.json'));
    assert.equal(done.length, 8);

    assert.deepEqual(await mountsBelow(privateDir), []);
    assert.deepEqual(await mountsBelow(adminDir), [adminDir]);
    const working = [`ROOT/.partial-keep@export-${live}-n0`, `ROOT/.partial-receive-${live}-0a1b2c/keep`];
    assert.deepEqual((await listSubvolumes(pool.top)).map((s) => s.path).sort(), ['ROOT/.pristine/keep', ...working, 'ROOT/keep', 'ROOT/staged'].sort());
    assert.ok((await readdir(join(pool.top, 'ROOT'))).includes(`.partial-receive-${live}-3d4e5f`), 'a live import\'s receive directory, still empty');
    for (const w of working) await run('btrfs', ['subvolume', 'delete', join(pool.top, w)]);
    assert.deepEqual((await readdir(join(pool.top, 'ROOT/.sysprime/envs'))).sort(), ['keep.json', 'staged.json']);
    assert.deepEqual((await backend.listEnvironments()).map((e) => [e.name, e.generation]), [['keep', 0], ['staged', 0]]);

    assert.deepEqual(await backend.recover(), [], 'a second run finds nothing');
  });
});

test('a create that fails halfway leaves no environment and no metadata', async () => {
  await withPool(async ({ pool, backend }) => {
    await backend.ensureLayout();
    await backend.createEmpty('a', 0);
    // An environment name that is already a plain directory makes the final rename fail.
    await mkdir(join(pool.top, 'ROOT/b/x'), { recursive: true });
    await assert.rejects(backend.createEmpty('b', 0));
    assert.deepEqual((await listSubvolumes(pool.top)).map((s) => s.path), ['ROOT/a']);
    assert.deepEqual(await readdir(join(pool.top, 'ROOT/.sysprime/envs')), ['a.json']);
  });
});

test('spaceUnique: exclusive bytes once the admin enabled quotas', async () => {
  await withPool(async ({ pool, backend }) => {
    await backend.ensureLayout();
    await backend.createEmpty('q', 0);
    await writeFile(join(pool.top, 'ROOT/q/blob'), Buffer.alloc(1024 * 1024, 7));
    assert.equal((await envNamed(backend, 'q')).spaceUnique, null);
    await run('btrfs', ['quota', 'enable', pool.top]);
    await run('sync', []);
    await run('btrfs', ['quota', 'rescan', '-w', pool.top]);
    const unique = (await envNamed(backend, 'q')).spaceUnique;
    assert.ok(unique !== null && unique >= 1024 * 1024, `spaceUnique ${unique}`);
  });
});

test('the fixture cleans up after a test that failed with mounts inside', async () => {
  const pool = await makeBtrfsPool();
  const inner = join(pool.dir, 'inner');
  await mkdir(inner);
  await run('mount', ['-o', 'subvolid=5', pool.device, inner]);
  await pool.cleanup();
  await assert.rejects(stat(pool.dir), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
  const loops = await run('losetup', ['-j', pool.imagePath]);
  assert.equal(loops.stdout.trim(), '');
  await pool.cleanup(); // a second call is harmless
});
