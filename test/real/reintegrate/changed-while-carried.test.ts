/**
 * Large files that change while reintegration carries them, and large
 * files it cannot merge, on real Btrfs filesystems.
 *
 * - A file over INLINE_MAX written to in the middle of its copy, with its
 *   mtime put back (`touch -r`): that copy is not counted; the file is read
 *   again once still and carried as it is then, never torn, whether the
 *   copy was a clone (one filesystem) or bytes (onto another). The change
 *   time is what gives it away: size and mtime are as before.
 * - One written all the time it is carried (a running VM's disk image):
 *   after reading it again a few times, the item fails with "changed while
 *   sysprime was reading it" and nothing is left in the target.
 * - Without the update's tree, a file over MERGE_MAX that both changed and
 *   whose target version is not the update's as recorded: a conflict with
 *   both versions kept, never "skipped".
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { createManifest, parseRules } from '../../../src/bart/index.js';
import { planReintegration } from '../../../src/reintegrate/plan.js';
import { applyPlan } from '../../../src/reintegrate/apply.js';
import { renderReport, type ReintegrationReport } from '../../../src/reintegrate/report.js';
import { makeBtrfsPool, type BtrfsPool } from '../../fixtures/btrfs-pool.js';

const MiB = 1 << 20;
const RULES_TEXT = 'CHECK all\nIGNORE dirmtime mtime lnmtime\n';
const RULES = parseRules(RULES_TEXT);

interface Trees {
  base: string;
  ours: string;
  theirs: string;
  target: string;
}

const IMAGE = 'etc/vm.img';

/** The state field of /proc/<pid>/stat ('T' once the process stopped itself). */
function stateOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/**
 * Reintegrate in a child process that stops itself inside the first file
 * it writes (SYSPRIME_FAULT_INJECT=stop:reintegrate:writing-1), run
 * `meanwhile` while it is stopped, let it go on; its report.
 */
async function reintegrateStoppedInCopy(t: Trees, meanwhile: () => void): Promise<ReintegrationReport> {
  const src = (m: string) => JSON.stringify(new URL(`../../../src/${m}`, import.meta.url).href);
  const code = `
    const { createManifest, parseRules } = await import(${src('bart/index.js')});
    const { planReintegration } = await import(${src('reintegrate/plan.js')});
    const { applyPlan } = await import(${src('reintegrate/apply.js')});
    const t = ${JSON.stringify(t)};
    const rules = parseRules(${JSON.stringify(RULES_TEXT)});
    const manifest = async (root) => (await createManifest({ root, rules, hash: 'xxh64', threads: 1 })).manifest;
    const plan = planReintegration({ base: await manifest(t.base), ours: await manifest(t.ours), theirs: await manifest(t.theirs), rules, shared: [] });
    const report = await applyPlan(plan, { baseRoot: t.base, oursRoot: t.ours, theirsRoot: t.theirs, targetRoot: t.target, durable: 'at-end' });
    process.stdout.write(JSON.stringify(report));`;
  const script = join(t.base, '..', `reintegrate-${process.pid}.mjs`);
  writeFileSync(script, code);
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, SYSPRIME_FAULT_INJECT: 'stop:reintegrate:writing-1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  const deadline = Date.now() + 120_000;
  while (stateOf(child.pid!) !== 'T') {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the child never stopped inside its copy (exit ${child.exitCode}): ${err}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  try {
    meanwhile();
  } finally {
    child.kill('SIGCONT');
  }
  assert.equal(await exited, 0, err);
  rmSync(script);
  return JSON.parse(out) as ReintegrationReport;
}

/** Write 1 MiB of new bytes into the middle of the file, same size, then put its times back with `touch -r` (to the nanosecond). */
function writeInPlaceKeepingMtime(path: string): void {
  const before = statSync(path);
  const ref = `${path}.times`;
  writeFileSync(ref, '');
  const touch = (from: string, to: string) => assert.equal(spawnSync('touch', ['-r', from, to]).status, 0);
  touch(path, ref);
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, randomBytes(MiB), 0, MiB, 2 * MiB);
  } finally {
    closeSync(fd);
  }
  touch(ref, path);
  rmSync(ref);
  const after = statSync(path);
  assert.equal(after.size, before.size);
  assert.equal(after.mtimeMs, before.mtimeMs, 'mtime put back');
}

