import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareManifests, differencesToJson, formatProgrammatic, formatVerbose } from '../../../src/bart/compare.js';
import { parseManifest } from '../../../src/bart/parse.js';
import { parseRules } from '../../../src/bart/rules.js';
import { makeHeader } from '../../../src/bart/format.js';
import type { Manifest, ManifestEntry } from '../../../src/bart/types.js';

const HEAD = '! Version 1.0\n! Thursday, December 04, 2003 (16:17:39)\n';
const control = parseManifest(
  HEAD +
    `/etc D 3584 40755 - 3c6803d7 0 3
/etc/gone F 1 100644 - 3c165878 0 3 aa
/etc/link L 5 120777 - 3c165878 0 0 /tmp
/etc/passwd F 74 100644 - 3c165879 0 3 daca28ae0de97afd7a6b91fde8d57afa
/etc/same F 1 100644 - 3c165878 0 3 bb
/etc/x\\040y F 1 100644 - 3c165878 0 3 cc
`,
  'control',
);
const testM = parseManifest(
  HEAD +
    `/etc D 3584 40755 - 3c6803ff 0 3
/etc/link L 5 120777 - 3c165899 0 0 /var
/etc/new F 1 100644 - 3c165878 0 3 dd
/etc/passwd F 81 100600 - 3c165979 0 3 84b2b32c4165887355317207b48a6ec7
/etc/same F 1 100644 - 3c165878 0 3 bb
/etc/x\\040y F 1 100644 - 3c165878 0 4 cc
`,
  'test',
);

test('verbose report, exactly as Solaris prints it', () => {
  const diffs = compareManifests(control, testM);
  assert.equal(
    formatVerbose(diffs),
    `/etc:
  dirmtime  control:3c6803d7  test:3c6803ff
/etc/gone:
  delete
/etc/link:
  lnmtime  control:3c165878  test:3c165899
  dest  control:/tmp  test:/var
/etc/new:
  add
/etc/passwd:
  size  control:74  test:81
  mode  control:100644  test:100600
  mtime  control:3c165879  test:3c165979
  contents  control:daca28ae0de97afd7a6b91fde8d57afa  test:84b2b32c4165887355317207b48a6ec7
/etc/x\\040y:
  gid  control:3  test:4
`,
  );
});

test('programmatic report (-p), exactly as Solaris prints it', () => {
  const diffs = compareManifests(control, testM, undefined, { ignore: ['dirmtime', 'lnmtime'] });
  assert.equal(
    formatProgrammatic(diffs),
    '/etc/gone delete \n/etc/link dest /tmp /var \n/etc/new add \n' +
      '/etc/passwd size 74 81 mode 100644 100600 mtime 3c165879 3c165979 contents daca28ae0de97afd7a6b91fde8d57afa 84b2b32c4165887355317207b48a6ec7 \n' +
      '/etc/x\\040y gid 3 4 \n',
  );
  assert.equal(formatProgrammatic([]), '');
});

test('rules decide what is checked where', () => {
  const rules = parseRules('/etc\nIGNORE dirmtime lnmtime\n/etc/passwd\nIGNORE all\n/etc/x*\nIGNORE gid\n/etc/gone\nIGNORE contents\n');
  const diffs = compareManifests(control, testM, rules);
  assert.deepEqual(
    diffs.map((d) => [d.path, d.kind, d.attributes.map((a) => a.name)]),
    [
      ['/etc/gone', 'delete', []],
      ['/etc/link', 'modify', ['dest']],
      ['/etc/new', 'add', []],
    ],
  );
});

test('JSON output and differences carry both entries', () => {
  const diffs = compareManifests(control, testM, undefined, { ignore: ['all'] });
  assert.deepEqual(diffs, []);
  const d = compareManifests(control, testM).find((x) => x.path === '/etc/x y')!;
  assert.equal(d.control!.gid, 3);
  assert.equal(d.test!.gid, 4);
  assert.deepEqual(differencesToJson([d]), { differences: [{ name: '/etc/x\\040y', kind: 'modify', attributes: [{ name: 'gid', control: '3', test: '4' }] }] });
});

test('type changes and xattrs (only when both sides collected them)', () => {
  const a = parseManifest('! Version 1.1\n! HASH XXH64\n! XATTRS\n/f F 1 100644 - 1 0 0 aa x:user.a=0x01\n/g D 1 40755 - 1 0 0\n');
  const b = parseManifest('! Version 1.1\n! HASH XXH64\n! XATTRS\n/f F 1 100644 - 1 0 0 aa x:user.a=0x02 x:user.b=0x03\n/g L 1 120777 - 1 0 0 /x\n');
  const rules = parseRules('/\nCHECK xattr\n');
  const diffs = compareManifests(a, b, rules);
  assert.deepEqual(diffs[0]!.attributes, [
    { name: 'xattr', xattr: 'user.a', control: '0x01', test: '0x02' },
    { name: 'xattr', xattr: 'user.b', control: '-', test: '0x03' },
  ]);
  assert.deepEqual(diffs[1]!.attributes.map((x) => x.name), ['type', 'mode', 'dest']);
  assert.match(formatVerbose(diffs), /  xattr:user\.a  control:0x01  test:0x02\n/);
  const noX = parseManifest('! Version 1.1\n! HASH XXH64\n/f F 1 100644 - 1 0 0 aa\n/g D 1 40755 - 1 0 0\n');
  assert.deepEqual(compareManifests(noX, a, rules), [], 'not collected on one side: not compared');
});

test('150,000 entries compare in one merge', () => {
  const mk = (n: number, salt: string): Manifest => {
    const entries: ManifestEntry[] = [];
    for (let i = 0; i < n; i++) entries.push({ path: `/usr/lib/${String(i).padStart(7, '0')}`, type: 'F', size: i, mode: 0o100644, acl: '-', mtime: 1, uid: 0, gid: 0, contents: i % 1000 === 0 ? salt : 'x' });
    return { header: makeHeader('xxh64'), entries };
  };
  const diffs = compareManifests(mk(150_000, 'a'), mk(150_000, 'b'));
  assert.equal(diffs.length, 150);
});
