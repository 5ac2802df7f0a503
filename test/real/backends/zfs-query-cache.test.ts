/**
 * ZFS's answers kept between the reads of one command (query-cache.ts): on
 * a real pool, every question answered from what was read before equals
 * zfs's own answer to it, and anything that may change the pool is seen.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readOne, readTree, zfs, zpool } from '../../../src/backends/zfs/commands.js';
import type { DatasetRecord } from '../../../src/backends/zfs/parse.js';
import { TTL_MS, cachedTree, keepTree, readStarts, withZfsQueryCache } from '../../../src/backends/zfs/query-cache.js';
import { othersMayHaveChanged, run, watchCommands } from '../../../src/process/run.js';
import { makeZfsPool, type ZfsPool } from '../../fixtures/zfs-pool.js';

let pool: ZfsPool;
let R: string;
/** `zfs get` and `zpool list` processes started. */
let reads = 0;
watchCommands((file, args) => {
  const tool = file.split('/').pop();
  if ((tool === 'zfs' && args[0] === 'get') || (tool === 'zpool' && args[0] === 'list')) reads++;
  return () => undefined;
});

before(async () => {
  pool = await makeZfsPool();
  R = `${pool.name}/ROOT`;
  await run('zfs', ['create', '-o', 'mountpoint=none', '-o', 'org.sysprime:inherited=yes', R]);
  await run('zfs', ['create', '-o', 'canmount=noauto', '-o', 'org.sysprime:x=1', `${R}/a`]);
  await run('zfs', ['snapshot', `${R}/a@s`]);
  await run('zfs', ['create', '-o', 'canmount=noauto', `${R}/b`]);
  await run('zfs', ['create', '-o', 'canmount=off', `${R}/b/var`]);
  await run('zfs', ['snapshot', '-r', `${R}/b@t`]);
  // A sibling whose name starts with another's: not below it.
  await run('zfs', ['create', '-o', 'canmount=noauto', `${R}/a-b`]);
  await run('zfs', ['snapshot', `${R}/a@s2`]);
});

after(async () => {
  await pool?.cleanup();
});

/** By name: zfs prints user properties in no fixed order (two reads of `all` in a row can differ). */
const plain = (records: readonly (DatasetRecord | null)[]): unknown =>
  records.map((r) => (r === null ? null : { name: r.name, props: [...r.props].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) }));

/** Questions a command asks, narrower than the reads that come first. */
function questions(): (() => Promise<unknown>)[] {
  return [
    async () => plain(await readTree(`${R}/a`, ['type'])),
    async () => plain(await readTree(`${R}/b`, ['type', 'canmount', 'mountpoint'])),
    async () => plain(await readTree(`${R}/b`, ['mountpoint'])),
    // Snapshots have no mount point: `-` by name, left out of `all`.
    async () => plain(await readTree(`${R}/a`, ['type', 'canmount', 'mountpoint'])),
    async () => plain([await readOne(`${R}/a`, ['type', 'org.sysprime:x', 'org.sysprime:unset', 'org.sysprime:inherited'])]),
    async () => plain([await readOne(`${R}/a@s`, ['type', 'createtxg'])]),
    async () => plain([await readOne(`${R}/a@s`, 'all')]),
    async () => plain([await readOne(`${R}/b/var`, ['mountpoint', 'canmount', 'org.sysprime:x'])]),
    async () => plain([await readOne(`${R}/b/var@t`, ['mountpoint'])]),
    async () => plain([await readOne(`${R}/missing`, ['type'])]),
    async () => plain([await readOne(`${R}/a@missing`, ['type'])]),
    async () => (await zpool(['list', '-H', '-o', 'name,bootfs', pool.name])).stdout,
    async () => plain(await readTree(R, 'all')),
  ];
}

test('every answer kept from a wider read is the one zfs gives, and fewer processes ask it', async () => {
  const fresh: unknown[] = [];
  for (const q of questions()) fresh.push(await q());
  for (const primer of [() => readTree(R, 'all'), () => readTree(R, ['type', 'canmount', 'mountpoint', 'createtxg', 'org.sysprime:x', 'org.sysprime:unset', 'org.sysprime:inherited'])]) {
    await withZfsQueryCache(async () => {
      await primer();
      await zpool(['list', '-H', '-o', 'name,bootfs', pool.name]);
      const before = reads;
      const kept: unknown[] = [];
      for (const q of questions()) kept.push(await q());
      assert.deepEqual(kept, fresh);
      // Some must go to zfs (a native property `all` did not print; a read of `all` after narrower ones), most not.
      assert.ok(reads - before < questions().length / 2, `${reads - before} of ${questions().length} questions went to zfs`);
    });
  }
});

