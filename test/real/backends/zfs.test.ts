/**
 * The ZFS backend against a real pool on a loop file (zfs-fuse here; OpenZFS
 * works the same way). Every test builds its own pool and destroys it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createZfsBackend } from '../../../src/backends/zfs/index.js';
import type { Backend } from '../../../src/backends/types.js';
import { isSysprimeError } from '../../../src/errors.js';
import { run } from '../../../src/process/run.js';
import { makeZfsPool, type ZfsPool } from '../../fixtures/zfs-pool.js';

async function withPool(fn: (pool: ZfsPool, backend: Backend) => Promise<void>, opts: { altroot?: boolean } = {}): Promise<void> {
  const pool = await makeZfsPool(opts);
  try {
    const backend = createZfsBackend({ pool: pool.name, stateDir: pool.runDir });
    await fn(pool, backend);
  } finally {
    await pool.cleanup();
  }
}

async function get(id: string, property: string): Promise<string> {
  const out = await run('zfs', ['get', '-Hp', '-o', 'value', property, id]);
  return out.stdout.trim();
}

async function exists(id: string): Promise<boolean> {
  return (await run('zfs', ['list', '-H', '-o', 'name', id], { allowFailure: true })).exitCode === 0;
}

async function origins(pool: string): Promise<Record<string, string>> {
  const out = await run('zfs', ['list', '-H', '-o', 'name,origin', '-t', 'filesystem', '-r', pool]);
  const map: Record<string, string> = {};
  for (const line of out.stdout.trim().split('\n')) {
    const [name, origin] = line.split('\t');
    if (name && origin && origin !== '-') map[name] = origin;
  }
  return map;
}

async function mountTargets(dataset: string): Promise<string[]> {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[0] === dataset)
    .map((f) => f[1] as string);
}

/** Write files into an environment through the backend. */
async function writeInto(backend: Backend, name: string, files: Record<string, string>): Promise<void> {
  const tree = await backend.openEnvironment(name);
  try {
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(join(tree.path, path, '..'), { recursive: true });
      writeFileSync(join(tree.path, path), content);
    }
  } finally {
    await tree.release();
  }
}

async function readFrom(backend: Backend, name: string, path: string): Promise<string | null> {
  const tree = await backend.openEnvironment(name);
  try {
    const p = join(tree.path, path);
    return existsSync(p) ? readFileSync(p, 'utf8') : null;
  } finally {
    await tree.release();
  }
}

/** A pid that no process has right now. */
function deadPid(): number {
  const child = spawnSync('true');
  return child.pid ?? 999_999;
}

test('probe accepts the pool and names a missing one', async () => {
  await withPool(async (pool, backend) => {
    await backend.probe();
    const missing = createZfsBackend({ pool: `${pool.name}x`, stateDir: pool.runDir });
    await assert.rejects(missing.probe(), (e) => isSysprimeError(e, 'NOT_FOUND') && e.message.includes(`${pool.name}x`) && e.hint !== undefined);
  });
});

/** Run fn with PATH holding only the given fake tools (error paths a shared real daemon must not be stopped for). */
async function withFakeTools(tools: Record<string, string>, fn: () => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-fake-zfs-'));
  const saved = process.env['PATH'];
  try {
    for (const [name, script] of Object.entries(tools)) {
      writeFileSync(join(dir, name), `#!/bin/sh\n${script}\n`);
      chmodSync(join(dir, name), 0o755);
    }
    process.env['PATH'] = dir;
    await fn();
  } finally {
    process.env['PATH'] = saved;
    rmSync(dir, { recursive: true, force: true });
  }
}

