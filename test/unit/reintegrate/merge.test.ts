import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { countLines, isBinary, MERGE_MAX_LINES, mergeText, splitLines } from '../../../src/reintegrate/merge.js';

const B = (s: string) => Buffer.from(s, 'utf8');

test('non-overlapping edits merge cleanly', () => {
  const r = mergeText(B('a\nb\nc\nd\ne\n'), B('A\nb\nc\nd\ne\n'), B('a\nb\nc\nd\nE\n'));
  assert.equal(r.kind, 'merged');
  assert.equal(r.kind === 'merged' && r.content.toString(), 'A\nb\nc\nd\nE\n');
});

test('overlapping edits conflict, with the admin\'s line numbers', () => {
  const r = mergeText(B('a\nb\nc\n'), B('a\nX\nc\n'), B('a\nY\nc\n'));
  assert.deepEqual(r, { kind: 'conflict', regions: [{ oursStart: 2, oursEnd: 2 }] });
});

test('missing final newline is kept as each side chose', () => {
  const r = mergeText(B('a\nb\nlast'), B('A\nb\nlast'), B('a\nb\nlast\nappended\n'));
  assert.equal(r.kind === 'merged' && r.content.toString(), 'A\nb\nlast\nappended\n');
  const r2 = mergeText(B('a\nb\nc\n'), B('A\nb\nc\n'), B('a\nb\nc'));
  assert.equal(r2.kind === 'merged' && r2.content.toString(), 'A\nb\nc');
});

test('CRLF files merge and stay CRLF', () => {
  const r = mergeText(B('a\r\nb\r\nc\r\nd\r\n'), B('A\r\nb\r\nc\r\nd\r\n'), B('a\r\nb\r\nc\r\nD\r\n'));
  assert.equal(r.kind === 'merged' && r.content.toString(), 'A\r\nb\r\nc\r\nD\r\n');
});

test('line endings converted by the update: merged, written in the admin\'s style', () => {
  const r = mergeText(B('a\r\nb\r\nc\r\nd\r\n'), B('A\r\nb\r\nc\r\nd\r\n'), B('a\nb\nc\nD\n'));
  assert.equal(r.kind === 'merged' && r.content.toString(), 'A\r\nb\r\nc\r\nD\r\n');
});

test('binary (NUL or invalid UTF-8) is never merged', () => {
  assert.equal(isBinary(Buffer.from([0x61, 0x00])), true);
  assert.equal(isBinary(Buffer.from([0x61, 0xff, 0x0a])), true);
  assert.equal(isBinary(B('héllo\n')), false);
  const r = mergeText(B('a\n'), Buffer.from([0x61, 0x00]), B('b\n'));
  assert.deepEqual(r, { kind: 'binary', which: ['ours'] });
});

test('one side unchanged: the other taken whole, even binary', () => {
  const bin = Buffer.from([1, 0, 2]);
  const r = mergeText(B('a\n'), B('a\n'), bin);
  assert.ok(r.kind === 'merged' && r.content.equals(bin));
});

test('a text too long for diff3 is not merged, and says how long', () => {
  const lines = (n: number, edits: Record<number, string> = {}) => B(Array.from({ length: n }, (_, i) => `${edits[i] ?? `line ${i}`}\n`).join(''));
  const n = MERGE_MAX_LINES + 1;
  assert.deepEqual(mergeText(lines(n), lines(n, { 0: 'admin' }), lines(n, { [n - 1]: 'update' })), { kind: 'too-long', lines: n });
  // One side unchanged needs no diff, whatever the length.
  const same = mergeText(lines(n), lines(n, { 0: 'admin' }), lines(n));
  assert.ok(same.kind === 'merged' && same.trivial);
});

test('lines are counted in the bytes as splitLines counts them', () => {
  for (const s of ['', 'a', 'a\n', 'a\nb', 'a\r\nb\r\n', '\n\n', 'é\nü']) assert.equal(countLines(B(s)), splitLines(s).length, JSON.stringify(s));
});

test('16 MiB of short lines is refused before it is decoded or split: it fits in a small heap', () => {
  // Split into strings, 8 million lines take hundreds of MiB of heap; counted in the buffers, none.
  // The buffers themselves live outside the heap, so a 48 MiB heap tells the two apart.
  const url = new URL('../../../src/reintegrate/merge.js', import.meta.url).href;
  const code = `
    const { mergeText } = await import(${JSON.stringify(url)});
    const base = Buffer.alloc(16 << 20, 'x\\n');
    const ours = Buffer.from(base); ours[0] = 0x79;
    const theirs = Buffer.from(base); theirs[theirs.length - 2] = 0x7a;
    process.stdout.write(JSON.stringify(mergeText(base, ours, theirs)));`;
  const r = spawnSync(process.execPath, ['--max-old-space-size=48', '--input-type=module', '-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr.slice(-2000));
  assert.deepEqual(JSON.parse(r.stdout), { kind: 'too-long', lines: 8 << 20 });
});
