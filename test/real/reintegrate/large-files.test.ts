/**
 * Large and sparse files carried by reintegration, on real filesystems:
 * a user's disk image of just over 2 GiB in /home (1 MiB of it data, the rest holes), a
 * sparse file of that size the admin changed in /etc, a smaller image, text files
 * just over the size read whole and over the size merged. Each arrives
 * with the same bytes (cmp), the same owner, mode and times, as sparse as
 * it was, while the process's memory stays bounded; on one Btrfs
 * filesystem as a clone sharing the source's extents, onto another
 * filesystem (a second Btrfs, zfs-fuse) copied with its holes kept.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chownSync, closeSync, ftruncateSync, lstatSync, mkdirSync, openSync, readFileSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { createManifest, parseRules } from '../../../src/bart/index.js';
import { planReintegration } from '../../../src/reintegrate/plan.js';
import { applyPlan } from '../../../src/reintegrate/apply.js';
import { renderReport, type ReintegrationReport } from '../../../src/reintegrate/report.js';
import { makeBtrfsPool, type BtrfsPool } from '../../fixtures/btrfs-pool.js';
import { makeZfsPool, type ZfsPool } from '../../fixtures/zfs-pool.js';

const MiB = 1 << 20;
const GiB = 1 << 30;
/** Just over 2 GiB, Node's limit for one buffer and where 32-bit offsets end: the sizes that failed before. */
const BIG = 2 * GiB + 16 * MiB;
const RULES = parseRules('CHECK all\nIGNORE dirmtime mtime lnmtime\n');

/** Data at offsets of a file whose length is `size`; everything else is a hole. */
function writeSparse(path: string, size: number, pieces: { offset: number; data: Buffer }[]): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
    for (const p of pieces) writeSync(fd, p.data, 0, p.data.length, p.offset);
  } finally {
    closeSync(fd);
  }
}

/** `count` lines of text (about 55 bytes each), `edits` replacing some of them. */
function text(count: number, edits: Record<number, string> = {}): string {
  return Array.from({ length: count }, (_, i) => (edits[i] ?? `line ${i} of a configuration too long to read whole`) + '\n').join('');
}
/** About 2 MiB: more than is read whole, less than the merge limit. */
const LONG = 40_000;
/** About 18 MiB: more than the merge limit. */
const HUGE = 330_000;

const A = randomBytes(MiB);
const B = randomBytes(MiB);
const C = randomBytes(MiB);
const D = randomBytes(MiB);

/** The installed tree: a sparse file in /etc, two long configurations, alice's home. */
function writeBase(root: string): void {
  mkdirSync(join(root, 'etc'), { recursive: true });
  mkdirSync(join(root, 'home/alice'), { recursive: true });
  chownSync(join(root, 'home/alice'), 1000, 1000);
  writeSparse(join(root, 'etc/app.img'), BIG, [{ offset: GiB, data: A }]);
  writeFileSync(join(root, 'etc/long.conf'), text(LONG));
  writeFileSync(join(root, 'etc/huge.conf'), text(HUGE));
}

/** What the admin and the users did on the running environment. */
function writeOurs(root: string): void {
  // The admin changed 1 MiB of the big file, past 2 GiB.
  const fd = openSync(join(root, 'etc/app.img'), 'r+');
  writeSync(fd, B, 0, B.length, 2 * GiB + 4 * MiB);
  closeSync(fd);
  writeFileSync(join(root, 'etc/long.conf'), text(LONG, { 0: 'admin edit' }));
  writeFileSync(join(root, 'etc/huge.conf'), text(HUGE, { 0: 'admin edit' }));
  // A user's disk images: just over 2 GiB with 1 MiB of data, 256 MiB with 1 MiB.
  const disk = join(root, 'home/alice/disk.img');
  writeSparse(disk, BIG, [{ offset: 2 * GiB + 8 * MiB, data: C }]);
  chownSync(disk, 1000, 1000);
  const vm = join(root, 'home/alice/vm.img');
  writeSparse(vm, 256 * MiB, [{ offset: 128 * MiB, data: D }]);
  chownSync(vm, 1000, 1000);
  utimesSync(vm, new Date('2025-01-02T03:04:05Z'), new Date('2025-01-02T03:04:05Z'));
}

