/**
 * Tools that hang: run()'s timeout stops the command and everything it
 * started (its process group), a command that exits but leaves a child
 * holding its output does not make sysprime wait, and a hung updater makes
 * staging fail, undo itself and name the setting that stopped it.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { run } from '../../../src/process/run.js';
import { isSysprimeError } from '../../../src/errors.js';
import { makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { sysprime } from '../../fixtures/cli.js';

/** Pids of processes running the program at `exe`. */
function runningAs(exe: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readlinkSync(`/proc/${name}/exe`) === exe) pids.push(Number(name));
    } catch {
      // gone, or a kernel thread
    }
  }
  return pids;
}

/** Wait (a little) for processes to be reaped after their group was killed. */
async function settled(exe: string): Promise<number[]> {
  for (let i = 0; i < 50; i++) {
    const left = runningAs(exe);
    if (left.length === 0) return left;
    await sleep(100);
  }
  return runningAs(exe);
}

describe('a hung tool', () => {
  let dir: string;
  /** A copy of sleep under a name of its own: the test finds exactly its own grandchildren. */
  let snooze: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-hung-'));
    snooze = join(dir, 'snooze');
    copyFileSync('/bin/sleep', snooze);
    chmodSync(snooze, 0o755);
  });
  after(() => {
    for (const pid of runningAs(snooze)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  test('run() stops the whole process group at the timeout, grandchildren too', { timeout: 60_000 }, async () => {
    const script = join(dir, 'hang.sh');
    // The grandchild runs in the background and keeps the output pipe open; the script waits on another.
    writeFileSync(script, `#!/bin/sh\n"${snooze}" 1000 &\n"${snooze}" 1001\n`);
    chmodSync(script, 0o755);
    await assert.rejects(run(script, [], { timeout: 1500 }), (err: unknown) => {
      assert.ok(isSysprimeError(err, 'TIMEOUT'), String(err));
      assert.match(err.message, /did not finish within 2 s and was stopped, with everything it started/);
      return true;
    });
    assert.deepEqual(await settled(snooze), [], 'no grandchild is left running');
  });

  test('a child that ignores SIGTERM is killed after the grace period', { timeout: 60_000 }, async () => {
    const script = join(dir, 'stubborn.sh');
    writeFileSync(script, `#!/bin/sh\ntrap '' TERM\n"${snooze}" 1000 &\nwait\n`);
    chmodSync(script, 0o755);
    await assert.rejects(run(script, [], { timeout: 1000 }), (err: unknown) => isSysprimeError(err, 'TIMEOUT'));
    assert.deepEqual(await settled(snooze), []);
  });

  test('a command that exits but leaves a child holding its output does not make run() wait for the timeout', { timeout: 60_000 }, async () => {
    const script = join(dir, 'leave.sh');
    writeFileSync(script, `#!/bin/sh\necho started\n"${snooze}" 1000 &\nexit 0\n`);
    chmodSync(script, 0o755);
    // The timeout is far away; run() must come back long before it, with the command's own result.
    const res = await run(script, [], { timeout: 3_600_000 });
    assert.equal(res.exitCode, 0);
    assert.equal(res.stdout, 'started\n');
    assert.deepEqual(await settled(snooze), [], 'what it left behind was stopped');
  });

  test('a command that finishes normally is not disturbed', async () => {
    const res = await run('/bin/sh', ['-c', 'echo ok; echo err >&2; exit 3'], { allowFailure: true, timeout: 10_000 });
    assert.equal(res.exitCode, 3);
    assert.equal(res.stdout, 'ok\n');
    assert.equal(res.stderr, 'err\n');
  });
});

describe('a hung updater', () => {
  let s: Scratch;
  let dir: string;
  let snooze: string;
  const sp = (...args: string[]) => sysprime(args, { config: s.config });
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-hung-update-'));
    snooze = join(dir, 'snooze');
    copyFileSync('/bin/sleep', snooze);
    chmodSync(snooze, 0o755);
    const script = join(dir, 'update.sh');
    // Writes into the tree, then hangs on a grandchild, as a package script waiting on a dead mirror does.
    writeFileSync(script, `#!/bin/sh\necho 2 > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"\n"${snooze}" 1000 &\nwait\n`);
    chmodSync(script, 0o755);
    s = await makeScratch('btrfs', `[update]\nmethod = "command"\ncommand = "${script}"\nchroot = false\ntimeout = 2\n`);
    assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
  });
  after(async () => {
    for (const pid of runningAs(snooze)) process.kill(pid, 'SIGKILL');
    await s?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('staging fails naming update.timeout, undoes itself, and leaves nothing running', { timeout: 120_000 }, async () => {
    const r = await sp('stage');
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /failed at step "apply the updates/);
    assert.match(r.stderr, /did not finish within update\.timeout \(2 s\)/);
    assert.match(r.stderr, /earlier steps were undone/);
    assert.deepEqual(await settled(snooze), [], 'the updater and its grandchild are gone');
    const envs = (await sp('--json', 'list')).json<{ name: string }[]>();
    assert.deepEqual(envs.map((e) => e.name), ['base'], 'the clone is gone');
    const st = (await sp('--json', 'status')).json<{ lastStage: { status: string } }>();
    assert.equal(st.lastStage.status, 'failed');
  });
});
