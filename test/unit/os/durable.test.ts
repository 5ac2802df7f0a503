/**
 * The durable writer (src/os/durable.ts) given its data in chunks: what it
 * writes is the chunks in order, and a source that fails part way leaves
 * the old file as it was and no temporary file beside it. A file it wrote
 * is given a second name only while it is still that file.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDurableTemp, linkDurable, replaceFile } from '../../../src/os/durable.js';

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

test('a file written is linked under another name while it is unchanged, and only then', () => {
  const sub = join(dir, 'links');
  mkdirSync(sub);
  const a = join(sub, 'a');
  const b = join(sub, 'b');
  const written = replaceFile(a, 'first\n', { mode: 0o600 });
  writeFileSync(b, 'old b\n');
  assert.equal(linkDurable(a, b, written), true);
  assert.equal(statSync(b).ino, statSync(a).ino);
  assert.equal(readFileSync(b, 'latin1'), 'first\n');
  // Itself, or a name linked already: nothing to do, nothing left behind.
  assert.equal(linkDurable(a, a, written), true);
  assert.equal(linkDurable(a, b, written), true);
  // Replaced since: not the file written, so not linked; the name keeps what it had.
  replaceFile(a, 'second\n');
  const c = join(sub, 'c');
  writeFileSync(c, 'old c\n');
  assert.equal(linkDurable(a, c, written), false);
  assert.equal(readFileSync(c, 'latin1'), 'old c\n');
  assert.equal(linkDurable(a, a, written), false);
  // Written in place (a longer text: the same size within one clock tick would keep its times too).
  const d = join(sub, 'd');
  const dWritten = replaceFile(d, 'dddd\n');
  writeFileSync(d, 'DDDD and more\n');
  assert.equal(linkDurable(d, c, dWritten), false);
  // Gone.
  rmSync(d);
  assert.equal(linkDurable(d, c, dWritten), false);
  assert.equal(readFileSync(c, 'latin1'), 'old c\n');
  assert.deepEqual(readdirSync(sub).filter(isDurableTemp), []);
});