/** The copy the write interrupted was not kept: the file was read again and carried whole, as it is after the write. */
function assertCarriedAsItIsThen(t: Trees, report: ReintegrationReport): void {
  const item = report.items.find((i) => i.path === `/${IMAGE}`);
  assert.equal(item?.outcome, 'applied', `${JSON.stringify(item)}\n${renderReport(report)}`);
  assert.ok(readFileSync(join(t.target, IMAGE)).equals(readFileSync(join(t.ours, IMAGE))), 'the copy is the file as it is after the write, whole');
  assert.deepEqual(readdirSync(join(t.target, 'etc')).filter((n) => n.startsWith('.sysprime-tmp')), [], 'no temporary left');
}

/** A writer that rewrites 1 MiB in the middle of `path` without pause until killed. */
function keepWriting(path: string): { stop(): void } {
  const child = spawn('sh', ['-c', `while :; do dd if=/dev/urandom of="$0" bs=1M count=1 seek=2 conv=notrunc status=none; done`, path], { stdio: 'ignore' });
  return { stop: () => child.kill('SIGKILL') };
}

function assertNotCarried(t: Trees, report: ReintegrationReport): void {
  const item = report.items.find((i) => i.path === `/${IMAGE}`);
  assert.equal(item?.outcome, 'failed', `${JSON.stringify(item)}\n${renderReport(report)}`);
  assert.match(item.detail, /changed while sysprime was reading it/);
  assert.ok(!existsSync(join(t.target, IMAGE)), 'no torn copy in the target');
  assert.deepEqual(readdirSync(join(t.target, 'etc')).filter((n) => n.startsWith('.sysprime-tmp')), [], 'no temporary left');
}

/** base; the admin added an 8 MiB disk image to /etc (ours); the update changed nothing of it. */
async function fill(t: Trees, subvolumes: boolean): Promise<void> {
  const make = async (d: string, from?: string) => {
    if (subvolumes) await run('btrfs', ['-q', 'subvolume', ...(from ? ['snapshot', from, d] : ['create', d])]);
    else if (from) {
      mkdirSync(d);
      await run('cp', ['-a', `${from}/.`, d]);
    } else mkdirSync(d);
  };
  await make(t.base);
  mkdirSync(join(t.base, 'etc'));
  writeFileSync(join(t.base, 'etc/hostname'), 'base\n');
  await make(t.ours, t.base);
  writeFileSync(join(t.ours, IMAGE), randomBytes(8 * MiB));
  await make(t.theirs, t.base);
  await make(t.target, t.theirs);
}

describe('a large file written while it is carried (one Btrfs filesystem: a clone)', () => {
  let pool: BtrfsPool;
  let t: Trees;
  before(async () => {
    pool = await makeBtrfsPool({ sizeMiB: 256 });
    const sub = (n: string) => join(pool.top, n);
    t = { base: sub('base'), ours: sub('ours'), theirs: sub('theirs'), target: sub('target') };
    await fill(t, true);
  });
  after(async () => {
    await pool?.cleanup();
  });

  test('written during the copy with its mtime put back: read again, carried as it is then', async () => {
    const report = await reintegrateStoppedInCopy(t, () => writeInPlaceKeepingMtime(join(t.ours, IMAGE)));
    assertCarriedAsItIsThen(t, report);
    assert.equal(report.counts.failed, 0);
  });
});

describe('a large file written while it is carried (onto another Btrfs filesystem: bytes)', () => {
  let pool: BtrfsPool;
  let other: BtrfsPool;
  let t: Trees;
  before(async () => {
    pool = await makeBtrfsPool({ sizeMiB: 256 });
    other = await makeBtrfsPool({ sizeMiB: 256 });
    t = { base: join(pool.top, 'base'), ours: join(pool.top, 'ours'), theirs: join(pool.top, 'theirs'), target: join(other.top, 'target') };
    await fill(t, false);
  });
  after(async () => {
    await other?.cleanup();
    await pool?.cleanup();
  });

  test('written half-way through the copy with its mtime put back: read again, carried as it is then, no torn copy', async () => {
    const report = await reintegrateStoppedInCopy(t, () => writeInPlaceKeepingMtime(join(t.ours, IMAGE)));
    assertCarriedAsItIsThen(t, report);
    rmSync(join(t.target, IMAGE));
  });

  test('written all the time it is carried: failed after reading it again, no torn copy left', async () => {
    let writer: { stop(): void } | undefined;
    try {
      const report = await reintegrateStoppedInCopy(t, () => {
        writeInPlaceKeepingMtime(join(t.ours, IMAGE));
        writer = keepWriting(join(t.ours, IMAGE));
      });
      assertNotCarried(t, report);
      assert.equal(report.counts.failed, 1);
    } finally {
      writer?.stop();
    }
  });
});

