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
