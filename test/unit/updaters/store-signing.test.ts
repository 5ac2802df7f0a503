/**
 * The signed index of a store repository: published and signed, then read
 * back through openRepository as the updater reads it. Tampering anywhere is
 * refused before the index is parsed; staging from a signed repository on a
 * real pool is in test/real/staging/store-signed.test.ts.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSysprimeError } from '../../../src/errors.js';
import { readPublicKey } from '../../../src/signing/keys.js';
import { publishPackageVersion, setCurrentVersion, signIndex } from '../../../src/updaters/store/publish.js';
import { openRepository, type IndexTrust } from '../../../src/updaters/store/repository.js';
import { checkIndexSource, STORE_FORMAT, type InstalledState } from '../../../src/updaters/store/format.js';
import { testKey, toPublishEntries } from '../../fixtures/store-repo.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sysprime-store-signing-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const open = (repo: string, trust: IndexTrust) => openRepository(repo, { timeoutSeconds: 60, trust });
const files = (v: string) => toPublishEntries({ 'usr/bin/hello': { content: `#!/bin/sh\necho ${v}\n`, mode: 0o755 } });

test('a signed index reads back; altered, unsigned, or signed by another key it is refused naming the key', async () => {
  const repo = join(dir, 'a');
  const key = testKey(dir, 'a');
  const other = testKey(dir, 'a-other');
  await publishPackageVersion(repo, 'base', '1', files('1'), { sign: [key.key] });
  const trust = { keys: [readPublicKey(key.publicPath)], allowUnsigned: false };
  const index = await open(repo, trust).readIndex();
  assert.equal(index.packages['base']?.current, '1');
  assert.equal(index.serial, 1);

  // Another key only.
  await assert.rejects(
    open(repo, { keys: [readPublicKey(other.publicPath)], allowUnsigned: false }).readIndex(),
    (err: unknown) => isSysprimeError(err, 'REFUSED') && err.message.includes(`key ${key.id}, which is not trusted`),
  );

  // One byte of the index changed: another manifest sha256 for the same version.
  const path = join(repo, 'index.json');
  const good = readFileSync(path, 'utf8');
  const sha = /"1": "([0-9a-f]{64})"/.exec(good)![1]!;
  writeFileSync(path, good.replace(sha, sha.replace(/^./, (c) => (c === '0' ? '1' : '0'))));
  await assert.rejects(open(repo, trust).readIndex(), (err: unknown) => isSysprimeError(err, 'REFUSED') && err.message.includes(`by key ${key.id} does not match`));
  writeFileSync(path, good);

  // Unsigned: refused, and allow_unsigned does not make it through over http.
  rmSync(join(repo, 'index.json.sig'));
  await assert.rejects(open(repo, trust).readIndex(), (err: unknown) => isSysprimeError(err, 'REFUSED') && /is not signed/.test(err.message));
  assert.equal((await open(repo, { ...trust, allowUnsigned: true }).readIndex()).serial, 1, 'a local test repository may be unsigned');
  await assert.rejects(
    open('http://127.0.0.1:9/', { ...trust, allowUnsigned: true }).readIndex(),
    (err: unknown) => isSysprimeError(err, 'CONFIG') && /local repositories only/.test(err.message),
  );
});

test('publishing without a key removes the stale signature; every write raises the serial', async () => {
  const repo = join(dir, 'b');
  const key = testKey(dir, 'b');
  const trust = { keys: [readPublicKey(key.publicPath)], allowUnsigned: false };
  await publishPackageVersion(repo, 'base', '1', files('1'), { sign: [key.key] });
  await publishPackageVersion(repo, 'base', '2', files('2'));
  await assert.rejects(open(repo, trust).readIndex(), (err: unknown) => isSysprimeError(err, 'REFUSED') && /is not signed/.test(err.message));
  assert.equal(await signIndex(repo, [key.key]), 2);
  await setCurrentVersion(repo, 'base', '1', { sign: [key.key] });
  assert.equal((await open(repo, trust).readIndex()).serial, 3);
});

test('rotation: signed by old and new, a tree trusting either reads it; an expired key alone is refused', async () => {
  const repo = join(dir, 'c');
  const old = testKey(dir, 'c-old', new Date(Date.now() + 3_600_000));
  const next = testKey(dir, 'c-new');
  await publishPackageVersion(repo, 'base', '1', files('1'), { sign: [old.key, next.key] });
  assert.equal(readFileSync(join(repo, 'index.json.sig'), 'utf8').trim().split('\n').length, 2);
  for (const k of [old, next]) await open(repo, { keys: [readPublicKey(k.publicPath)], allowUnsigned: false }).readIndex();

  const expired = testKey(dir, 'c-expired', new Date(Date.now() + 2_000));
  await signIndex(repo, [expired.key]);
  await new Promise((r) => setTimeout(r, 2_100));
  await assert.rejects(
    open(repo, { keys: [readPublicKey(expired.publicPath)], allowUnsigned: false }).readIndex(),
    (err: unknown) => isSysprimeError(err, 'REFUSED') && err.message.includes(`key ${expired.id} only, which expired`),
  );
  await assert.rejects(signIndex(repo, [expired.key]), (err: unknown) => isSysprimeError(err, 'REFUSED') && /expired/.test(err.message));
});

test('the repository id is chosen once and signed; serials are compared per id whatever the URL, and another id is refused unless pinned', async () => {
  const repo = join(dir, 'ids');
  const key = testKey(dir, 'ids');
  await publishPackageVersion(repo, 'base', '1', files('1'), { sign: [key.key], id: 'demo-os' });
  await publishPackageVersion(repo, 'base', '2', files('2'), { sign: [key.key] });
  const trust = { keys: [readPublicKey(key.publicPath)], allowUnsigned: false };
  const index = await open(repo, trust).readIndex();
  assert.equal(index.id, 'demo-os', 'kept at the second write');
  assert.equal(index.serial, 2);
  await assert.rejects(publishPackageVersion(repo, 'base', '3', files('3'), { sign: [key.key], id: 'other' }), (err: unknown) => isSysprimeError(err, 'USAGE') && /chosen once/.test(err.message));
  const built = (serial: number, repositoryId?: string): InstalledState => ({
    format: STORE_FORMAT,
    repository: 'https://old.example.org/demo/',
    serial,
    ...(repositoryId === undefined ? {} : { repositoryId }),
    packages: { base: { version: '1', manifest: 'a'.repeat(64) } },
  });
  // The same repository served from another URL: an older serial is still an old index served again.
  assert.throws(() => checkIndexSource(index, built(5, 'demo-os'), 'https://mirror.example.org/demo/', undefined), (err: unknown) => isSysprimeError(err, 'REFUSED') && /older \(serial 2\)/.test(err.message));
  checkIndexSource(index, built(2, 'demo-os'), 'https://mirror.example.org/demo/', undefined);
  // Another repository: refused naming both ids and the option, unless the admin pins it.
  assert.throws(
    () => checkIndexSource(index, built(1, 'other-os'), repo, undefined),
    (err: unknown) => isSysprimeError(err, 'REFUSED') && /repository demo-os, but this tree was built from repository other-os/.test(err.message) && /repository_id = "demo-os"/.test(err.hint ?? ''),
  );
  checkIndexSource(index, built(9, 'other-os'), repo, 'demo-os');
  assert.throws(() => checkIndexSource(index, built(1, 'demo-os'), repo, 'other-os'), (err: unknown) => isSysprimeError(err, 'REFUSED') && /not other-os as \[update\] repository_id says/.test(err.message));
});

test('allow_unsigned without trusted keys: a signature that is there, good or bad, is refused, never read past', async () => {
  const repo = join(dir, 'present-sig');
  const key = testKey(dir, 'present-sig');
  await publishPackageVersion(repo, 'base', '1', files('1'), { sign: [key.key] });
  const local = { keys: [], allowUnsigned: true };
  await assert.rejects(open(repo, local).readIndex(), (err: unknown) => isSysprimeError(err, 'REFUSED') && /no key in \[update\] trusted_keys can check its signature/.test(err.message));
  writeFileSync(join(repo, 'index.json.sig'), 'not a signature\n');
  await assert.rejects(open(repo, local).readIndex(), (err: unknown) => isSysprimeError(err, 'REFUSED'));
  rmSync(join(repo, 'index.json.sig'));
  assert.equal((await open(repo, local).readIndex()).serial, 1, 'unsigned, it is used (a local test repository)');
});

test('publish --sign checks the current index against the publishing keys before it signs it again', async () => {
  const repo = join(dir, 'republish');
  const key = testKey(dir, 'republish');
  const other = testKey(dir, 'republish-other');
  await publishPackageVersion(repo, 'base', '1', files('1'), { sign: [key.key] });
  // Changed by someone else: a version pointed elsewhere, the signature left as it was.
  const path = join(repo, 'index.json');
  const good = readFileSync(path, 'utf8');
  writeFileSync(path, good.replace('"current": "1"', '"current": "1" ').replace(/\n$/, ' \n'));
  await assert.rejects(
    publishPackageVersion(repo, 'base', '2', files('2'), { sign: [key.key] }),
    (err: unknown) => isSysprimeError(err, 'REFUSED') && /the current index of .* does not match.*it is not signed again/.test(err.message) && /--trust-index/.test(err.hint ?? ''),
  );
  assert.equal(readFileSync(path, 'utf8'), good.replace('"current": "1"', '"current": "1" ').replace(/\n$/, ' \n'), 'left as it was');
  writeFileSync(path, good);
  // Signed by another key only, or not at all: refused; --trust-index signs over it.
  await assert.rejects(publishPackageVersion(repo, 'base', '2', files('2'), { sign: [other.key] }), (err: unknown) => isSysprimeError(err, 'REFUSED') && /not trusted/.test(err.message));
  rmSync(join(repo, 'index.json.sig'));
  await assert.rejects(publishPackageVersion(repo, 'base', '2', files('2'), { sign: [key.key] }), (err: unknown) => isSysprimeError(err, 'REFUSED') && /is not signed/.test(err.message));
  await publishPackageVersion(repo, 'base', '2', files('2'), { sign: [key.key], trustIndex: true });
  await publishPackageVersion(repo, 'base', '3', files('3'), { sign: [key.key] });
  assert.equal((await open(repo, { keys: [readPublicKey(key.publicPath)], allowUnsigned: false }).readIndex()).packages['base']?.current, '3');
});