test('probe names the package when zfs is missing, and the daemon when it is down', async () => {
  const backend = createZfsBackend({ pool: 'tank' });
  await withFakeTools({}, async () => {
    await assert.rejects(backend.probe(), (e) => isSysprimeError(e, 'COMMAND_MISSING') && /zfsutils-linux/.test(e.hint ?? '') && /zfs-fuse/.test(e.hint ?? ''));
  });
  const down = 'echo "connect: No such file or directory" >&2; echo "Please make sure that the zfs-fuse daemon is running." >&2; echo "internal error: failed to initialize ZFS library" >&2; exit 1';
  await withFakeTools({ zfs: down, zpool: down }, async () => {
    await assert.rejects(backend.probe(), (e) => isSysprimeError(e, 'BACKEND') && /zfs-fuse/.test(e.message) && e.hint !== undefined);
    await assert.rejects(backend.listEnvironments(), (e) => isSysprimeError(e, 'BACKEND'));
  });
});

test('ensureLayout creates ROOT, createEmpty an environment with the expected properties', async () => {
  await withPool(async (pool, backend) => {
    assert.deepEqual(await backend.listEnvironments(), []);
    await assert.rejects(backend.createEmpty('a', 1), (e) => isSysprimeError(e, 'NOT_FOUND'));
    await backend.ensureLayout();
    await backend.ensureLayout();
    const root = `${pool.name}/ROOT`;
    assert.equal(await get(root, 'canmount'), 'off');
    assert.equal(await get(root, 'mountpoint'), 'none');

    await backend.createEmpty('a', 1);
    const ds = `${root}/a`;
    assert.equal(await get(ds, 'mountpoint'), '/');
    assert.equal(await get(ds, 'canmount'), 'noauto');
    assert.equal(await get(ds, 'org.sysprime:generation'), '1');
    assert.equal(await get(ds, 'mounted'), 'no');
    await assert.rejects(backend.createEmpty('a', 1), (e) => isSysprimeError(e, 'EXISTS'));
    await assert.rejects(backend.createEmpty('../x', 1), (e) => isSysprimeError(e, 'INVALID_NAME'));

    // A dataset under ROOT whose name starts with '.' is not an environment.
    await run('zfs', ['create', '-o', 'canmount=noauto', `${root}/.hidden`]);
    const envs = await backend.listEnvironments();
    assert.deepEqual(
      envs.map((e) => [e.name, e.id, e.generation, e.mounted, e.booted, e.isDefault, e.pristine]),
      [['a', ds, 1, null, false, false, null]],
    );
    assert.equal(typeof envs[0]?.spaceUnique, 'number');
    assert.ok((envs[0]?.created.getTime() ?? 0) > 0);
  });
});

test('adopt moves a dataset of the pool under ROOT and refuses others', async () => {
  await withPool(async (pool, backend) => {
    await backend.ensureLayout();
    const old = `${pool.name}/debian`;
    const oldDir = join(pool.dir, 'old');
    await run('zfs', ['create', '-o', `mountpoint=${oldDir}`, old]);
    writeFileSync(join(oldDir, 'os-release'), 'ID=debian\n');

    await assert.rejects(backend.adopt('otherpool/debian', 'debian', 1), (e) => isSysprimeError(e, 'REFUSED'));
    await assert.rejects(backend.adopt(pool.name, 'debian', 1), (e) => isSysprimeError(e, 'REFUSED'));
    await assert.rejects(backend.adopt(`${pool.name}/ROOT`, 'debian', 1), (e) => isSysprimeError(e, 'REFUSED'));
    await assert.rejects(backend.adopt(`${pool.name}/nothing`, 'debian', 1), (e) => isSysprimeError(e, 'NOT_FOUND'));
    // This machine's root is not ZFS.
    await assert.rejects(backend.adopt('/', 'debian', 1), (e) => isSysprimeError(e, 'NOT_FOUND'));

    await backend.adopt(old, 'debian', 3);
    const ds = `${pool.name}/ROOT/debian`;
    assert.equal(await exists(old), false);
    assert.equal(await get(ds, 'mountpoint'), '/');
    assert.equal(await get(ds, 'canmount'), 'noauto');
    assert.equal(await get(ds, 'mounted'), 'no');
    const [env] = await backend.listEnvironments();
    assert.equal(env?.name, 'debian');
    assert.equal(env?.generation, 3);
    assert.equal(await readFrom(backend, 'debian', 'os-release'), 'ID=debian\n');

    // Adopting it again where it already is only sets the properties.
    await backend.adopt(ds, 'debian', 4);
    assert.equal((await backend.listEnvironments())[0]?.generation, 4);
    await run('zfs', ['create', `${pool.name}/other`]);
    await assert.rejects(backend.adopt(`${pool.name}/other`, 'debian', 1), (e) => isSysprimeError(e, 'EXISTS'));
  });
});