/** The update changed the two configurations at their ends. */
function writeTheirs(root: string): void {
  writeFileSync(join(root, 'etc/long.conf'), text(LONG, { 30000: 'update edit' }));
  writeFileSync(join(root, 'etc/huge.conf'), text(HUGE, { 200000: 'update edit' }));
}

const CARRIED = ['etc/app.img', 'home/alice/disk.img', 'home/alice/vm.img'];

/** Physical extents of a file (filefrag -v): equal lists mean the two files share their data. */
async function extents(path: string): Promise<string[]> {
  const out = (await run('filefrag', ['-v', path])).stdout;
  return [...out.matchAll(/^\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+)\.\.\s*(\d+):/gm)].map((m) => `${m[1]}..${m[2]}`);
}

interface Trees {
  base: string;
  ours: string;
  theirs: string;
  target: string;
}

let report: ReintegrationReport;

/** Manifests, plan (with /home as shared data), apply; the peak memory the apply added. */
async function reintegrate(t: Trees): Promise<number> {
  const manifest = async (root: string) => (await createManifest({ root, rules: RULES, hash: 'xxh64', threads: 1 })).manifest;
  const plan = planReintegration({ base: await manifest(t.base), ours: await manifest(t.ours), theirs: await manifest(t.theirs), rules: RULES, shared: ['/home'] });
  const peak = process.resourceUsage().maxRSS * 1024;
  report = await applyPlan(plan, { baseRoot: t.base, oursRoot: t.ours, theirsRoot: t.theirs, targetRoot: t.target, durable: 'at-end' });
  return process.resourceUsage().maxRSS * 1024 - peak;
}

async function assertCarried(t: Trees, grown: number): Promise<void> {
  assert.equal(report.counts.failed, 0, renderReport(report));
  // Before, each file was read whole: 256 MiB for vm.img (and the ones over 2 GiB failed, over Node's 2 GiB limit).
  assert.ok(grown < 64 * MiB, `the apply added ${Math.round(grown / MiB)} MiB to the process's peak memory`);
  for (const rel of CARRIED) {
    const item = report.items.find((i) => i.path === `/${rel}`);
    assert.equal(item?.outcome, 'applied', `${rel}: ${JSON.stringify(item)}`);
    const ours = join(t.ours, rel);
    const target = join(t.target, rel);
    const cmp = await run('cmp', [ours, target], { allowFailure: true });
    assert.equal(cmp.exitCode, 0, `${rel}: ${cmp.stdout}${cmp.stderr}`);
    const [o, g] = [lstatSync(ours), lstatSync(target)];
    assert.deepEqual([g.size, g.mode, g.uid, g.gid], [o.size, o.mode, o.uid, o.gid], `${rel}: size, mode, owner`);
    // Times are set to the nearest millisecond, as for every file reintegration writes.
    assert.ok(Math.abs(g.mtimeMs - o.mtimeMs) < 1, `${rel}: mtime ${g.mtimeMs}, the admin's ${o.mtimeMs}`);
    // 1 or 2 MiB of data: holes stay holes (a copy that wrote them out would take the whole size).
    assert.ok(g.blocks * 512 <= 4 * MiB, `${rel} takes ${g.blocks * 512} bytes on disk`);
  }
}

function assertMerges(t: Trees): void {
  const long = report.items.find((i) => i.path === '/etc/long.conf');
  assert.equal(long?.outcome, 'merged', JSON.stringify(long));
  assert.equal(readFileSync(join(t.target, 'etc/long.conf'), 'utf8'), text(LONG, { 0: 'admin edit', 30000: 'update edit' }));
  // Over 16 MiB a merge is not tried: the admin's in place, the update's beside it.
  const huge = report.items.find((i) => i.path === '/etc/huge.conf');
  assert.equal(huge?.outcome, 'conflict', JSON.stringify(huge));
  assert.match(huge.detail, /larger than 16 MiB/);
  assert.ok(readFileSync(join(t.target, 'etc/huge.conf')).equals(readFileSync(join(t.ours, 'etc/huge.conf'))));
  assert.ok(readFileSync(join(t.target, 'etc/huge.conf.sysprime-new')).equals(readFileSync(join(t.theirs, 'etc/huge.conf'))));
}

async function copyTree(from: string, to: string): Promise<void> {
  // What the target starts as: a copy of the update's tree, holes kept.
  await run('cp', ['-a', '--sparse=always', `${from}/.`, to]);
}


