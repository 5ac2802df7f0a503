/**
 * A dataset held for a moment ("dataset is busy") is waited for on the verbs
 * that meet it; other failures, and a dataset that stays busy, are errors at
 * once or after the waits. A stand-in `zfs` on PATH plays the busy dataset:
 * a real one cannot be made busy for exactly N attempts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zfs } from '../../../src/backends/zfs/commands.js';
import { isSysprimeError } from '../../../src/errors.js';

let dir = '';
let path = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sysprime-zfs-busy-'));
  // Busy for the first $BUSY_TIMES calls, then fine; every call is counted.
  writeFileSync(
    join(dir, 'zfs'),
    `#!/bin/sh\nn=$(cat "${dir}/count" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "${dir}/count"\nif [ "$n" -le "$BUSY_TIMES" ]; then echo "cannot $1 'tank/ROOT/a': dataset is busy" >&2; exit 1; fi\nif [ "$1" = "snapshot" ]; then echo "cannot snapshot: dataset is busy" >&2; exit 1; fi\n`,
  );
  chmodSync(join(dir, 'zfs'), 0o755);
  path = process.env['PATH'] ?? '';
  process.env['PATH'] = `${dir}:${path}`;
});

after(() => {
  process.env['PATH'] = path;
  rmSync(dir, { recursive: true, force: true });
});

const calls = (): number => Number(readFileSync(join(dir, 'count'), 'utf8'));
const busyFor = (n: number) => {
  process.env['BUSY_TIMES'] = String(n);
  rmSync(join(dir, 'count'), { force: true });
};

test('a rename that meets a busy dataset twice succeeds on the third attempt', async () => {
  busyFor(2);
  await zfs(['rename', 'tank/os', 'tank/ROOT/a']);
  assert.equal(calls(), 3);
});

test('a dataset that stays busy is an error naming it, after the waits', async () => {
  busyFor(99);
  await assert.rejects(zfs(['destroy', 'tank/ROOT/a']), (e) => isSysprimeError(e, 'COMMAND_FAILED') && /dataset is busy/.test(e.message));
  assert.equal(calls(), 6);
});

test('verbs that are not waited for fail at once', async () => {
  busyFor(0);
  await assert.rejects(zfs(['snapshot', 'tank/ROOT/a@x']), (e) => isSysprimeError(e, 'COMMAND_FAILED'));
  assert.equal(calls(), 1);
});