test('pristines, clones from a pristine and from an environment, and read-only pristine trees', async () => {
  await withPool(async (pool, backend) => {
    await backend.ensureLayout();
    await backend.createEmpty('a', 1);
    await writeInto(backend, 'a', { 'etc/motd': 'one\n' });
    const pristine = await backend.takePristine('a', 1);
    assert.equal(pristine.id, `${pool.name}/ROOT/a@sysprime-pristine`);
    assert.equal(pristine.generation, 1);
    assert.equal(pristine.holder, `${pool.name}/ROOT/a`);
    await assert.rejects(backend.takePristine('a', 1), (e) => isSysprimeError(e, 'EXISTS'));
    await writeInto(backend, 'a', { 'etc/motd': 'two\n' });

    const tree = await backend.openPristine(1);
    try {
      assert.equal(readFileSync(join(tree.path, 'etc/motd'), 'utf8'), 'one\n');
      assert.throws(() => writeFileSync(join(tree.path, 'etc/new'), 'x'), /EROFS|read-only/i);
    } finally {
      await tree.release();
    }
    await tree.release();
    const listed = (await run('zfs', ['list', '-H', '-o', 'name', '-r', `${pool.name}/ROOT`])).stdout;
    assert.doesNotMatch(listed, /sysprime-tmp/, 'the temporary clone is gone after release');
    await assert.rejects(backend.openPristine(7), (e) => isSysprimeError(e, 'NOT_FOUND'));

    await backend.cloneFromPristine(1, 'b');
    assert.equal(await readFrom(backend, 'b', 'etc/motd'), 'one\n');
    assert.equal(await get(`${pool.name}/ROOT/b`, 'mountpoint'), '/');
    assert.equal(await get(`${pool.name}/ROOT/b`, 'canmount'), 'noauto');
    assert.equal((await origins(pool.name))[`${pool.name}/ROOT/b`], pristine.id);
    await assert.rejects(backend.cloneFromPristine(9, 'x'), (e) => isSysprimeError(e, 'NOT_FOUND'));

    await backend.cloneFromEnvironment('a', 'c');
    assert.equal(await readFrom(backend, 'c', 'etc/motd'), 'two\n');
    const origin = (await origins(pool.name))[`${pool.name}/ROOT/c`] ?? '';
    assert.match(origin, new RegExp(`^${pool.name}/ROOT/a@sysprime-copy-\\d{8}T\\d{6}Z$`));
    const envs = await backend.listEnvironments();
    const c = envs.find((e) => e.name === 'c');
    assert.equal(c?.generation, 1);
    assert.equal(c?.pristine, pristine.id);
    // Made within a second or two: the creation order (createtxg), not the clock, tells them apart.
    assert.deepEqual(
      [...envs].sort((x, y) => x.createdOrder - y.createdOrder).map((e) => e.name),
      ['a', 'b', 'c'],
    );
    assert.ok(envs.every((e) => e.createdOrder > 0), 'createtxg is read');
    assert.deepEqual(
      (await backend.listPristines()).map((p) => p.generation),
      [1],
      'a copy snapshot is not a pristine',
    );

    await backend.setGeneration('b', 2);
    await backend.takePristine('b', 2);
    assert.deepEqual(
      (await backend.listPristines()).map((p) => [p.generation, p.id]),
      [
        [1, pristine.id],
        [2, `${pool.name}/ROOT/b@sysprime-pristine`],
      ],
    );
  });
});

