/**
 * `bart compare` refuses a manifest `bart create` would never write, with
 * exit 2 and one line naming the line and what is wrong, instead of
 * comparing something else than what it says.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = join(fileURLToPath(new URL('../../../../', import.meta.url)), 'bin/sysprime');
const HEAD = '! Version 1.1\n! HASH SHA256\n! Saturday, December 05, 2026 (01:35:10)\n';
const SHA = 'a'.repeat(64);
const GOOD = `/ D 4096 40755 - 6568a2b0 0 0\n/etc D 4096 40755 - 6568a2b0 0 0\n/etc/passwd F 10 100644 - 6568a2b0 0 0 ${SHA}\n`;

function compare(control: string, testText = HEAD + GOOD) {
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-malformed-'));
  try {
    writeFileSync(join(dir, 'c'), control);
    writeFileSync(join(dir, 't'), testText);
    return spawnSync(process.execPath, [BIN, 'bart', 'compare', join(dir, 'c'), join(dir, 't')], { encoding: 'utf8' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a well-formed manifest still compares', () => {
  const r = compare(HEAD + GOOD);
  assert.equal(r.status, 0, r.stderr);
});

const cases: [string, string, RegExp][] = [
  ['a path without a leading /', `etc/shadow F 10 100644 - 6568a2b0 0 0 ${SHA}\n`, /line 4: path 'etc\/shadow' does not start with '\/'/],
  ['a .. component', `/../etc/shadow F 10 100644 - 6568a2b0 0 0 ${SHA}\n`, /line 4: path '\/\.\.\/etc\/shadow' has a '\.\.' component/],
  ['a . component', `/etc/./x F 10 100644 - 6568a2b0 0 0 ${SHA}\n`, /line 4: .* has a '\.' component/],
  ['an empty component', `/etc//x F 10 100644 - 6568a2b0 0 0 ${SHA}\n`, /line 4: .* has an empty component/],
  ['a lone backslash', `/etc/x\\ F 10 100644 - 6568a2b0 0 0 ${SHA}\n`, /line 4: path .* ends with a lone backslash/],
  ['an escape of two digits', `/etc/x\\12 F 10 100644 - 6568a2b0 0 0 ${SHA}\n`, /line 4: path .* has a bad escape/],
  ['an escape above one byte', `/etc/x\\400 F 10 100644 - 6568a2b0 0 0 ${SHA}\n`, /line 4: path .* has a bad escape/],
  ['a NUL in a path', `/etc/x\\000y F 10 100644 - 6568a2b0 0 0 ${SHA}\n`, /line 4: path .* holds a NUL byte/],
  ['a negative size', `/etc/x F -5 100644 - 6568a2b0 0 0 ${SHA}\n`, /line 4: size '-5' is out of range/],
  ['a size above 2^53', `/etc/x F 9007199254740993 100644 - 6568a2b0 0 0 ${SHA}\n`, /line 4: size '9007199254740993' is too large to be compared exactly/],
  ['a uid out of range', `/etc/x F 10 100644 - 6568a2b0 4294967296 0 ${SHA}\n`, /line 4: uid '4294967296' is out of range/],
  ['a negative gid', `/etc/x F 10 100644 - 6568a2b0 0 -1 ${SHA}\n`, /line 4: gid '-1' is out of range/],
  ['a mode out of range', `/etc/x F 10 1100644 - 6568a2b0 0 0 ${SHA}\n`, /line 4: mode '1100644' is out of range/],
  ['a duplicate entry', `/etc/x F 10 100644 - 6568a2b0 0 0 ${SHA}\n/etc/x F 11 100644 - 6568a2b0 0 0 ${SHA}\n`, /line 5: path '\/etc\/x' is listed again \(first on line 4\)/],
  // Out of order (a hand-written manifest), with the repeat lines apart: found all the same.
  [
    'a duplicate entry out of order',
    `/etc/b F 10 100644 - 6568a2b0 0 0 ${SHA}\n/etc/c F 10 100644 - 6568a2b0 0 0 ${SHA}\n/etc/a F 10 100644 - 6568a2b0 0 0 ${SHA}\n/etc/c F 11 100644 - 6568a2b0 0 0 ${SHA}\n`,
    /line 7: path '\/etc\/c' is listed again \(first on line 5\)/,
  ],
  // The same name written two ways (`\141` is `a`): a repeat all the same.
  ['a duplicate entry spelled another way', `/etc/a F 10 100644 - 6568a2b0 0 0 ${SHA}\n/etc/b F 10 100644 - 6568a2b0 0 0 ${SHA}\n/etc/\\141 F 11 100644 - 6568a2b0 0 0 ${SHA}\n`, /line 6: path '\/etc\/\\141' is listed again \(first on line 4\)/],
  ['a duplicate entry in order then not', `/etc/a F 10 100644 - 6568a2b0 0 0 ${SHA}\n/etc/b F 10 100644 - 6568a2b0 0 0 ${SHA}\n/etc/a F 11 100644 - 6568a2b0 0 0 ${SHA}\n`, /line 6: path '\/etc\/a' is listed again \(first on line 4\)/],
];

for (const [what, line, re] of cases) {
  test(`refused with exit 2: ${what}`, () => {
    const r = compare(HEAD + line);
    assert.equal(r.status, 2, `${what}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('sysprime:')).length, 1, r.stderr);
    // The same, as the test manifest.
    assert.equal(compare(HEAD + GOOD, HEAD + line).status, 2);
  });
}
