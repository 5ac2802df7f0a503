/**
 * find's output is read from a FIFO into one buffer, a record cut between
 * two reads finished by the next: read a few bytes at a time (records
 * longer than the buffer, which then grows), the walk finds what it finds
 * with the whole output in one read.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findWalk } from '../../../src/bart/find-walk.js';
import { parseRules } from '../../../src/bart/rules.js';

let dir = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sysprime-find-walk-'));
  const long = 'n'.repeat(200);
  for (let d = 0; d < 6; d++) {
    const sub = join(dir, `d${d}`, long.slice(0, 20 * (d + 1)));
    mkdirSync(sub, { recursive: true });
    for (let f = 0; f < 40; f++) writeFileSync(join(sub, `f${f} with spaces\tand tab${f % 3 === 0 ? long : ''}`), `${d}.${f}`);
    symlinkSync('../'.repeat(3) + long, join(sub, 'link'));
  }
  writeFileSync(Buffer.from(join(dir, 'bad-\xff-utf8'), 'latin1'), 'bytes');
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

test('reading find a few bytes at a time finds the same entries as reading it whole', async () => {
  const rules = parseRules('');
  const whole = await findWalk(rules, dir);
  assert.ok(whole !== undefined);
  assert.equal(whole.paths.length, 1 + 6 * 2 + 6 * 41 + 1, whole.paths.join('\n'));
  assert.deepEqual(whole.warnings, []);
  for (const size of [1, 16, 100, 4096]) {
    const piecemeal = await findWalk(rules, dir, undefined, size);
    assert.deepEqual(piecemeal, whole, `reading ${size} bytes at a time`);
  }
});