test('mount at a private directory, unmount, and the file is there later', async () => {
  await withPool(async (pool, backend) => {
    await backend.ensureLayout();
    await backend.createEmpty('a', 1);
    const ds = `${pool.name}/ROOT/a`;
    const dir = join(pool.dir, 'private', 'a');
    await backend.mount('a', dir);
    assert.deepEqual(await mountTargets(ds), [dir]);
    await backend.mount('a', dir);
    await assert.rejects(backend.mount('a', join(pool.dir, 'elsewhere')), (e) => isSysprimeError(e, 'BUSY'));
    writeFileSync(join(dir, 'hello'), 'world\n');
    const env = (await backend.listEnvironments())[0];
    assert.equal(env?.mounted, dir);
    // openEnvironment reuses a mount that is already there and leaves it on release.
    const tree = await backend.openEnvironment('a');
    assert.equal(tree.path, dir);
    await tree.release();
    assert.deepEqual(await mountTargets(ds), [dir]);

    await backend.unmount('a');
    assert.deepEqual(await mountTargets(ds), []);
    assert.equal(await get(ds, 'mountpoint'), '/');
    assert.equal(await get(ds, 'org.sysprime:saved-mountpoint'), '-');
    await backend.unmount('a');

    assert.equal(await readFrom(backend, 'a', 'hello'), 'world\n');
    assert.equal(await get(ds, 'mountpoint'), '/');
    assert.deepEqual(await mountTargets(ds), []);
    assert.deepEqual(readdirSync(join(pool.runDir, 'mnt')), [], 'private mount directory and owner file are gone');
  });
});

test('rename keeps the pristine findable and moves bootfs; setDefault and setMeta', async () => {
  await withPool(async (pool, backend) => {
    await backend.ensureLayout();
    await backend.createEmpty('a', 1);
    await writeInto(backend, 'a', { 'etc/hostname': 'box\n' });
    await backend.takePristine('a', 1);
    await backend.createEmpty('other', 5);
    await backend.setDefault('a');
    assert.equal((await backend.listEnvironments()).find((e) => e.name === 'a')?.isDefault, true);

    await backend.renameEnvironment('a', 'b');
    await assert.rejects(backend.renameEnvironment('b', 'other'), (e) => isSysprimeError(e, 'EXISTS'));
    await assert.rejects(backend.renameEnvironment('zzz', 'y'), (e) => isSysprimeError(e, 'NOT_FOUND'));
    const envs = await backend.listEnvironments();
    assert.deepEqual(
      envs.map((e) => e.name),
      ['b', 'other'],
    );
    const b = envs.find((e) => e.name === 'b');
    assert.equal(b?.isDefault, true);
    assert.equal(b?.pristine, `${pool.name}/ROOT/b@sysprime-pristine`);
    const tree = await backend.openPristine(1);
    try {
      assert.equal(readFileSync(join(tree.path, 'etc/hostname'), 'utf8'), 'box\n');
    } finally {
      await tree.release();
    }

    await backend.setDefault('other');
    assert.deepEqual(
      (await backend.listEnvironments()).map((e) => [e.name, e.isDefault]),
      [
        ['b', false],
        ['other', true],
      ],
    );

    await backend.setMeta('b', { 'staged-from': 'a', note: 'x y\tz' });
    assert.deepEqual((await backend.listEnvironments()).find((e) => e.name === 'b')?.meta, { 'staged-from': 'a', note: 'x y\tz' });
    await backend.setMeta('b', { note: null });
    assert.deepEqual((await backend.listEnvironments()).find((e) => e.name === 'b')?.meta, { 'staged-from': 'a' });
    await assert.rejects(backend.setMeta('b', { generation: '9' }), (e) => isSysprimeError(e, 'USAGE'));
    await assert.rejects(backend.setMeta('b', { 'Bad Key': '9' }), (e) => isSysprimeError(e, 'USAGE'));
    assert.equal((await backend.listEnvironments()).find((e) => e.name === 'b')?.generation, 1);
  });
});

