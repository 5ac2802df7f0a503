/**
 * run()'s output limit: a command whose output passes it is stopped with
 * everything it started, and the caller is told instead of waiting for the
 * whole listing (a `btrfs send` or `zfs diff` grown larger than a walk).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run } from '../../../src/process/run.js';
import { groupAlive } from '../../../src/process/groups.js';

test('a command past maxOutput is stopped, with its children, and says so', async () => {
  let group = 0;
  // A shell whose child writes forever: the limit stops both.
  const r = await run('sh', ['-c', 'echo $$ >&2; yes sysprime'], { maxOutput: 100_000 });
  group = Number(r.stderr.trim());
  assert.equal(r.overLimit, true);
  assert.ok(r.stdout.length <= 100_000, `kept ${r.stdout.length} bytes`);
  assert.ok(r.stdout.startsWith('sysprime\n'));
  assert.equal(groupAlive(group), false, 'nothing of the group is left');
});

test('under the limit the command runs as usual, its exit status checked', async () => {
  const r = await run('printf', ['a\\nb\\n'], { maxOutput: 100 });
  assert.equal(r.overLimit, undefined);
  assert.equal(r.stdout, 'a\nb\n');
  await assert.rejects(run('sh', ['-c', 'echo x; exit 3'], { maxOutput: 100 }), /exit|failed/);
});
