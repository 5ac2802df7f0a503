/**
 * The reintegration cases of apply.test.ts and first-boot.test.ts, run again
 * with their trees on a real Btrfs filesystem and a real zfs-fuse dataset
 * (the suites make their trees under os.tmpdir(), which follows $TMPDIR):
 * every row of the design table on both backends' filesystems. zfs-fuse
 * has no extended attributes, so there the xattr case is left out (the suite
 * probes for it); OpenZFS has them.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../../src/process/run.js';
import { makeBtrfsPool, type BtrfsPool } from '../../fixtures/btrfs-pool.js';
import { makeZfsPool, type ZfsPool } from '../../fixtures/zfs-pool.js';

const SUITES = ['apply.test.js', 'first-boot.test.js'].map((f) => fileURLToPath(new URL(f, import.meta.url)));

function runSuites(tmp: string): void {
  for (const suite of SUITES) {
    // Without NODE_TEST_CONTEXT the inner runner reports for people, not to our runner.
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', suite], { env: { ...env, TMPDIR: tmp }, encoding: 'utf8' });
    assert.equal(r.status, 0, `${suite} with TMPDIR=${tmp}:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /ℹ fail 0/);
  }
}

describe('reintegration cases on Btrfs', () => {
  let pool: BtrfsPool;
  before(async () => {
    pool = await makeBtrfsPool();
  });
  after(async () => {
    await pool?.cleanup();
  });
  test('every case passes with its trees on Btrfs', () => {
    const tmp = join(pool.top, 'tmp');
    mkdirSync(tmp);
    runSuites(tmp);
  });
});

describe('reintegration cases on ZFS', () => {
  let pool: ZfsPool;
  before(async () => {
    pool = await makeZfsPool();
  });
  after(async () => {
    await pool?.cleanup();
  });
  test('every case passes with its trees on a zfs-fuse dataset', async () => {
    const tmp = join(pool.dir, 'fs');
    mkdirSync(tmp);
    await run('zfs', ['create', '-o', `mountpoint=${tmp}`, `${pool.name}/trees`]);
    try {
      runSuites(tmp);
    } finally {
      await run('zfs', ['unmount', `${pool.name}/trees`], { allowFailure: true });
    }
  });
});