test('destroying an origin with two dependents promotes one and keeps the shared pristine', async () => {
  await withPool(async (pool, backend) => {
    const R = `${pool.name}/ROOT`;
    await backend.ensureLayout();
    await backend.createEmpty('a', 1);
    await writeInto(backend, 'a', { 'etc/version': '1\n' });
    await backend.takePristine('a', 1);
    await backend.cloneFromPristine(1, 'b');
    await writeInto(backend, 'b', { 'etc/version': '2\n' });
    await backend.setGeneration('b', 2);
    await backend.takePristine('b', 2);
    await backend.cloneFromPristine(1, 'c');
    await writeInto(backend, 'c', { 'etc/local': 'mine\n' });

    await backend.destroyEnvironment('a');
    assert.equal(await exists(`${R}/a`), false);
    assert.deepEqual(
      (await backend.listEnvironments()).map((e) => [e.name, e.generation]),
      [
        ['b', 2],
        ['c', 1],
      ],
    );
    const pristines = await backend.listPristines();
    assert.deepEqual(
      pristines.map((p) => [p.generation, p.id]),
      [
        [1, `${R}/b@sysprime-pristine-g1`],
        [2, `${R}/b@sysprime-pristine`],
      ],
    );
    assert.deepEqual(await origins(pool.name), { [`${R}/c`]: `${R}/b@sysprime-pristine-g1` });
    assert.equal(await readFrom(backend, 'c', 'etc/version'), '1\n');
    assert.equal(await readFrom(backend, 'c', 'etc/local'), 'mine\n');
    assert.equal(await readFrom(backend, 'b', 'etc/version'), '2\n');
    const tree = await backend.openPristine(1);
    try {
      assert.equal(readFileSync(join(tree.path, 'etc/version'), 'utf8'), '1\n');
    } finally {
      await tree.release();
    }

    // The last environment of generation 1 goes: nothing needs its pristine any more.
    await assert.rejects(backend.destroyPristine(1), (e) => isSysprimeError(e, 'REFUSED'));
    await backend.destroyEnvironment('c');
    assert.deepEqual(
      (await backend.listPristines()).map((p) => p.id),
      [`${R}/b@sysprime-pristine`],
    );
    assert.deepEqual(await origins(pool.name), {});
    await backend.destroyPristine(2);
    assert.deepEqual(await backend.listPristines(), []);
  });
});

test("pristine snapshots carry sysprime's hold: refused to `zfs destroy` by hand, released by sysprime's own destroy, held again after a kill, another tool's hold refuses", async () => {
  await withPool(async (pool, backend) => {
    const R = `${pool.name}/ROOT`;
    await backend.ensureLayout();
    await backend.createEmpty('a', 1);
    await writeInto(backend, 'a', { 'etc/version': '1\n' });
    const first = await backend.takePristine('a', 1);
    assert.equal(await get(first.id, 'userrefs'), '1', 'held as it is taken');
    assert.notEqual((await run('zfs', ['destroy', first.id], { allowFailure: true })).exitCode, 0, 'zfs destroy of the snapshot is refused');
    assert.notEqual((await run('zfs', ['destroy', '-r', `${R}/a`], { allowFailure: true })).exitCode, 0, 'and so is zfs destroy -r of its environment');
    assert.ok(await exists(first.id));

    // A kill between the snapshot and its hold (or a release and its destroy) leaves it without: the next run holds it.
    await run('zfs', ['release', 'sysprime', first.id]);
    assert.deepEqual(
      (await backend.recover()).filter((l) => /\bheld\b/.test(l)),
      [`held the pristine snapshot ${first.id} again (\`zfs hold sysprime\`)`],
    );
    assert.equal(await get(first.id, 'userrefs'), '1');
    assert.deepEqual((await backend.recover()).filter((l) => /\bheld\b/.test(l)), [], 'once');

    await backend.cloneFromPristine(1, 'b');
    await writeInto(backend, 'b', { 'etc/version': '2\n' });
    await backend.setGeneration('b', 2);
    const second = await backend.takePristine('b', 2);
    // sysprime's own destroy releases what goes: generation 1's pristine moves to b with the promote, then goes.
    await backend.destroyEnvironment('a');
    assert.deepEqual((await backend.listPristines()).map((p) => p.id), [second.id]);

    // Someone else's hold is theirs to release: the destroy is refused naming it, and sysprime's hold stays.
    await run('zfs', ['hold', 'keep', second.id]);
    await assert.rejects(backend.destroyPristine(2), (e) => isSysprimeError(e, 'REFUSED') && e.message.includes(second.id) && /zfs holds/.test(e.hint ?? ''));
    assert.equal(await get(second.id, 'userrefs'), '2', 'both holds are still there');
    await run('zfs', ['release', 'keep', second.id]);
    // The last environment goes with its own pristine snapshot, released with it.
    await backend.destroyEnvironment('b');
    assert.deepEqual(await backend.listPristines(), []);
  });
});

