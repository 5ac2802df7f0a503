import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSysprimeError } from '../../../src/errors.js';
import { generateKeyPair, parsePublicKey, readPrivateKey, readPublicKey } from '../../../src/signing/keys.js';
import { parseSignatureFile, parseSignatureLine, signBytes, verifyBytes } from '../../../src/signing/signatures.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sysprime-signing-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const opts = { what: 'the test document', trustSource: '[update] trusted_keys' };
const data = Buffer.from('some bytes\n');

test('a generated pair signs and verifies; the public line names the key id derived from the key', () => {
  const g = generateKeyPair(join(dir, 'a.key'), { comment: 'tests' });
  const priv = readPrivateKey(g.privatePath);
  const pub = readPublicKey(g.publicPath);
  assert.equal(priv.id, g.id);
  assert.equal(pub.id, g.id);
  assert.match(g.id, /^[0-9a-f]{16}$/);
  const line = signBytes(priv, 'store-index', data);
  assert.match(line, new RegExp(`^sysprime-signature ed25519 ${g.id} `));
  assert.equal(verifyBytes([pub], 'store-index', data, [parseSignatureLine(line)!], opts).id, g.id);
});

test('a key file never overwrites another', () => {
  generateKeyPair(join(dir, 'once.key'));
  assert.throws(() => generateKeyPair(join(dir, 'once.key')), (err: unknown) => isSysprimeError(err, 'EXISTS'));
});

test('a public line whose id is not its key\'s is refused', () => {
  const g = generateKeyPair(join(dir, 'forged.key'));
  const line = readFileSync(g.publicPath, 'utf8').replace(g.id, '0123456789abcdef');
  assert.throws(() => parsePublicKey(line, 'forged.pub'), (err: unknown) => isSysprimeError(err, 'CONFIG') && /not the id of its key/.test(err.message));
});

test('altered bytes, another context, an untrusted key, no signature: each refused naming the key', () => {
  const a = generateKeyPair(join(dir, 'b.key'));
  const b = generateKeyPair(join(dir, 'c.key'));
  const sig = parseSignatureLine(signBytes(readPrivateKey(a.privatePath), 'store-index', data))!;
  const pubA = readPublicKey(a.publicPath);
  const pubB = readPublicKey(b.publicPath);
  assert.throws(
    () => verifyBytes([pubA], 'store-index', Buffer.from('some bytez\n'), [sig], opts),
    (err: unknown) => isSysprimeError(err, 'REFUSED') && err.message.includes(`by key ${a.id} does not match`),
  );
  assert.throws(() => verifyBytes([pubA], 'bart-manifest', data, [sig], opts), (err: unknown) => isSysprimeError(err, 'REFUSED') && /does not match/.test(err.message));
  assert.throws(
    () => verifyBytes([pubB], 'store-index', data, [sig], opts),
    (err: unknown) => isSysprimeError(err, 'REFUSED') && err.message.includes(`key ${a.id}, which is not trusted (trusted: ${b.id})`),
  );
  assert.throws(() => verifyBytes([pubA], 'store-index', data, [], opts), (err: unknown) => isSysprimeError(err, 'REFUSED') && /is not signed/.test(err.message));
  assert.throws(() => verifyBytes([], 'store-index', data, [sig], opts), (err: unknown) => isSysprimeError(err, 'CONFIG') && /no trusted key/.test(err.message));
});

test('rotation: several trusted keys, several signatures; an expired key verifies and signs nothing', () => {
  const old = generateKeyPair(join(dir, 'old.key'), { expires: new Date('2030-01-01T00:00:00Z') });
  const next = generateKeyPair(join(dir, 'new.key'));
  const oldPriv = readPrivateKey(old.privatePath);
  const sigs = parseSignatureFile(
    `${signBytes(oldPriv, 'store-index', data, new Date('2029-06-01T00:00:00Z'))}\n${signBytes(readPrivateKey(next.privatePath), 'store-index', data)}\n`,
    'index.json.sig',
  );
  const trusted = [readPublicKey(old.publicPath), readPublicKey(next.publicPath)];
  const before2030 = new Date('2029-06-01T00:00:00Z');
  const after2030 = new Date('2030-06-01T00:00:00Z');
  assert.equal(verifyBytes(trusted, 'store-index', data, sigs, { ...opts, now: before2030 }).id, old.id);
  assert.equal(verifyBytes(trusted, 'store-index', data, sigs, { ...opts, now: after2030 }).id, next.id, 'the new key carries it once the old one expired');
  assert.throws(
    () => verifyBytes(trusted, 'store-index', data, [sigs[0]!], { ...opts, now: after2030 }),
    (err: unknown) => isSysprimeError(err, 'REFUSED') && err.message.includes(`by key ${old.id} only, which expired at 2030-01-01T00:00:00.000Z`),
  );
  assert.throws(() => signBytes(oldPriv, 'store-index', data, after2030), (err: unknown) => isSysprimeError(err, 'REFUSED') && /expired/.test(err.message));
});

test('a signature file with a line that is not a signature is refused', () => {
  writeFileSync(join(dir, 'junk.sig'), 'hello\n');
  assert.throws(() => parseSignatureFile(readFileSync(join(dir, 'junk.sig'), 'utf8'), 'junk.sig'), (err: unknown) => isSysprimeError(err, 'REFUSED'));
});
