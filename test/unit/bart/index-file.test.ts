import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RECORD, STATE_NO_STAT, decodeIndex, encodeIndex, isIndex2, optionsDigest } from '../../../src/bart/index-file.js';
import { applyIndex, parseManifest } from '../../../src/bart/parse.js';
import { formatIndex } from '../../../src/bart/format.js';
import { defaultRules, parseRules } from '../../../src/bart/rules.js';
import { isSysprimeError } from '../../../src/errors.js';

const TEXT = Buffer.from(
  ['! Version 1.1', '! HASH XXH64', '! Sunday, November 22, 2026 (06:00:00)', '# Format:', '/a F 3 100644 - 6b025cd1 0 0 0123456789abcdef', '/b D 4096 40755 - 6b025cd1 0 0', ''].join('\n'),
  'latin1',
);

function records(): Float64Array {
  const r = new Float64Array(2 * RECORD);
  r.set([2049, 11, 3, 1795316199199.3545, 1795316199200.25, TEXT.indexOf('/a'), 0, 1], 0);
  r.set([0, 0, 4096, 0, 0, TEXT.indexOf('/b'), STATE_NO_STAT, -1], RECORD);
  return r;
}

const manifestError = (err: unknown) => isSysprimeError(err, 'MANIFEST');

test('a version 2 index round-trips, bound to its manifest bytes', async () => {
  const data = await encodeIndex(records(), TEXT, 'opts');
  assert.ok(isIndex2(data));
  assert.equal(data.indexOf(0x0a) % 8, 7, 'the numbers start 8-byte aligned');
  const back = await decodeIndex(data, 'idx', TEXT);
  assert.equal(back.count, 2);
  assert.equal(back.options, 'opts');
  assert.deepEqual([...back.records], [...records()]);
  // Read from a buffer whose numbers are not aligned: copied, same values.
  const shifted = Buffer.concat([Buffer.alloc(3), data]).subarray(3);
  assert.deepEqual([...(await decodeIndex(shifted, 'idx', TEXT)).records], [...records()]);
});

test('a truncated, foreign or mismatched index is refused with a MANIFEST error', async () => {
  const data = await encodeIndex(records(), TEXT, 'opts');
  await assert.rejects(decodeIndex(data.subarray(0, data.length - 5), 'idx', TEXT), (err) => manifestError(err) && /truncated/.test((err as Error).message));
  await assert.rejects(decodeIndex(Buffer.concat([data, Buffer.alloc(8)]), 'idx', TEXT), manifestError);
  await assert.rejects(decodeIndex(Buffer.from('# sysprime bart index 1 2\n1 2 3 4\n-\n'), 'idx', TEXT), (err) => manifestError(err) && /not a version 2/.test((err as Error).message));
  await assert.rejects(decodeIndex(Buffer.from('garbage'), 'idx'), manifestError);
  const edited = Buffer.from(TEXT.toString('latin1').replace('0123456789abcdef', '0123456789abcdee'), 'latin1');
  await assert.rejects(decodeIndex(data, 'idx', edited), (err) => manifestError(err) && /another manifest/.test((err as Error).message));
  const broken = Buffer.from(data);
  broken.write('x', broken.indexOf(' 2 ') + 1, 'latin1');
  await assert.rejects(decodeIndex(broken, 'idx', TEXT), manifestError);
});

test('applyIndex reads version 2 as well as version 1', async () => {
  const m = parseManifest(TEXT);
  applyIndex(m, await encodeIndex(records(), TEXT, 'opts'));
  assert.deepEqual(m.entries[0]!.stat, { dev: 2049, ino: 11, mtimeMs: 1795316199199.3545, ctimeMs: 1795316199200.25 });
  assert.equal(m.entries[1]!.stat, undefined);
  const v1 = parseManifest(TEXT);
  applyIndex(v1, formatIndex(m));
  assert.deepEqual(v1.entries[0]!.stat, m.entries[0]!.stat);
  const data = await encodeIndex(records(), TEXT, 'opts');
  assert.throws(() => applyIndex(parseManifest(TEXT), data.subarray(0, data.length - 8)), manifestError);
});

test('the options digest follows what decides a line, not how the rules file is written', async () => {
  const base = { rules: defaultRules(), hash: 'xxh64' as const, noContents: false, acl: true };
  const d = await optionsDigest(base);
  assert.equal(d, await optionsDigest({ ...base, rules: parseRules('# comment\n') }));
  assert.notEqual(d, await optionsDigest({ ...base, hash: 'sha256' }));
  assert.notEqual(d, await optionsDigest({ ...base, acl: false }));
  assert.notEqual(d, await optionsDigest({ ...base, noContents: true }));
  assert.notEqual(d, await optionsDigest({ ...base, rules: parseRules('/\nIGNORE mtime\n') }));
  assert.notEqual(d, await optionsDigest({ ...base, rules: parseRules('/ !*.o\n') }));
});
