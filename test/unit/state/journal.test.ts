import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openState } from '../../../src/state/db.js';
import { runOperation, recoverOperations, type OperationSpec } from '../../../src/state/journal.js';
import { acquireLock, lockHolder, withLock } from '../../../src/state/lock.js';
import { isSysprimeError } from '../../../src/errors.js';

function withDb(fn: (dir: string) => Promise<void> | void) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sysprime-state-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

interface Log {
  lines: string[];
}

const spec = (failAt?: string): OperationSpec<Log> => ({
  kind: 'test',
  steps: ['a', 'b', 'c'].map((name) => ({
    name,
    title: `step ${name}`,
    async run(ctx) {
      ctx.lines.push(`run ${name}`);
      if (name === failAt) throw new Error(`boom in ${name}`);
      return { [name]: true };
    },
    async undo(ctx) {
      ctx.lines.push(`undo ${name}`);
    },
  })),
});

test('a failing step undoes the earlier ones in reverse and names the step', withDb(async (dir) => {
  const db = openState(dir);
  const log: Log = { lines: [] };
  await assert.rejects(runOperation(db, spec('c'), log, {}), (e: unknown) => isSysprimeError(e, 'STEP_FAILED') && e.message.includes('step c'));
  assert.deepEqual(log.lines, ['run a', 'run b', 'run c', 'undo c', 'undo b', 'undo a']);
  const op = db.prepare('SELECT status FROM operations').get() as { status: string };
  assert.equal(op.status, 'failed');
  db.close();
}));

test('an operation left running by a dead process is undone at the next run', withDb(async (dir) => {
  const db = openState(dir);
  // What a process killed after step b leaves behind.
  const id = Number(db.prepare("INSERT INTO operations (kind, started, status, pid, params) VALUES ('test', 'then', 'running', 999999, '{\"_start\":\"1\"}')").run().lastInsertRowid);
  db.prepare("INSERT INTO steps (operation, seq, name, status, at, data) VALUES (?, 0, 'a', 'done', 'then', '{}')").run(id);
  db.prepare("INSERT INTO steps (operation, seq, name, status, at, data) VALUES (?, 1, 'b', 'started', 'then', '{}')").run(id);
  const log: Log = { lines: [] };
  const lines = await recoverOperations(db, spec(), log);
  assert.equal(lines.length, 1);
  assert.deepEqual(log.lines, ['undo b', 'undo a']);
  assert.deepEqual(await recoverOperations(db, spec(), log), []);
  db.close();
}));

test('the lock admits one holder and recovers from a dead one', withDb((dir) => {
  const db = openState(dir);
  const lock = acquireLock(db, 'staging');
  assert.equal(lockHolder(db)?.pid, process.pid);
  db.prepare("UPDATE locks SET pid = 999999, start = 'x'").run();
  assert.equal(lockHolder(db), null);
  const again = acquireLock(db, 'staging');
  again.release();
  assert.equal(lockHolder(db), null);
  lock.release();
  db.close();
}));

test('the lock taken again by its holder stays held until the outermost caller releases it', withDb(async (dir) => {
  const db = openState(dir);
  const outer = acquireLock(db, 'staging');
  // What a staging that prunes does: prune takes the lock the staging holds.
  await withLock(db, 'pruning', async () => {
    assert.equal(lockHolder(db)?.what, 'staging');
  });
  const inner = acquireLock(db, 'pruning');
  inner.release();
  assert.equal(lockHolder(db)?.pid, process.pid, 'still held by the staging');
  outer.release();
  assert.equal(lockHolder(db), null);
  db.close();
}));

test('a live holder is reported as busy', withDb((dir) => {
  const a = openState(dir);
  const b = openState(dir);
  const lock = acquireLock(a, 'staging');
  // Same process, so pretend b is another process by faking a's row as held by pid 1 (init, always alive).
  const start = (a.prepare('SELECT start FROM locks').get() as { start: string }).start;
  assert.ok(start.length > 0);
  a.prepare('UPDATE locks SET pid = 1, start = ?').run(readStart(1));
  assert.throws(() => acquireLock(b, 'staging'), (e: unknown) => isSysprimeError(e, 'BUSY'));
  lock.release();
  a.close();
  b.close();
}));

import { processStart } from '../../../src/process/alive.js';
function readStart(pid: number): string {
  return processStart(pid) ?? '';
}
