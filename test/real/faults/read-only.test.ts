/**
 * A pool that turns read-only while staging runs (the test remounts its own
 * loop-file Btrfs read-only under the updater's feet). Staging fails saying
 * so; what it could not undo then (destroying the clone) is finished by the
 * next run once the filesystem is writable again, which then stages cleanly.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { sysprime } from '../../fixtures/cli.js';
import { slowUpdater, stageWith } from './mid-staging.js';

describe('a pool that turns read-only mid-run (btrfs)', () => {
  let s: Scratch;
  let dir: string;
  const sp = (...args: string[]) => sysprime(args, { config: s.config });
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-ro-'));
    s = await makeScratch('btrfs', `[update]\nmethod = "command"\ncommand = "${slowUpdater(dir)}"\nchroot = false\n`);
    assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
  });
  after(async () => {
    // Writable again whatever happened, so the cleanup can delete.
    if (s) await run('mount', ['-o', 'remount,rw', s.where], { allowFailure: true });
    await s?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('staging fails naming the read-only filesystem; the next run after it is writable recovers', { timeout: 300_000 }, async () => {
    try {
      const { code, stderr } = await stageWith(s.config, dir, () => run('mount', ['-o', 'remount,ro', s.where]).then(() => undefined));
      assert.equal(code, 3, stderr);
      assert.match(stderr, /failed at step "apply the updates/);
      assert.match(stderr, /Read-only file system/);
      // The clone could not be destroyed on a read-only filesystem: said, with what to do.
      assert.match(stderr, /run `sysprime doctor`/);
    } finally {
      await run('mount', ['-o', 'remount,rw', s.where]);
    }
    const r = await sp('--json', 'stage');
    assert.equal(r.code, 0, r.stderr);
    const out = r.json<{ kind: string; name: string; recovered: string[] }>();
    assert.equal(out.kind, 'staged');
    assert.ok(out.recovered.some((l) => /finished undoing the stage that failed/.test(l)), JSON.stringify(out.recovered));
    const envs = (await sp('--json', 'list')).json<{ name: string }[]>();
    assert.deepEqual(envs.map((e) => e.name).sort(), ['base', out.name].sort(), 'nothing of the failed staging is left');
    const doctor = await sp('doctor');
    assert.equal(doctor.code, 0, doctor.stdout);
  });
});