test('destroying a middle generation hands its place to the next one', async () => {
  await withPool(async (pool, backend) => {
    const R = `${pool.name}/ROOT`;
    await backend.ensureLayout();
    await backend.createEmpty('g1', 1);
    await writeInto(backend, 'g1', { v: '1' });
    await backend.takePristine('g1', 1);
    await backend.cloneFromPristine(1, 'g2');
    await writeInto(backend, 'g2', { v: '2' });
    await backend.setGeneration('g2', 2);
    await backend.takePristine('g2', 2);
    await backend.cloneFromPristine(2, 'g3');
    await writeInto(backend, 'g3', { v: '3' });
    await backend.setGeneration('g3', 3);
    await backend.takePristine('g3', 3);
    await backend.cloneFromEnvironment('g3', 'g3-copy');

    await backend.destroyEnvironment('g2');
    assert.deepEqual(
      (await backend.listEnvironments()).map((e) => e.name),
      ['g1', 'g3', 'g3-copy'],
    );
    assert.deepEqual(
      (await backend.listPristines()).map((p) => [p.generation, p.id]),
      [
        [1, `${R}/g1@sysprime-pristine`],
        [3, `${R}/g3@sysprime-pristine`],
      ],
    );
    const o = await origins(pool.name);
    assert.equal(o[`${R}/g3`], `${R}/g1@sysprime-pristine`);
    assert.match(o[`${R}/g3-copy`] ?? '', new RegExp(`^${R}/g3@sysprime-copy-`));
    assert.equal(await readFrom(backend, 'g3', 'v'), '3');
    assert.equal(await readFrom(backend, 'g3-copy', 'v'), '3');

    // Destroying the holder of a copy: the copy is promoted, the copy snapshot goes, the pristine stays for g3-copy.
    await backend.destroyEnvironment('g3');
    assert.deepEqual(
      (await backend.listPristines()).map((p) => [p.generation, p.id]),
      [
        [1, `${R}/g1@sysprime-pristine`],
        [3, `${R}/g3-copy@sysprime-pristine-g3`],
      ],
    );
    assert.deepEqual(await origins(pool.name), { [`${R}/g3-copy`]: `${R}/g1@sysprime-pristine` });
    const snaps = (await run('zfs', ['list', '-H', '-o', 'name', '-t', 'snapshot', '-r', R])).stdout;
    assert.doesNotMatch(snaps, /sysprime-copy-/);
    assert.equal(await readFrom(backend, 'g3-copy', 'v'), '3');

    // The moved pristine carries its generation in its name, so the plain name is free for the next one.
    await backend.setGeneration('g3-copy', 4);
    const next = await backend.takePristine('g3-copy', 4);
    assert.equal(next.id, `${R}/g3-copy@sysprime-pristine`);
    assert.deepEqual(
      (await backend.listPristines()).map((p) => p.generation),
      [1, 3, 4],
    );
  });
});

test('destroy refuses what is outside ROOT and clones outside ROOT', async () => {
  await withPool(async (pool, backend) => {
    await backend.ensureLayout();
    await backend.createEmpty('a', 1);
    await backend.takePristine('a', 1);
    await run('zfs', ['clone', '-o', 'canmount=noauto', `${pool.name}/ROOT/a@sysprime-pristine`, `${pool.name}/outside`]);
    await assert.rejects(backend.destroyEnvironment('a'), (e) => isSysprimeError(e, 'REFUSED') && e.message.includes(`${pool.name}/outside`));
    assert.equal(await exists(`${pool.name}/ROOT/a`), true);
    await assert.rejects(backend.destroyEnvironment('../outside'), (e) => isSysprimeError(e, 'INVALID_NAME'));
    await assert.rejects(backend.destroyEnvironment('nothing'), (e) => isSysprimeError(e, 'NOT_FOUND'));
    assert.equal(await exists(`${pool.name}/outside`), true);
  });
});

