/**
 * One contract for every backend: the same calls and the same expectations,
 * run against a loop-file Btrfs filesystem and a zfs-fuse pool. What a
 * backend creates, lists, renames, mounts and destroys, and what it refuses
 * with which code, as `Backend` in src/backends/types.ts says.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { createBtrfsBackend } from '../../../src/backends/btrfs/index.js';
import { createZfsBackend } from '../../../src/backends/zfs/index.js';
import type { Backend, SnapshotInfo } from '../../../src/backends/types.js';
import { isSysprimeError, type ErrorCode } from '../../../src/errors.js';
import { makeBtrfsPool } from '../../fixtures/btrfs-pool.js';
import { makeZfsPool } from '../../fixtures/zfs-pool.js';

interface Subject {
  backend: Backend;
  /** A scratch directory for mount points; everything below it is unmounted at cleanup. */
  dir: string;
  cleanup(): Promise<void>;
}

const SUBJECTS: Record<'btrfs' | 'zfs', () => Promise<Subject>> = {
  async btrfs() {
    const pool = await makeBtrfsPool();
    const backend = createBtrfsBackend({ top: pool.top, privateDir: join(pool.dir, 'private') });
    return {
      backend,
      dir: pool.dir,
      async cleanup() {
        await backend.close().catch(() => undefined);
        await pool.cleanup();
      },
    };
  },
  async zfs() {
    const pool = await makeZfsPool();
    return { backend: createZfsBackend({ pool: pool.name, stateDir: pool.runDir }), dir: pool.dir, cleanup: () => pool.cleanup() };
  },
};

const refusedWith = (code: ErrorCode) => (e: unknown) => isSysprimeError(e, code);

async function writeInto(backend: Backend, name: string, path: string, text: string): Promise<void> {
  const tree = await backend.openEnvironment(name);
  try {
    mkdirSync(join(tree.path, path, '..'), { recursive: true });
    writeFileSync(join(tree.path, path), text);
  } finally {
    await tree.release();
  }
}

async function readFrom(backend: Backend, name: string, path: string): Promise<string | null> {
  const tree = await backend.openEnvironment(name);
  try {
    return existsSync(join(tree.path, path)) ? readFileSync(join(tree.path, path), 'utf8') : null;
  } finally {
    await tree.release();
  }
}

/** name, generation, mounted, booted, default, has a pristine: sorted by name. */
async function listed(backend: Backend): Promise<[string, number, string | null, boolean, boolean, boolean][]> {
  return (await backend.listEnvironments())
    .map((e) => [e.name, e.generation, e.mounted, e.booted, e.isDefault, e.pristine !== null] as [string, number, string | null, boolean, boolean, boolean])
    .sort((a, b) => a[0].localeCompare(b[0]));
}

/** environment, name, generation of each snapshot: sorted. */
function snapshotsOf(list: readonly SnapshotInfo[]): [string, string, number][] {
  return list.map((x) => [x.environment, x.name, x.generation] as [string, string, number]).sort((p, q) => `${p[0]}@${p[1]}`.localeCompare(`${q[0]}@${q[1]}`));
}

