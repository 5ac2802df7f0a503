import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkName, nameProblem } from '../../src/names.js';
import { isSysprimeError } from '../../src/errors.js';

test('ordinary names pass', () => {
  for (const n of ['default', 'debian-2026-11-22', 'gen.4', 'a+b_c', '0']) assert.equal(nameProblem(n), null, n);
});

test('hostile names are refused with a reason', () => {
  const bad = ['', 'gen+3', 'x+1-2', '../etc', 'a/b', '-rf', '--help', '.hidden', 'a..b', 'pool@snap', 'with space', 'new\nline', 'x'.repeat(300), 'ROOT', 'é'];
  for (const n of bad) {
    assert.notEqual(nameProblem(n), null, JSON.stringify(n));
    assert.throws(() => checkName(n), (e: unknown) => isSysprimeError(e, 'INVALID_NAME'));
  }
});
