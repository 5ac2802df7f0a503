/**
 * A pool that turns read-only while staging runs (the test remounts its own
 * loop-file Btrfs read-only under the updater's feet). Staging fails saying
 * so; what it could not undo then (destroying the clone) is finished by the
 * next run once the filesystem is writable again, which then stages cleanly.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { run } from '../../../src/process/run.js';
import { makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { BIN, sysprime } from '../../fixtures/cli.js';

describe('a pool that turns read-only mid-run (btrfs)', () => {
  let s: Scratch;
  let dir: string;
  const sp = (...args: string[]) => sysprime(args, { config: s.config });
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-ro-'));
    const script = join(dir, 'update.sh');
    writeFileSync(
      script,
      `#!/bin/sh
set -e
if [ -f "${dir}/slow" ]; then touch "${dir}/started"; while [ ! -f "${dir}/go" ]; do sleep 0.1; done; fi
echo 2 > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"
`,
    );
    chmodSync(script, 0o755);
    s = await makeScratch('btrfs', `[update]\nmethod = "command"\ncommand = "${script}"\nchroot = false\n`);
    assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
  });
  after(async () => {
    // Writable again whatever happened, so the cleanup can delete.
    if (s) await run('mount', ['-o', 'remount,rw', s.where], { allowFailure: true });
    await s?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('staging fails naming the read-only filesystem; the next run after it is writable recovers', { timeout: 300_000 }, async () => {
    writeFileSync(join(dir, 'slow'), '');
    const child = spawn(process.execPath, [BIN, '--config', s.config, 'stage'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', r));
    try {
      for (let i = 0; i < 600 && !existsSync(join(dir, 'started')); i++) await sleep(100);
      assert.ok(existsSync(join(dir, 'started')), 'the update started');
      await run('mount', ['-o', 'remount,ro', s.where]);
      writeFileSync(join(dir, 'go'), '');
      const code = await exited;
      assert.equal(code, 3, stderr);
      assert.match(stderr, /failed at step "apply the updates/);
      assert.match(stderr, /Read-only file system/);
      // The clone could not be destroyed on a read-only filesystem: said, with what to do.
      assert.match(stderr, /run `sysprime doctor`/);
    } finally {
      child.kill('SIGKILL');
      rmSync(join(dir, 'slow'), { force: true });
      rmSync(join(dir, 'started'), { force: true });
      rmSync(join(dir, 'go'), { force: true });
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
