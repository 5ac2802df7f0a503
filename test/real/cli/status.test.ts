/**
 * `sysprime status` beside a staging that starts while it looks: status
 * finds an interrupted staging to undo, and a new staging takes the lock
 * before status does. Status never fails BUSY: it reports the staging that
 * holds the lock. On a Btrfs pool only: the race is about the lock, which
 * is the same on both backends.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { BIN, sysprime } from '../../fixtures/cli.js';

/** sysprime started by hand, stopped by a `stop:` fault point; `done` resolves with its exit status and output. */
function start(config: string, args: string[], fault: string): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, [BIN, '--config', config, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', SYSPRIME_FAULT_INJECT: fault } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
  return { child, done };
}

/** Resolves once the process is stopped (state T in /proc/<pid>/stat). */
async function stopped(pid: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('T')) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`process ${pid} never reached its stop point`);
}

describe('status beside a staging that starts while it looks (btrfs)', () => {
  let s: Scratch;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-status-'));
    const script = join(dir, 'update.sh');
    writeFileSync(script, '#!/bin/sh\necho 2 > "$SYSPRIME_ROOT/etc/motd"\n');
    chmodSync(script, 0o755);
    s = await makeScratch('btrfs', `[update]\nmethod = "command"\ncommand = "${script}"\nchroot = false\n[retention]\nmin_free_percent = 0\n`);
    assert.equal((await sysprime(['init', '--adopt', s.adopt, '--name', 'base'], { config: s.config })).code, 0);
  });
  after(async () => {
    await s?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('an interrupted staging to undo, and a staging that takes the lock before status does: status reports it, never BUSY', async () => {
    const dead = await sysprime(['stage'], { config: s.config, env: { SYSPRIME_FAULT_INJECT: 'kill:stage:update:after' } });
    assert.equal(dead.code, -1, 'killed');
    // status has seen the interrupted staging and stops before taking the lock ...
    const status = start(s.config, ['--json', 'status'], 'stop:status:lock');
    await stopped(status.child.pid!);
    // ... a staging starts, undoes the interrupted one and stops holding the lock ...
    const stage = start(s.config, ['stage'], 'stop:stage:update:before');
    try {
      await stopped(stage.child.pid!);
      // ... and status goes on.
      status.child.kill('SIGCONT');
      const r = await status.done;
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { running: { pid: number; what: string } | null };
      assert.equal(out.running?.pid, stage.child.pid, 'the staging that holds the lock is reported');
    } finally {
      stage.child.kill('SIGCONT');
      status.child.kill('SIGCONT');
    }
    const staged = await stage.done;
    assert.equal(staged.code, 0, staged.stderr);
  });
});