async function contract(t: TestContext, s: Subject): Promise<void> {
  const b = s.backend;

  await t.test('create, and what create refuses', async () => {
    await b.ensureLayout();
    await b.ensureLayout(); // twice: nothing to do
    assert.deepEqual(await listed(b), []);
    await b.createEmpty('a', 1);
    await assert.rejects(b.createEmpty('a', 1), refusedWith('EXISTS'));
    await assert.rejects(b.createEmpty('bad/name', 1), refusedWith('INVALID_NAME'));
    assert.deepEqual(await listed(b), [['a', 1, null, false, false, false]]);
  });

  await t.test('pristine snapshot: one per generation, read-only, the base of clones', async () => {
    await writeInto(b, 'a', 'etc/motd', 'one\n');
    const p = await b.takePristine('a', 1);
    assert.equal(p.generation, 1);
    await assert.rejects(b.takePristine('a', 1), refusedWith('EXISTS'));
    await assert.rejects(b.takePristine('missing', 2), refusedWith('NOT_FOUND'));
    assert.deepEqual((await b.listPristines()).map((x) => x.generation), [1]);
    const tree = await b.openPristine(1);
    try {
      assert.equal(readFileSync(join(tree.path, 'etc/motd'), 'utf8'), 'one\n');
      assert.throws(() => writeFileSync(join(tree.path, 'etc/motd'), 'changed\n'), (e: NodeJS.ErrnoException) => e.code === 'EROFS' || e.code === 'EPERM' || e.code === 'EACCES');
    } finally {
      await tree.release();
    }
    await assert.rejects(b.openPristine(9), refusedWith('NOT_FOUND'));
  });

  await t.test('clone from the pristine and from an environment; what clone refuses', async () => {
    await writeInto(b, 'a', 'etc/motd', 'one, changed\n');
    await b.cloneFromPristine(1, 'b');
    assert.equal(await readFrom(b, 'b', 'etc/motd'), 'one\n');
    await b.cloneFromEnvironment('a', 'c');
    assert.equal(await readFrom(b, 'c', 'etc/motd'), 'one, changed\n');
    await assert.rejects(b.cloneFromPristine(9, 'x'), refusedWith('NOT_FOUND'));
    await assert.rejects(b.cloneFromPristine(1, 'a'), refusedWith('EXISTS'));
    await assert.rejects(b.cloneFromEnvironment('missing', 'x'), refusedWith('NOT_FOUND'));
    await assert.rejects(b.cloneFromEnvironment('a', 'b'), refusedWith('EXISTS'));
    // A clone is a copy: a change in it leaves its source alone.
    await writeInto(b, 'c', 'etc/motd', 'three\n');
    assert.equal(await readFrom(b, 'a', 'etc/motd'), 'one, changed\n');
    await b.setGeneration('c', 2);
    assert.deepEqual(await listed(b), [
      ['a', 1, null, false, false, true],
      ['b', 1, null, false, false, true],
      ['c', 2, null, false, false, false],
    ]);
  });

  await t.test('snapshots: taken, listed, destroyed; what they refuse', async () => {
    const s1 = await b.takeSnapshot('c', 's1');
    assert.deepEqual([s1.environment, s1.name, s1.generation], ['c', 's1', 2]);
    await assert.rejects(b.takeSnapshot('c', 's1'), refusedWith('EXISTS'));
    await assert.rejects(b.takeSnapshot('missing', 's1'), refusedWith('NOT_FOUND'));
    await assert.rejects(b.takeSnapshot('c', 'bad/name'), refusedWith('INVALID_NAME'));
    await assert.rejects(b.takeSnapshot('c', 'sysprime-pristine'), refusedWith('INVALID_NAME'));
    await assert.rejects(b.takeSnapshot('c', 'pristine'), refusedWith('INVALID_NAME'));
    await b.takeSnapshot('a', 's1'); // the name is the environment's own
    await b.takeSnapshot('c', 's2');
    assert.deepEqual(snapshotsOf(await b.listSnapshots()), [['a', 's1', 1], ['c', 's1', 2], ['c', 's2', 2]]);
    await b.destroySnapshot('c', 's2');
    await assert.rejects(b.destroySnapshot('c', 's2'), refusedWith('NOT_FOUND'));
    assert.deepEqual(snapshotsOf(await b.listSnapshots()), [['a', 's1', 1], ['c', 's1', 2]]);
    await assert.rejects(b.destroySnapshot('missing', 's1'), refusedWith('NOT_FOUND'));
    // An environment made from a snapshot has its content and its generation, whatever the environment became since.
    await writeInto(b, 'c', 'etc/motd', 'four\n');
    await b.cloneFromSnapshot('c', 's1', 'e');
    assert.equal(await readFrom(b, 'e', 'etc/motd'), 'three\n');
    assert.deepEqual((await listed(b)).find((x) => x[0] === 'e'), ['e', 2, null, false, false, false]);
    await assert.rejects(b.cloneFromSnapshot('c', 'nope', 'x'), refusedWith('NOT_FOUND'));
    await assert.rejects(b.cloneFromSnapshot('missing', 's1', 'x'), refusedWith('NOT_FOUND'));
    await assert.rejects(b.cloneFromSnapshot('c', 's1', 'a'), refusedWith('EXISTS'));
    await writeInto(b, 'e', 'etc/motd', 'five\n');
    assert.equal(await readFrom(b, 'c', 'etc/motd'), 'four\n', 'a clone of a snapshot is a copy');
    // ZFS keeps a clone's origin; Btrfs snapshots are independent of each other.
    if (b.kind === 'zfs') await assert.rejects(b.destroySnapshot('c', 's1'), refusedWith('REFUSED'));
    await b.destroyEnvironment('e');
    assert.deepEqual(snapshotsOf(await b.listSnapshots()), [['a', 's1', 1], ['c', 's1', 2]], 'the snapshot stays when its clone goes');
    await writeInto(b, 'c', 'etc/motd', 'three\n');
    // A snapshot is not an environment, and takes nothing from the listing of environments or pristines.
    assert.deepEqual((await listed(b)).map((e) => e[0]), ['a', 'b', 'c']);
    assert.deepEqual((await b.listPristines()).map((x) => x.generation), [1]);
  });

  await t.test('rename, and what rename refuses', async () => {
    await b.renameEnvironment('c', 'd');
    assert.deepEqual((await listed(b)).map((e) => e[0]), ['a', 'b', 'd']);
    assert.equal(await readFrom(b, 'd', 'etc/motd'), 'three\n');
    await assert.rejects(b.renameEnvironment('d', 'a'), refusedWith('EXISTS'));
    await assert.rejects(b.renameEnvironment('missing', 'e'), refusedWith('NOT_FOUND'));
    await assert.rejects(b.renameEnvironment('d', '../e'), refusedWith('INVALID_NAME'));
    // Its snapshots follow the name.
    assert.deepEqual(snapshotsOf(await b.listSnapshots()), [['a', 's1', 1], ['d', 's1', 2]]);
  });

  await t.test('mount: once, at one directory; a mounted environment is neither renamed nor destroyed', async () => {
    const dir = join(s.dir, 'mnt', 'b');
    await b.mount('b', dir);
    await b.mount('b', dir); // there already: nothing to do
    assert.equal(readFileSync(join(dir, 'etc/motd'), 'utf8'), 'one\n');
    writeFileSync(join(dir, 'etc/hostname'), 'box\n');
    assert.deepEqual((await listed(b)).find((e) => e[0] === 'b'), ['b', 1, dir, false, false, true]);
    await assert.rejects(b.mount('b', join(s.dir, 'mnt', 'elsewhere')), refusedWith('BUSY'));
    await assert.rejects(b.renameEnvironment('b', 'e'), refusedWith('REFUSED'));
    await assert.rejects(b.destroyEnvironment('b'), refusedWith('REFUSED'));
    await assert.rejects(b.mount('missing', join(s.dir, 'mnt', 'missing')), refusedWith('NOT_FOUND'));
    await b.unmount('b');
    await b.unmount('b'); // not mounted: nothing to do
    await assert.rejects(b.unmount('missing'), refusedWith('NOT_FOUND'));
    assert.deepEqual((await listed(b)).find((e) => e[0] === 'b'), ['b', 1, null, false, false, true]);
    assert.equal(await readFrom(b, 'b', 'etc/hostname'), 'box\n');
  });

  await t.test('send and receive: the environment as it is, under a new name, with its metadata; a refused check leaves nothing', async () => {
    const sent = new PassThrough();
    const parts: Buffer[] = [];
    sent.on('data', (c: Buffer) => parts.push(c));
    assert.deepEqual(await b.sendParts('b', { withPristine: false }), { parts: ['environment'], nested: [] });
    await b.sendPart('b', 'environment', sent, { fromPristine: false });
    const stream = Buffer.concat(parts);
    assert.ok(stream.length > 0);
    await assert.rejects(b.receiveEnvironment('a', 7, { environment: Readable.from([stream]) }, async () => undefined), refusedWith('EXISTS'));
    await assert.rejects(
      b.receiveEnvironment('refused', 7, { environment: Readable.from([stream]) }, async () => {
        throw new Error('the check said no');
      }),
      /the check said no/,
    );
    assert.ok(!(await listed(b)).some((e) => e[0] === 'refused'));
    await b.receiveEnvironment('received', 7, { environment: Readable.from([stream]) }, async () => undefined, { import: 'in-progress', description: 'from afar' });
    assert.equal(await readFrom(b, 'received', 'etc/hostname'), 'box\n');
    assert.deepEqual((await listed(b)).find((e) => e[0] === 'received'), ['received', 7, null, false, false, false]);
    const received = (await b.listEnvironments()).find((e) => e.name === 'received');
    assert.equal(received?.meta['import'], 'in-progress', 'the metadata came with its name');
    assert.equal(received?.meta['description'], 'from afar');
    await b.destroyEnvironment('received');
    // What a refused receive left under a temporary name is nothing recover() still has to remove from the listing.
    assert.deepEqual((await listed(b)).map((e) => e[0]), ['a', 'b', 'd']);
  });

  await t.test('destroy: refuses the default and what does not exist; the pristine stays while a clone needs it', async () => {
    await b.setDefault('d');
    assert.deepEqual((await listed(b)).filter((e) => e[4]).map((e) => e[0]), ['d']);
    await assert.rejects(b.destroyEnvironment('d'), refusedWith('REFUSED'));
    await b.setDefault('b');
    await b.destroyEnvironment('d');
    await assert.rejects(b.destroyEnvironment('d'), refusedWith('NOT_FOUND'));
    // Its snapshots went with it.
    assert.deepEqual(snapshotsOf(await b.listSnapshots()), [['a', 's1', 1]]);
    await assert.rejects(b.destroyEnvironment('../d'), refusedWith('INVALID_NAME'));
    // b is a clone of generation 1's pristine snapshot: it stays, whichever environment goes.
    await assert.rejects(b.destroyPristine(1), refusedWith('REFUSED'));
    await assert.rejects(b.destroyPristine(9), refusedWith('NOT_FOUND'));
    await b.destroyEnvironment('a');
    assert.deepEqual(await b.listSnapshots(), []);
    assert.deepEqual((await b.listPristines()).map((x) => x.generation), [1]);
    assert.equal(await readFrom(b, 'b', 'etc/motd'), 'one\n');
    assert.deepEqual(await listed(b), [['b', 1, null, false, true, true]]);
    await assert.rejects(b.destroyEnvironment('b'), refusedWith('REFUSED'));
  });
}

for (const [kind, make] of Object.entries(SUBJECTS)) {
  test(`the backend contract on ${kind}`, async (t) => {
    const s = await make();
    try {
      await contract(t, s);
    } finally {
      await s.cleanup();
    }
  });
}