test('outside a command nothing is kept', async () => {
  const before = reads;
  await readTree(R, ['type']);
  await readTree(R, ['type']);
  assert.equal(reads - before, 2);
});

test('a change through any command is seen at once, and a read that overlapped one is not kept', async () => {
  await withZfsQueryCache(async () => {
    const x = async (): Promise<string | undefined> => (await readOne(`${R}/a`, ['org.sysprime:x']))?.props.get('org.sysprime:x')?.value;
    assert.equal(await x(), '1');
    await zfs(['set', 'org.sysprime:x=2', `${R}/a`]);
    assert.equal(await x(), '2');
    // Not through the ZFS backend's own wrapper: every command started through run() counts.
    await run('zfs', ['set', 'org.sysprime:x=3', `${R}/a`]);
    assert.equal(await x(), '3');
    await readTree(R, 'all');
    const before = reads;
    await run('true', []);
    await readTree(R, 'all');
    assert.equal(reads - before, 1, 'a command that is not a read of ZFS drops what was kept');
    // A read started while a change runs answers either way, but is not kept.
    await run('true', []);
    await Promise.all([zfs(['set', 'org.sysprime:x=4', `${R}/a`]), readOne(`${R}/a`, ['org.sysprime:x'])]);
    assert.equal(await x(), '4');
    // The pool's boot file system, set by zpool: a kept `zpool list` is not answered after it.
    const bootfs = async (): Promise<string> => (await zpool(['list', '-H', '-o', 'name,bootfs', pool.name])).stdout.trim().split('\t')[1] ?? '';
    assert.equal(await bootfs(), '-');
    await zpool(['set', `bootfs=${R}/a`, pool.name]);
    assert.equal(await bootfs(), `${R}/a`);
    await run('zpool', ['set', 'bootfs=', pool.name]);
    assert.equal(await bootfs(), '-');
    // Another process's work made visible (the lock taken after waiting for it) drops what was kept.
    await readTree(R, 'all');
    const kept = reads;
    othersMayHaveChanged();
    await readTree(R, 'all');
    assert.equal(reads - kept, 1, 'read again after othersMayHaveChanged');
    // A snapshot through the wrapper: the recursive read of the root shows it after.
    await zfs(['snapshot', `${R}/a@later`]);
    assert.ok((await readTree(R, ['type'])).some((r) => r.name === `${R}/a@later`));
    assert.notEqual(await readOne(`${R}/a@later`, ['type']), null);
  });
});

test('an answer is not kept longer than its time', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
  await withZfsQueryCache(async () => {
    await readTree(R, 'all');
    const before = reads;
    await readTree(R, 'all');
    assert.equal(reads - before, 0);
    t.mock.timers.tick(TTL_MS + 1);
    await readTree(R, 'all');
    assert.equal(reads - before, 1);
  });
});

test('a read is not kept when a command ran while it was asked, nor when zfs named a property otherwise than asked', async () => {
  await withZfsQueryCache(async () => {
    const record = (props: [string, string][]): DatasetRecord => ({ name: R, props: new Map(props.map(([k, v]) => [k, { value: v, source: '-' }])) });
    const started = readStarts();
    await run('true', []);
    keepTree(started, R, false, ['type'], [record([['type', 'filesystem']])]);
    assert.equal(cachedTree(R, false, ['type']), undefined, 'a command ran between the question and its answer');
    // `lused` comes back as `logicalused`: kept, it would answer the next `lused` with nothing.
    keepTree(readStarts(), R, false, ['org.sysprime:alias'], [record([['org.sysprime:other', 'x']])]);
    assert.equal(cachedTree(R, false, ['org.sysprime:alias']), undefined);
    keepTree(readStarts(), R, false, ['type'], [record([['type', 'filesystem']])]);
    assert.deepEqual(cachedTree(R, false, ['type']), [record([['type', 'filesystem']])], 'the same, asked and answered in one epoch, is kept');
  });
});
