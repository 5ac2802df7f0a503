// `zfs diff -H` output in the format OpenZFS documents and libzfs_diff.c
// writes: tab-separated, non-printable bytes as `\` and four octal digits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseZfsDiff, unescapeDiffPath } from '../../../src/backends/zfs/diff.js';
import { isSysprimeError } from '../../../src/errors.js';

const T = '\t';

test('escapes are undone as stream_bytes writes them', () => {
  assert.equal(unescapeDiffPath(String.raw`/a\0040b\0012c\0134d\0377\0376e\0011f`), '/a b\nc\\d\xff\xfee\tf');
  assert.equal(unescapeDiffPath('/plain'), '/plain');
  assert.throws(() => unescapeDiffPath(String.raw`/bad\x`), (e) => isSysprimeError(e, 'BACKEND'));
  assert.throws(() => unescapeDiffPath(String.raw`/short\012`), (e) => isSysprimeError(e, 'BACKEND'));
});

test('M, +, - and R lines below a mount point', () => {
  const out = [
    `M${T}/run/sysprime/mnt/e/etc`,
    `M${T}/run/sysprime/mnt/e/etc/hosts`,
    `+${T}/run/sysprime/mnt/e/etc/new\\0040file`,
    `-${T}/run/sysprime/mnt/e/etc/old`,
    `R${T}/run/sysprime/mnt/e/etc/a${T}/run/sysprime/mnt/e/etc/b\\0012c`,
    `M${T}/run/sysprime/mnt/e/etc/linked${T}(+1)`,
    `M${T}/run/sysprime/mnt/e/etc/unlinked${T}(-1)`,
    `+${T}/run/sysprime/mnt/e/bad\\0377name`,
    `M${T}/run/sysprime/mnt/e/`,
    '',
  ].join('\n');
  assert.deepEqual(parseZfsDiff(out, '/run/sysprime/mnt/e'), [
    { kind: 'modified', path: '/etc' },
    { kind: 'modified', path: '/etc/hosts' },
    { kind: 'created', path: '/etc/new file' },
    { kind: 'removed', path: '/etc/old' },
    { kind: 'renamed', path: '/etc/a', to: '/etc/b\nc' },
    { kind: 'modified', path: '/etc/linked' },
    { kind: 'modified', path: '/etc/unlinked' },
    { kind: 'created', path: '/bad\xffname' },
    { kind: 'modified', path: '/' },
  ]);
});

test('a dataset mounted at / has no prefix', () => {
  assert.deepEqual(parseZfsDiff(`M${T}/etc/hosts\n+${T}/\n`, '/'), [
    { kind: 'modified', path: '/etc/hosts' },
    { kind: 'created', path: '/' },
  ]);
});

test('a mount point with a space is escaped like the rest of the path', () => {
  assert.deepEqual(parseZfsDiff(`M${T}/mnt/my\\0040env/etc/x\n`, '/mnt/my env'), [{ kind: 'modified', path: '/etc/x' }]);
});

test('changes in an extended-attribute directory are changes of their file', () => {
  assert.deepEqual(parseZfsDiff(`+${T}/m/etc/f/<xattrdir>/user.k\nM${T}/m/etc/f/<xattrdir>\nR${T}/m/etc/f/<xattrdir>/a${T}/m/etc/f/<xattrdir>/b\n`, '/m'), [
    { kind: 'modified', path: '/etc/f' },
    { kind: 'modified', path: '/etc/f' },
    { kind: 'modified', path: '/etc/f' },
  ]);
});

test('what cannot be placed is an error: the caller walks the tree instead', () => {
  for (const bad of [
    `-${T}(on_delete_queue)`,
    `M${T}/elsewhere/etc/x`,
    `R${T}/m/a`,
    `X${T}/m/a`,
    `M${T}/m/a${T}junk`,
    `+${T}`,
    `M /m/a`,
  ]) {
    assert.throws(() => parseZfsDiff(bad + '\n', '/m'), (e) => isSysprimeError(e, 'BACKEND'), bad);
  }
});
