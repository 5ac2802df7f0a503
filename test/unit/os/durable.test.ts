/**
 * The durable writer (src/os/durable.ts) given its data in chunks: what it
 * writes is the chunks in order, and a source that fails part way leaves
 * the old file as it was and no temporary file beside it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { replaceFile } from '../../../src/os/durable.js';

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sysprime-durable-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

test('chunks are written in order, with the mode asked for', () => {
  const file = join(dir, 'chunked');
  function* chunks(): Generator<Buffer> {
    for (let i = 0; i < 5; i++) yield Buffer.from(`chunk ${i}\n`.repeat(1000));
  }
  replaceFile(file, chunks(), { mode: 0o600 });
  assert.equal(readFileSync(file, 'latin1'), [0, 1, 2, 3, 4].map((i) => `chunk ${i}\n`.repeat(1000)).join(''));
  assert.equal(statSync(file).mode & 0o777, 0o600);
});

test('a source that fails part way leaves the old file and no temporary one', () => {
  const file = join(dir, 'kept');
  writeFileSync(file, 'old text\n');
  function* failing(): Generator<Buffer> {
    yield Buffer.from('new first half\n');
    throw new Error('the source broke');
  }
  // The source's own error, as it is: not reported as a write error of the temporary file.
  assert.throws(() => replaceFile(file, failing()), (err) => err instanceof Error && err.message === 'the source broke');
  assert.equal(readFileSync(file, 'latin1'), 'old text\n');
  assert.deepEqual(readdirSync(dir).filter((n) => n !== 'chunked').sort(), ['kept']);
});
