/**
 * Entries of a kept manifest found by path in its bytes (src/bart/lookup.ts):
 * each entry found is the entry parseManifest and applyIndex give, with its
 * stat index; paths not listed are not found, whatever their place in the
 * order; a manifest and an index that do not belong together are refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyIndex, encodeName, formatIndex, formatManifest, lookupInManifest, lookupInText, makeHeader, parseManifest, sortEntries, type Manifest, type ManifestEntry } from '../../../src/bart/index.js';
import { isSysprimeError } from '../../../src/errors.js';

const bytes = (...b: number[]) => String.fromCharCode(...b);

function sample(): Manifest {
  const e = (path: string, extra: Partial<ManifestEntry> = {}): ManifestEntry => ({
    path,
    type: 'F',
    size: path.length,
    mode: 0o100644,
    acl: '-',
    mtime: 1_700_000_000,
    uid: 0,
    gid: 0,
    contents: encodeName(path).length.toString(16).padStart(16, '0'),
    stat: { dev: 45, ino: 256 + path.length, mtimeMs: 1_700_000_000_123.25, ctimeMs: 1_700_000_000_456.5 },
    ...extra,
  });
  const entries: ManifestEntry[] = [
    e('/', { type: 'D', mode: 0o40755, contents: undefined }),
    e('/etc', { type: 'D', mode: 0o40755, contents: undefined }),
    e('/etc/a b'),
    e('/etc/a-b'),
    e('/etc/a/b'),
    e('/etc/' + bytes(0xff, 0x0a)),
    e('/etc/link', { type: 'L', dest: '../a b', contents: undefined }),
    e('/etc/no-index', { stat: undefined }),
    e('/usr/x', { xattrs: { 'user.k': '0x76' } }),
  ];
  for (let i = 0; i < 500; i++) entries.push(e(`/usr/share/f${i}`));
  return { header: { ...makeHeader('xxh64', '/'), xattrs: true }, entries: sortEntries(entries) };
}

test('every entry is found as parse and index give it; other paths are not found', () => {
  const m = sample();
  const text = Buffer.from(formatManifest(m), 'latin1');
  const index = Buffer.from(formatIndex(m), 'latin1');
  const whole = applyIndex(parseManifest(text), index);
  const found = lookupInText(text, index, 'kept');
  assert.equal(found.header.hash, 'xxh64');
  assert.deepEqual(found.manifest(), whole);
  for (const want of whole.entries) assert.deepEqual(found.find(want.path), want, want.path);
  for (const missing of ['/a', '/etc/a', '/etc/a c', '/etc/zz', '/usr/share/f5000', '/zzz', '/etc/' + bytes(0xff)]) {
    assert.equal(found.find(missing), undefined, missing);
    assert.equal(lookupInManifest(whole).find(missing), undefined, missing);
  }
  for (const want of whole.entries) assert.equal(lookupInManifest(whole).find(want.path), want);
});

test('comment lines in the header and CRLF line ends are read as parseManifest reads them', () => {
  const m = sample();
  const text = Buffer.from(formatManifest(m).replace('# Format:', '# a comment\n\n# Format:').replace(/\n/g, '\r\n'), 'latin1');
  const index = Buffer.from(formatIndex(m), 'latin1');
  const found = lookupInText(text, index);
  for (const want of applyIndex(parseManifest(text), index).entries) assert.deepEqual(found.find(want.path), want);
});

test('an index of another manifest is refused', () => {
  const m = sample();
  const text = Buffer.from(formatManifest(m), 'latin1');
  const shorter = Buffer.from(formatIndex({ ...m, entries: m.entries.slice(1) }), 'latin1');
  assert.throws(() => lookupInText(text, shorter), (err) => isSysprimeError(err) && err.code === 'MANIFEST' && /lists 508 entries, the manifest 509/.test(err.message));
  assert.throws(() => lookupInText(text, Buffer.from('not an index\n')), (err) => isSysprimeError(err) && err.code === 'MANIFEST');
});

test('a damaged line is not found (the file is read again), and the other entries still are', () => {
  const m = sample();
  const text = formatManifest(m);
  const index = Buffer.from(formatIndex(m), 'latin1');
  const broken = Buffer.from(text.replace('/etc/a-b F 8 100644', '/etc/a-b F 8 10064x'), 'latin1');
  const found = lookupInText(broken, index);
  assert.equal(found.find('/etc/a-b'), undefined);
  assert.equal(found.find('/etc/a/b')?.path, '/etc/a/b');
  // Its index line damaged instead.
  const lines = formatIndex(m).split('\n');
  const at = m.entries.findIndex((e) => e.path === '/etc/a/b') + 1;
  lines[at] = '45 300 abc 1';
  const found2 = lookupInText(Buffer.from(text, 'latin1'), Buffer.from(lines.join('\n'), 'latin1'));
  assert.equal(found2.find('/etc/a/b'), undefined);
  assert.equal(found2.find('/etc/a-b')?.path, '/etc/a-b');
});

test('blank and comment lines among the entries are passed over, as parseManifest does', () => {
  const m = sample();
  const text = formatManifest(m).replace('\n/etc/a-b ', '\n\n# a comment\n   \n/etc/a-b ');
  const index = Buffer.from(formatIndex(m), 'latin1');
  const whole = applyIndex(parseManifest(text), index);
  const found = lookupInText(Buffer.from(text, 'latin1'), index);
  for (const want of whole.entries) assert.deepEqual(found.find(want.path), want, want.path);
});

test('in a manifest out of order, a search may miss an entry but never returns another path', () => {
  const m = sample();
  const shuffled: Manifest = { ...m, entries: [...m.entries].reverse() };
  const found = lookupInText(Buffer.from(formatManifest(shuffled), 'latin1'), Buffer.from(formatIndex(shuffled), 'latin1'));
  for (const e of m.entries) {
    const got = found.find(e.path);
    if (got !== undefined) assert.equal(got.path, e.path);
  }
});