test('recover puts back a mountpoint left changed by a crash, unmounts stale private mounts, removes leftovers', async () => {
  await withPool(async (pool, backend) => {
    const R = `${pool.name}/ROOT`;
    await backend.ensureLayout();
    await backend.createEmpty('a', 1);
    await backend.createEmpty('b', 1);
    await backend.createEmpty('kept', 1);
    await backend.takePristine('a', 1);

    // a: crashed after changing the mountpoint, before mounting.
    await run('zfs', ['set', 'org.sysprime:saved-mountpoint=/', `${R}/a`]);
    await run('zfs', ['set', `mountpoint=${join(pool.runDir, 'mnt', 'a')}`, `${R}/a`]);
    // b: crashed while its private mount was in use (the owner process is gone).
    const bDir = join(pool.runDir, 'mnt', 'b');
    mkdirSync(bDir, { recursive: true });
    writeFileSync(join(pool.runDir, 'mnt', '.b.owner'), `${deadPid()}\n`);
    await run('zfs', ['set', 'org.sysprime:saved-mountpoint=/', `${R}/b`]);
    await run('zfs', ['set', `mountpoint=${bDir}`, `${R}/b`]);
    await run('zfs', ['mount', `${R}/b`]);
    // kept: mounted on purpose by `sysprime mount`, which recover leaves alone.
    const keptDir = join(pool.dir, 'wanted');
    await backend.mount('kept', keptDir);
    // A temporary pristine clone of a dead process, mounted, and a copy snapshot without its clone.
    const tmp = `${R}/.sysprime-tmp-g1-${deadPid()}-abcdef`;
    const tmpDir = join(pool.runDir, 'pristine', 'sysprime-tmp-x');
    await run('zfs', ['clone', '-o', 'canmount=noauto', '-o', 'readonly=on', `${R}/a@sysprime-pristine`, tmp]);
    await run('zfs', ['set', `mountpoint=${tmpDir}`, tmp]);
    await run('zfs', ['mount', tmp]);
    await run('zfs', ['snapshot', `${R}/b@sysprime-copy-20260101T000000Z`]);

    const done = await backend.recover();
    assert.ok(done.length >= 4, done.join('\n'));
    assert.equal(await get(`${R}/a`, 'mountpoint'), '/');
    assert.equal(await get(`${R}/a`, 'org.sysprime:saved-mountpoint'), '-');
    assert.equal(await get(`${R}/b`, 'mountpoint'), '/');
    assert.deepEqual(await mountTargets(`${R}/b`), []);
    assert.equal(await exists(tmp), false);
    assert.deepEqual(await mountTargets(tmp), []);
    assert.equal(await exists(`${R}/b@sysprime-copy-20260101T000000Z`), false);
    assert.equal(await exists(`${R}/a@sysprime-pristine`), true);
    assert.deepEqual(await mountTargets(`${R}/kept`), [keptDir]);
    assert.equal(existsSync(bDir), false);
    assert.equal(existsSync(join(pool.runDir, 'mnt', '.b.owner')), false);

    assert.deepEqual(await backend.recover(), []);
    await backend.unmount('kept');
    assert.equal(await get(`${R}/kept`, 'mountpoint'), '/');
  });
});

