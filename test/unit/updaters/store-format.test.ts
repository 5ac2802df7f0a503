import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  emptyInstalled,
  mergeTrees,
  objectKey,
  parseIndex,
  parseManifest,
  planChanges,
  summarize,
  STORE_FORMAT,
  type PackageManifest,
  type RepositoryIndex,
} from '../../../src/updaters/store/format.js';
import { isSysprimeError } from '../../../src/errors.js';
import { isCleanRelative } from '../../../src/updaters/rootpath.js';

const SHA_A = 'a'.repeat(64);
const SHA_B = 'b'.repeat(64);
const SHA_C = 'c'.repeat(64);

function manifest(name: string, version: string, entries: unknown[]): string {
  return JSON.stringify({ format: STORE_FORMAT, name, version, entries });
}

test('an index is read with its current versions', () => {
  const idx = parseIndex(JSON.stringify({ format: STORE_FORMAT, packages: { base: { current: '2', versions: { '1': SHA_A, '2': SHA_B } } } }), 'x');
  assert.equal(idx.packages['base']?.current, '2');
  assert.equal(idx.packages['base']?.versions['2'], SHA_B);
});

test('a broken index is refused, naming what is wrong', () => {
  const bad = [
    ['not json', /not JSON/],
    [JSON.stringify({ format: 'other', packages: {} }), /format must be/],
    [JSON.stringify({ format: STORE_FORMAT, packages: { base: { current: '3', versions: { '1': SHA_A } } } }), /current version 3/],
    [JSON.stringify({ format: STORE_FORMAT, packages: { '../x': { current: '1', versions: { '1': SHA_A } } } }), /bad package name/],
    [JSON.stringify({ format: STORE_FORMAT, packages: { base: { current: '1', versions: { '1': 'short' } } } }), /no manifest sha256/],
  ] as const;
  for (const [text, why] of bad) {
    assert.throws(() => parseIndex(text, 'index.json'), (err: unknown) => isSysprimeError(err, 'REFUSED') && why.test(err.message));
  }
});

test('a manifest is read with modes as numbers', () => {
  const m = parseManifest(
    manifest('base', '1', [
      { path: 'usr', type: 'dir', mode: '0755', uid: 0, gid: 0, size: 0 },
      { path: 'usr/bin/su', type: 'file', mode: '4755', uid: 0, gid: 0, size: 3, sha256: SHA_A },
      { path: 'usr/bin/sh', type: 'symlink', mode: '0777', uid: 0, gid: 0, size: 4, target: 'dash' },
    ]),
    'm',
    { name: 'base', version: '1' },
  );
  assert.equal(m.entries[1]?.mode, 0o4755);
  assert.equal(m.entries[2]?.target, 'dash');
});

test('manifest paths that could leave the tree are refused', () => {
  for (const path of ['../etc/passwd', '/usr/bin/x', 'usr/../etc', 'usr//bin', 'usr/./bin', 'usr/bin/']) {
    assert.throws(
      () => parseManifest(manifest('p', '1', [{ path, type: 'dir', mode: '0755', uid: 0, gid: 0, size: 0 }]), 'm'),
      (err: unknown) => isSysprimeError(err, 'REFUSED') && /clean relative path/.test(err.message),
      path,
    );
  }
  assert.equal(isCleanRelative('usr/bin/x'), true);
  assert.equal(isCleanRelative('..'), false);
});

test('a manifest must describe the version it was fetched as', () => {
  assert.throws(() => parseManifest(manifest('base', '1', []), 'm', { name: 'base', version: '2' }), /not base 2/);
});

test('a file entry without a sha256, or a symlink without a target, is refused', () => {
  assert.throws(() => parseManifest(manifest('p', '1', [{ path: 'a', type: 'file', mode: '0644', uid: 0, gid: 0, size: 1 }]), 'm'), /sha256/);
  assert.throws(() => parseManifest(manifest('p', '1', [{ path: 'a', type: 'symlink', mode: '0777', uid: 0, gid: 0, size: 1 }]), 'm'), /target/);
  assert.throws(() => parseManifest(manifest('p', '1', [{ path: 'a', type: 'file', mode: 'rwx', uid: 0, gid: 0, size: 1, sha256: SHA_A }]), 'm'), /octal/);
});

