/**
 * What Solaris BART does, checked against its source, and how sysprime
 * matches it: compare's default flags, the rules grammar, old manifests and
 * the Hash header.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseManifest } from '../../../src/bart/parse.js';
import { ATTR, DEFAULT_FLAGS, parseRules, ruleFor } from '../../../src/bart/rules.js';
import { compareManifests } from '../../../src/bart/compare.js';

const BIN = join(fileURLToPath(new URL('../../../../', import.meta.url)), 'bin/sysprime');

function cli(files: Record<string, string>, args: (dir: string) => string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-solaris-'));
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    return spawnSync(process.execPath, [BIN, 'bart', ...args(dir)], { encoding: 'utf8' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const V10 = '! Version 1.0\n! Thursday, December 04, 2003 (16:17:39)\n';

test('compare without rules checks every attribute but dirmtime, as init_default_flags', () => {
  const c = `${V10}/etc D 3584 40755 - 3c6803d7 0 3\n/etc/f F 1 100644 - 3c165878 0 3 aa\n`;
  const t = `${V10}/etc D 3584 40755 - 3c6803ff 0 3\n/etc/f F 1 100644 - 3c165878 0 3 aa\n`;
  const same = cli({ c, t }, (d) => ['compare', join(d, 'c'), join(d, 't')]);
  assert.equal(same.status, 0, same.stdout + same.stderr);
  assert.equal(same.stdout, '');
  const t2 = `${V10}/etc D 3584 40755 - 3c6803ff 0 3\n/etc/f F 1 100644 - 3c165879 0 3 aa\n`;
  const diff = cli({ c, t: t2 }, (d) => ['compare', '-p', join(d, 'c'), join(d, 't')]);
  assert.equal(diff.status, 1);
  assert.equal(diff.stdout, '/etc/f mtime 3c165878 3c165879 \n');
  // Asked for, it is reported.
  const asked = cli({ c, t, r: 'CHECK dirmtime\n' }, (d) => ['compare', '-p', '-r', join(d, 'r'), join(d, 'c'), join(d, 't')]);
  assert.equal(asked.status, 1, asked.stderr);
  assert.match(asked.stdout, /^\/etc dirmtime 3c6803d7 3c6803ff/);
});

test("rules: a bare CHECK (bart_rules(4)'s sample), keywords in any case, add and delete", () => {
  const sample = parseRules('/usr/lib/nis\nCHECK\nIGNORE dirmtime mtime\n/etc\nCHECK ALL\nIGNORE Mtime ADD\n');
  const nis = ruleFor(sample, '/usr/lib/nis/x', 'F', true)!;
  assert.equal(nis.flags & ATTR.mtime, 0);
  assert.ok(nis.flags & ATTR.contents);
  const etc = ruleFor(sample, '/etc/x', 'F', true)!;
  assert.equal(etc.flags & (ATTR.mtime | ATTR.add), 0);
  assert.ok(etc.flags & ATTR.delete);
  const del = parseRules('IGNORE delete\ncheck uid\n');
  assert.equal(del.globalFlags & ATTR.delete, 0);
});

test('rules: a bare IGNORE is accepted as Solaris accepts it, changes no flag and ends the block', () => {
  const r = parseRules('IGNORE\n/etc\nIGNORE\n/usr\nignore mtime\n');
  assert.equal(r.globalFlags, DEFAULT_FLAGS);
  assert.equal(ruleFor(r, '/etc/x', 'F', true)!.flags, DEFAULT_FLAGS, 'the bare IGNORE changed nothing of /etc');
  assert.equal(ruleFor(r, '/usr/x', 'F', true)!.flags, DEFAULT_FLAGS & ~ATTR.mtime, 'it ended /etc\'s block: IGNORE mtime is /usr\'s alone');
});

test('Solaris 10 manifests before 2010: B and C lines without devnode, door entries', () => {
  const m = parseManifest(`${V10}/dev/null C 0 20666 - 3c165878 0 3\n/dev/sda B 0 60660 - 3c165878 0 6\n/var/run/name_service_door O 0 160444 - 3c165878 0 0\n`);
  assert.deepEqual(
    m.entries.map((e) => [e.path, e.type, e.devnode]),
    [
      ['/dev/null', 'C', undefined],
      ['/dev/sda', 'B', undefined],
      ['/var/run/name_service_door', 'O', undefined],
    ],
  );
  assert.deepEqual(compareManifests(m, m), []);
});

test('the Hash header: written as Solaris 11 writes it, read in any case, SHA1/SHA384/SHA512 too', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-solaris-tree-'));
  try {
    writeFileSync(join(dir, 'f'), 'x\n');
    const r = spawnSync(process.execPath, [BIN, 'bart', 'create', '--hash', 'sha256', '-R', dir], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^! Version 1\.1\n! Hash SHA256\n/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(parseManifest('! Version 1.1\n! HASH SHA256\n/ D 1 40755 - 1 0 0\n').header.hash, 'sha256', 'what sysprime wrote before still reads');
  for (const alg of ['SHA1', 'SHA384', 'SHA512']) assert.equal(parseManifest(`! Version 1.1\n! Hash ${alg}\n/ D 1 40755 - 1 0 0\n`).header.hash, alg.toLowerCase());
});

test('manifests of different hash algorithms are not compared: exit 2', () => {
  const a = '! Version 1.1\n! Hash SHA256\n/f F 1 100644 - 1 0 0 ' + 'a'.repeat(64) + '\n';
  const b = '! Version 1.1\n! Hash SHA512\n/f F 1 100644 - 1 0 0 ' + 'b'.repeat(128) + '\n';
  const r = cli({ a, b }, (d) => ['compare', join(d, 'a'), join(d, 'b')]);
  assert.equal(r.status, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /uses sha256 and .* sha512: digests of different algorithms cannot be compared/);
  assert.equal(r.stdout, '');
});