test('recover unmounts what a dead chroot left below a stale private mount first (its /dev, /proc, /run, the root\'s self-bind), deepest first', async () => {
  await withPool(async (pool, backend) => {
    const ds = `${pool.name}/ROOT/a`;
    await backend.ensureLayout();
    await backend.createEmpty('a', 1);
    // Opened by a shell, which entered it as withChroot does; then sysprime was killed with -9 (its owner is dead).
    const tree = await backend.openEnvironment('a');
    const root = realpathSync(tree.path);
    for (const d of ['dev', 'proc', 'run']) mkdirSync(join(root, d));
    await run('mount', ['--bind', '--make-private', root, root]);
    await run('mount', ['--bind', '--make-private', '/dev', join(root, 'dev')]);
    await run('mount', ['-t', 'proc', '-o', 'nosuid,nodev,noexec', '--make-private', 'proc', join(root, 'proc')]);
    await run('mount', ['-t', 'tmpfs', '-o', 'mode=755', '--make-private', 'sysprime-run', join(root, 'run')]);
    await run('mount', ['-t', 'tmpfs', '-o', 'mode=755', 'sysprime-deeper', join(root, 'run')]);
    writeFileSync(join(pool.runDir, 'mnt', '.a.owner'), `${deadPid()}\n`);

    const done = await backend.recover();
    for (const d of ['dev', 'proc', 'run']) assert.ok(done.includes(`unmounted ${join(root, d)}`), done.join('\n'));
    assert.ok(done.indexOf(`unmounted ${join(root, 'proc')}`) < done.findIndex((l) => l.startsWith(`unmounted ${ds} from`)), 'what is below first');
    const left = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m !== undefined && (m === root || m.startsWith(`${root}/`)));
    assert.deepEqual(left, [], 'nothing is left mounted there');
    assert.deepEqual(await mountTargets(ds), []);
    assert.equal(await get(ds, 'mountpoint'), '/');
    assert.deepEqual(await backend.recover(), []);
    // Every other verb works again.
    assert.equal(await readFrom(backend, 'a', 'proc/self'), null);
  });
});

test('an open environment of a living process survives recover', async () => {
  await withPool(async (pool, backend) => {
    await backend.ensureLayout();
    await backend.createEmpty('a', 1);
    const tree = await backend.openEnvironment('a');
    try {
      assert.equal(tree.path, join(pool.runDir, 'mnt', 'a'));
      assert.deepEqual(await backend.recover(), []);
      assert.deepEqual(await mountTargets(`${pool.name}/ROOT/a`), [tree.path]);
    } finally {
      await tree.release();
    }
    assert.equal(await get(`${pool.name}/ROOT/a`, 'mountpoint'), '/');
  });
});

for (const altroot of [false, true]) {
test(`recover after kill -9 of a process that held an environment open${altroot ? ' (pool with an altroot)' : ''}`, async () => {
  await withPool(async (pool, backend) => {
    await backend.ensureLayout();
    await backend.createEmpty('a', 1);
    const moduleUrl = new URL('../../../src/backends/zfs/index.js', import.meta.url).href;
    const script = [
      `import { createZfsBackend } from ${JSON.stringify(moduleUrl)};`,
      `const b = createZfsBackend({ pool: ${JSON.stringify(pool.name)}, stateDir: ${JSON.stringify(pool.runDir)} });`,
      `const t = await b.openEnvironment('a');`,
      `process.stdout.write(t.path + '\\n');`,
      `setInterval(() => {}, 1000);`,
    ].join('\n');
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      let out = '';
      while (!out.includes('\n')) {
        const [chunk] = (await once(child.stdout, 'data')) as [Buffer];
        out += chunk.toString();
      }
      const path = out.trim();
      assert.equal(path, join(pool.runDir, 'mnt', 'a'));
      // With an altroot zfs-fuse mounts below it, and the mount is bound where it was asked for.
      assert.deepEqual((await mountTargets(`${pool.name}/ROOT/a`)).at(-1), path);
    } finally {
      child.kill('SIGKILL');
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    }
    const done = await backend.recover();
    assert.ok(done.some((l) => l.includes('unmounted')), done.join('\n'));
    assert.deepEqual(await mountTargets(`${pool.name}/ROOT/a`), []);
    // Shown below the altroot, and put back as `/`, not as the altroot doubled.
    assert.equal(await get(`${pool.name}/ROOT/a`, 'mountpoint'), pool.altroot ?? '/');
    assert.equal(await get(`${pool.name}/ROOT/a`, 'org.sysprime:saved-mountpoint'), '-');
  }, { altroot });
});
}
