/**
 * Signed manifests through the command line: `bart create --sign KEY` puts
 * the signature in a last comment line, `bart compare --verify KEY.pub`
 * refuses a manifest altered after signing, signed by another key or not
 * signed; a signed manifest, Solaris-format too, still reads in a plain
 * compare (comments are skipped, as Solaris bart skips them).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { appendSignature, splitSignature, verifyManifest } from '../../../src/bart/signed.js';
import { isSysprimeError } from '../../../src/errors.js';
import { generateKeyPair, readPrivateKey, readPublicKey } from '../../../src/signing/keys.js';

const BIN = join(fileURLToPath(new URL('../../../../', import.meta.url)), 'bin/sysprime');
const bart = (...args: string[]) => spawnSync(process.execPath, [BIN, 'bart', ...args], { encoding: 'utf8' });

let dir: string;
let tree: string;
let key: string;
let other: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sysprime-bart-signed-'));
  tree = join(dir, 'tree');
  mkdirSync(join(tree, 'etc'), { recursive: true });
  writeFileSync(join(tree, 'etc/a.conf'), 'a = 1\n');
  writeFileSync(join(tree, 'etc/b.conf'), 'b = 2\n');
  key = generateKeyPair(join(dir, 'audit.key')).privatePath;
  other = generateKeyPair(join(dir, 'other.key')).privatePath;
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** The one error line of a refused compare. */
function refusal(r: ReturnType<typeof bart>): string {
  assert.equal(r.status, 2, r.stdout + r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('sysprime: '));
  assert.equal(lines.length, 1, r.stderr);
  return lines[0]!;
}

test('a signed manifest verifies, and reads in a plain compare', () => {
  const m = join(dir, 'signed.manifest');
  const c = bart('create', '--hash', 'sha256', '--sign', key, '-R', tree, '-o', m);
  assert.equal(c.status, 0, c.stderr);
  const lines = readFileSync(m, 'latin1').trimEnd().split('\n');
  assert.match(lines.at(-1)!, /^# sysprime-signature ed25519 [0-9a-f]{16} \S+$/);
  const now = join(dir, 'now.manifest');
  assert.equal(bart('create', '--hash', 'sha256', '-R', tree, '-o', now).status, 0);
  const v = bart('compare', '--verify', `${key}.pub`, m, now);
  assert.equal(v.status, 0, v.stdout + v.stderr);
  assert.equal(v.stdout, '');
  const plain = bart('compare', m, now);
  assert.equal(plain.status, 0, plain.stdout + plain.stderr);
  // A signed test manifest is checked too.
  assert.equal(bart('compare', '--verify', `${key}.pub`, m, m).status, 0);
});

test('an altered line, another key, no signature: each refused with one line naming the key', () => {
  const m = join(dir, 'm.manifest');
  assert.equal(bart('create', '--hash', 'sha256', '--sign', key, '-R', tree, '-o', m).status, 0);
  const id = readPublicKey(`${key}.pub`).id;
  const text = readFileSync(m, 'latin1');
  const tampered = join(dir, 'tampered.manifest');
  // /etc/a.conf's mode made 100600 in the manifest: its line changed, the signature kept.
  writeFileSync(tampered, text.replace(/^(\/etc\/a\.conf F \d+ )100644/m, '$1100600'), 'latin1');
  assert.notEqual(readFileSync(tampered, 'latin1'), text);
  assert.match(refusal(bart('compare', '--verify', `${key}.pub`, tampered, m)), new RegExp(`manifest ${tampered} by key ${id} does not match`));
  assert.match(refusal(bart('compare', '--verify', `${key}.pub`, m, tampered)), /does not match/, 'a signed test manifest is checked too');
  assert.match(refusal(bart('compare', '--verify', `${other}.pub`, m, m)), new RegExp(`signed by key ${id}, which is not trusted`));
  const unsigned = join(dir, 'unsigned.manifest');
  assert.equal(bart('create', '--hash', 'sha256', '-R', tree, '-o', unsigned).status, 0);
  assert.match(refusal(bart('compare', '--verify', `${key}.pub`, unsigned, m)), /is not signed/);
  // Without --verify the same tampered manifest is just a manifest: the difference is reported.
  assert.equal(bart('compare', '-p', tampered, m).status, 1);
});

test('--sign with --previous hashes every file (the previous index is not signed), and no old signature is copied', () => {
  const m1 = join(dir, 'inc1.manifest');
  const m2 = join(dir, 'inc2.manifest');
  assert.equal(bart('create', '--sign', key, '--index', '-R', tree, '-o', m1).status, 0);
  const r = bart('create', '--sign', key, '--index', '--previous', m1, '-R', tree, '-o', m2);
  assert.equal(r.status, 0, r.stderr);
  // The signature vouches for every digest: none is copied from the unsigned index's cache.
  assert.match(r.stderr, /not used, as a signed manifest hashes every file.*walking the whole tree/);
  assert.equal(bart('compare', '--verify', `${key}.pub`, m1, m2).status, 0);
  assert.equal(readFileSync(m2, 'latin1').trimEnd().split('\n').filter((l) => l.startsWith('# sysprime-signature')).length, 1, 'the old signature is not copied');
});

test('a Solaris-format manifest with a signature still reads in a plain compare', () => {
  const solaris = Buffer.from(
    '! Version 1.0\n! Thursday, December 04, 2003 (16:17:39)\n# Format:\n#fname D size mode acl dirmtime uid gid\n#fname F size mode acl mtime uid gid contents\n/etc D 3584 40755 - 3c6803d7 0 3\n/etc/f F 1 100644 - 3c165878 0 3 aa\n',
    'latin1',
  );
  const signed = appendSignature(solaris, readPrivateKey(key));
  assert.deepEqual(splitSignature(signed).signed, solaris);
  verifyManifest(signed, [readPublicKey(`${key}.pub`)], 'solaris.manifest', '--verify');
  assert.throws(() => verifyManifest(solaris, [readPublicKey(`${key}.pub`)], 'solaris.manifest', '--verify'), (err: unknown) => isSysprimeError(err, 'REFUSED'));
  writeFileSync(join(dir, 'sol-signed'), signed);
  writeFileSync(join(dir, 'sol-plain'), solaris);
  const r = bart('compare', join(dir, 'sol-signed'), join(dir, 'sol-plain'));
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.equal(bart('compare', '--verify', `${key}.pub`, join(dir, 'sol-signed'), join(dir, 'sol-plain')).status, 0);
});
