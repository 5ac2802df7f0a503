/**
 * Two sysprime processes starting at one moment on a Btrfs machine whose
 * top-level subvolume is not mounted yet (at boot: the health checks beside
 * an admin's command, or beside the first-boot reintegration): both find it
 * unmounted and both mount it, and mount(8) refuses the second ("already
 * mounted"). Found in the VM suite, where `status` failed at boot. The
 * second must use the first's mount, and leave it to its owner.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { makeBtrfsPool } from '../../fixtures/btrfs-pool.js';
import { BIN } from '../../fixtures/cli.js';

function stateOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').charAt(0);
  } catch {
    return '';
  }
}

test('a top-level subvolume mounted by another sysprime in between is used, not mounted twice', { timeout: 120_000 }, async () => {
  const pool = await makeBtrfsPool();
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-top-race-'));
  const top = join(dir, 'top');
  mkdirSync(top);
  try {
    const config = join(dir, 'sysprime.toml');
    writeFileSync(config, `backend = "btrfs"\n[btrfs]\ntop = "${top}"\ndevice = "${pool.device}"\n[state]\ndir = "${join(dir, 'state')}"\n[boot]\nloader = "none"\n`);
    const child = spawn(process.execPath, [BIN, '--config', config, 'list'], {
      env: { ...process.env, SYSPRIME_FAULT_INJECT: 'stop:backend:btrfs:top-unmounted' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.resume();
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    const deadline = Date.now() + 60_000;
    while (stateOf(child.pid!) !== 'T') {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`sysprime never reached the point before its mount (exit ${child.exitCode}): ${err}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    // The other sysprime, first.
    await run('mount', ['-t', 'btrfs', '-o', 'subvolid=5', pool.device, top]);
    child.kill('SIGCONT');
    assert.equal(await exited, 0, err);
    assert.doesNotMatch(err, /already mounted/);
    assert.equal((await run('mountpoint', ['-q', top], { allowFailure: true })).exitCode, 0, "the other's mount is still there");
  } finally {
    await run('umount', [top], { allowFailure: true });
    await pool.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