test('the object key covers content and metadata', () => {
  const base = { sha256: SHA_A, mode: 0o644, uid: 0, gid: 0 };
  const k = objectKey(base);
  assert.match(k, /^[0-9a-f]{64}$/);
  assert.equal(objectKey({ ...base }), k);
  assert.notEqual(objectKey({ ...base, mode: 0o755 }), k);
  assert.notEqual(objectKey({ ...base, uid: 1 }), k);
  assert.notEqual(objectKey({ ...base, gid: 1 }), k);
  assert.notEqual(objectKey({ ...base, sha256: SHA_B }), k);
});

test('the plan follows the repository: new, changed, removed, unchanged', () => {
  const index: RepositoryIndex = {
    format: STORE_FORMAT,
    serial: 1,
    packages: {
      base: { current: '2', versions: { '1': SHA_A, '2': SHA_B } },
      extra: { current: '1', versions: { '1': SHA_C } },
      same: { current: '5', versions: { '5': SHA_A } },
    },
  };
  const installed = {
    ...emptyInstalled('r'),
    packages: { base: { version: '1', manifest: SHA_A }, gone: { version: '3', manifest: SHA_C }, same: { version: '5', manifest: SHA_A } },
  };
  assert.deepEqual(planChanges(index, installed), [
    { name: 'base', from: '1', to: '2' },
    { name: 'extra', from: null, to: '1' },
    { name: 'gone', from: '3', to: null },
  ]);
  assert.match(summarize(planChanges(index, installed)), /1 updated, 1 new, 1 removed/);
});

test('an older current version is an update too (a rollback published by the repository)', () => {
  const index: RepositoryIndex = { format: STORE_FORMAT, serial: 1, packages: { base: { current: '1', versions: { '1': SHA_A, '2': SHA_B } } } };
  const installed = { ...emptyInstalled('r'), packages: { base: { version: '2', manifest: SHA_B } } };
  assert.deepEqual(planChanges(index, installed), [{ name: 'base', from: '2', to: '1' }]);
  const same = { ...emptyInstalled('r'), packages: { base: { version: '1', manifest: SHA_A } } };
  assert.deepEqual(planChanges(index, same), []);
});

test('packages may share directories but not files', () => {
  const dir = { type: 'dir' as const, mode: 0o755, uid: 0, gid: 0, size: 0 };
  const file = { type: 'file' as const, mode: 0o644, uid: 0, gid: 0, size: 1, sha256: SHA_A };
  const a: PackageManifest = { format: STORE_FORMAT, name: 'a', version: '1', entries: [{ path: 'usr', ...dir }, { path: 'usr/a', ...file }] };
  const b: PackageManifest = { format: STORE_FORMAT, name: 'b', version: '1', entries: [{ path: 'usr', ...dir }, { path: 'usr/b', ...file }] };
  assert.deepEqual([...mergeTrees([a, b]).keys()].sort(), ['usr', 'usr/a', 'usr/b']);
  const c: PackageManifest = { format: STORE_FORMAT, name: 'c', version: '1', entries: [{ path: 'usr/a', ...file }] };
  assert.throws(() => mergeTrees([a, c]), (err: unknown) => isSysprimeError(err, 'REFUSED') && /a and c both provide \/usr\/a/.test(err.message));
});

test('nothing may lie below a symlink or a file, and /usr must be a directory', () => {
  const file = { type: 'file' as const, mode: 0o644, uid: 0, gid: 0, size: 1, sha256: SHA_A };
  const link = { type: 'symlink' as const, mode: 0o777, uid: 0, gid: 0, size: 4, target: '/etc' };
  const a: PackageManifest = { format: STORE_FORMAT, name: 'a', version: '1', entries: [{ path: 'usr/lib', ...link }] };
  const b: PackageManifest = { format: STORE_FORMAT, name: 'b', version: '1', entries: [{ path: 'usr/lib/x', ...file }] };
  assert.throws(() => mergeTrees([a, b]), (err: unknown) => isSysprimeError(err, 'REFUSED') && /below \/usr\/lib, which a makes a symlink/.test(err.message));
  const c: PackageManifest = { format: STORE_FORMAT, name: 'c', version: '1', entries: [{ path: 'usr', ...link }] };
  assert.throws(() => mergeTrees([c]), /makes \/usr a symlink/);
});