/** The four trees of a reintegration: base, the admin's (ours), the update's (theirs), and the target made from theirs. */
async function fillTrees(t: Trees): Promise<void> {
    for (const d of Object.values(t)) mkdirSync(d);
    writeBase(t.base);
    await copyTree(t.base, t.ours);
    writeOurs(t.ours);
    await copyTree(t.base, t.theirs);
    writeTheirs(t.theirs);
    await copyTree(t.theirs, t.target);
}

describe('large and sparse files on one Btrfs filesystem', () => {
  let pool: BtrfsPool;
  let t: Trees;
  before(async () => {
    pool = await makeBtrfsPool({ sizeMiB: 512 });
    const sub = (n: string) => join(pool.top, n);
    t = { base: sub('base'), ours: sub('ours'), theirs: sub('theirs'), target: sub('target') };
    await run('btrfs', ['-q', 'subvolume', 'create', t.base]);
    writeBase(t.base);
    await run('btrfs', ['-q', 'subvolume', 'snapshot', t.base, t.ours]);
    writeOurs(t.ours);
    await run('btrfs', ['-q', 'subvolume', 'snapshot', t.base, t.theirs]);
    writeTheirs(t.theirs);
    await run('btrfs', ['-q', 'subvolume', 'snapshot', t.theirs, t.target]);
  });
  after(async () => {
    await pool?.cleanup();
  });

  test('carried as clones: same bytes, same metadata, holes kept, memory bounded', async (c) => {
    const grown = await reintegrate(t);
    c.diagnostic(`the apply added ${Math.round(grown / MiB)} MiB to the peak memory`);
    await assertCarried(t, grown);
    await run('sync', ['--file-system', t.target]);
    for (const rel of CARRIED) {
      const theirs = await extents(join(t.ours, rel));
      assert.ok(theirs.length > 0, rel);
      assert.deepEqual(await extents(join(t.target, rel)), theirs, `${rel} shares the admin's extents`);
    }
    assertMerges(t);
  });

  test('applying the same plan again changes nothing', async () => {
    await reintegrate(t);
    for (const rel of CARRIED) assert.equal(report.items.find((i) => i.path === `/${rel}`)?.outcome, 'unchanged', rel);
    assert.equal(report.counts.failed, 0, renderReport(report));
  });
});

describe('large and sparse files onto another Btrfs filesystem (no clone possible)', () => {
  let pool: BtrfsPool;
  let other: BtrfsPool;
  let t: Trees;
  before(async () => {
    pool = await makeBtrfsPool({ sizeMiB: 512 });
    other = await makeBtrfsPool({ sizeMiB: 512 });
    t = { base: join(pool.top, 'base'), ours: join(pool.top, 'ours'), theirs: join(pool.top, 'theirs'), target: join(other.top, 'target') };
    await fillTrees(t);
  });
  after(async () => {
    await other?.cleanup();
    await pool?.cleanup();
  });

  test('copied with their holes: same bytes, same metadata, memory bounded', async (c) => {
    const grown = await reintegrate(t);
    c.diagnostic(`the apply added ${Math.round(grown / MiB)} MiB to the peak memory`);
    await assertCarried(t, grown);
    assertMerges(t);
  });
});

describe('large and sparse files on zfs-fuse (no clone)', () => {
  let pool: ZfsPool;
  let t: Trees;
  before(async () => {
    pool = await makeZfsPool({ sizeMiB: 512 });
    const fs = join(pool.dir, 'fs');
    mkdirSync(fs);
    await run('zfs', ['create', '-o', `mountpoint=${fs}`, `${pool.name}/trees`]);
    t = { base: join(fs, 'base'), ours: join(fs, 'ours'), theirs: join(fs, 'theirs'), target: join(fs, 'target') };
    await fillTrees(t);
  });
  after(async () => {
    if (pool !== undefined) await run('zfs', ['unmount', `${pool.name}/trees`], { allowFailure: true });
    await pool?.cleanup();
  });

  test('copied with their holes: same bytes, same metadata, memory bounded', async (c) => {
    const grown = await reintegrate(t);
    c.diagnostic(`the apply added ${Math.round(grown / MiB)} MiB to the peak memory`);
    await assertCarried(t, grown);
    assertMerges(t);
  });
});