/** `count` lines of about 55 bytes, `edits` replacing some of them. */
function text(count: number, edits: Record<number, string> = {}): string {
  return Array.from({ length: count }, (_, i) => (edits[i] ?? `line ${i} of a configuration too long to read whole`) + '\n').join('');
}
/** About 18 MiB: more than MERGE_MAX. */
const HUGE = 330_000;

describe('without the update tree, an oversized file the target holds in a version of its own', () => {
  let pool: BtrfsPool;
  let t: Trees;
  before(async () => {
    pool = await makeBtrfsPool({ sizeMiB: 512 });
    const sub = (n: string) => join(pool.top, n);
    t = { base: sub('base'), ours: sub('ours'), theirs: sub('theirs'), target: sub('target') };
    await run('btrfs', ['-q', 'subvolume', 'create', t.base]);
    mkdirSync(join(t.base, 'etc'));
    writeFileSync(join(t.base, 'etc/huge.conf'), text(HUGE));
    writeFileSync(join(t.base, 'etc/grown.conf'), text(100));
    await run('btrfs', ['-q', 'subvolume', 'snapshot', t.base, t.ours]);
    writeFileSync(join(t.ours, 'etc/huge.conf'), text(HUGE, { 0: 'admin edit' }));
    writeFileSync(join(t.ours, 'etc/grown.conf'), text(100, { 0: 'admin edit' }));
    await run('btrfs', ['-q', 'subvolume', 'snapshot', t.base, t.theirs]);
    writeFileSync(join(t.theirs, 'etc/huge.conf'), text(HUGE, { 200000: 'update edit' }));
    writeFileSync(join(t.theirs, 'etc/grown.conf'), text(100, { 50: 'update edit' }));
    await run('btrfs', ['-q', 'subvolume', 'snapshot', t.theirs, t.target]);
    // Changed in the target since the update's manifest was made: the only copies of these versions.
    // grown.conf is small in every tree but the target (it used to be "skipped"); huge.conf is large
    // everywhere (it used to be replaced by the admin's version, the target's lost).
    writeFileSync(join(t.target, 'etc/huge.conf'), text(HUGE, { 200000: 'update edit', 300000: 'changed since' }));
    writeFileSync(join(t.target, 'etc/grown.conf'), text(HUGE, { 50: 'update edit', 300000: 'grown since' }));
  });
  after(async () => {
    await pool?.cleanup();
  });

  test('a conflict, the admin\'s version in place and the target\'s beside it; again: unchanged', async () => {
    const manifest = async (root: string) => (await createManifest({ root, rules: RULES, hash: 'xxh64', threads: 1 })).manifest;
    const plan = planReintegration({ base: await manifest(t.base), ours: await manifest(t.ours), theirs: await manifest(t.theirs), rules: RULES, shared: [] });
    const files = ['etc/huge.conf', 'etc/grown.conf'];
    const targetVersion = new Map(files.map((f) => [f, readFileSync(join(t.target, f))]));
    const report = await applyPlan(plan, { baseRoot: t.base, oursRoot: t.ours, targetRoot: t.target, durable: 'at-end' });
    for (const f of files) {
      const item = report.items.find((i) => i.path === `/${f}`);
      assert.equal(item?.outcome, 'conflict', `${f}: ${JSON.stringify(item)}\n${renderReport(report)}`);
      assert.match(item.detail, /larger than 16 MiB/);
      assert.ok(readFileSync(join(t.target, f)).equals(readFileSync(join(t.ours, f))), `${f}: the admin's version in place`);
      assert.ok(readFileSync(join(t.target, `${f}.sysprime-new`)).equals(targetVersion.get(f)!), `${f}: the target's version beside it`);
      assert.equal(item.update, `/${f}.sysprime-new`);
    }

    const again = await applyPlan(plan, { baseRoot: t.base, oursRoot: t.ours, targetRoot: t.target, durable: 'at-end' });
    for (const f of files) {
      assert.equal(again.items.find((i) => i.path === `/${f}`)?.outcome, 'unchanged', f);
      assert.ok(readFileSync(join(t.target, `${f}.sysprime-new`)).equals(targetVersion.get(f)!), f);
    }
  });
});
