import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ALL, ATTR, EVERYTHING, KEYWORDS, applyIgnoreList, parseRules, ruleFor, walkRoots, rootContext, enter, decide, shouldDescend } from '../../../src/bart/rules.js';
import { globToRegExp } from '../../../src/bart/glob.js';
import { isSysprimeError } from '../../../src/errors.js';
import type { EntryType } from '../../../src/bart/types.js';

const flagsAt = (text: string, path: string, type: EntryType = 'F') => ruleFor(parseRules(text), path, type)?.flags;

test('globs: fnmatch with FNM_PATHNAME', () => {
  assert.ok(globToRegExp('*.c').test('a.c'));
  assert.ok(!globToRegExp('*.c').test('d/a.c'));
  assert.ok(globToRegExp('SCCS/*.c').test('SCCS/a.c'));
  assert.ok(globToRegExp('[!a]?').test('bc'));
  assert.ok(!globToRegExp('[!a]?').test('ac'));
  assert.ok(globToRegExp('[a-c]x').test('bx'));
  assert.ok(globToRegExp('a\\*').test('a*'));
  assert.ok(!globToRegExp('a\\*').test('ab'));
  assert.ok(globToRegExp('a\\040b').test('a b'));
  assert.ok(globToRegExp('[x').test('[x'));
});

test('no rules file: everything under / with every Solaris attribute', () => {
  const r = parseRules('');
  assert.equal(r.hasSubtrees, false);
  assert.equal(ruleFor(r, '/anything', 'F')!.flags, ALL);
});

test('every keyword can be checked and ignored', () => {
  for (const k of KEYWORDS) {
    const bits = k === 'all' ? ALL : ATTR[k as keyof typeof ATTR];
    assert.equal(flagsAt(`IGNORE all\n/\nCHECK ${k}\n`, '/x'), bits, `CHECK ${k}`);
    const ignored = flagsAt(`/\nIGNORE ${k}\n`, '/x')!;
    assert.equal(ignored, k === 'all' ? 0 : ALL & ~bits, `IGNORE ${k}`);
  }
  assert.equal(flagsAt('/\nIGNORE all\nCHECK xattr\n', '/x'), ATTR.xattr);
  assert.equal(flagsAt('/\nCHECK all xattr\n', '/x'), EVERYTHING);
});

test('global block sets what later subtrees start with; later statements win', () => {
  const text = 'IGNORE dirmtime mtime\n/etc\nCHECK mtime\n/etc/ssh\nIGNORE contents\n';
  assert.equal(flagsAt(text, '/etc/passwd'), ALL & ~ATTR.dirmtime);
  assert.equal(flagsAt(text, '/etc/ssh/sshd_config'), ALL & ~ATTR.dirmtime & ~ATTR.mtime & ~ATTR.contents);
  assert.equal(flagsAt(text, '/usr/bin/ls'), undefined, 'outside every subtree');
  assert.equal(ruleFor(parseRules(text), '/usr/bin/ls', 'F', true)!.flags, ALL & ~ATTR.dirmtime & ~ATTR.mtime, 'compare covers it with the global flags');
});

test('several subtree lines form one block; directives apply to all of them', () => {
  const text = '/etc\n/opt\n/srv\nIGNORE uid gid\n/etc/x\nIGNORE mode\n';
  const r = parseRules(text);
  for (const p of ['/etc/a', '/opt/b', '/srv/c']) assert.equal(ruleFor(r, p, 'F')!.flags, ALL & ~ATTR.uid & ~ATTR.gid, p);
  assert.equal(ruleFor(r, '/etc/x/y', 'F')!.flags, ALL & ~ATTR.mode);
});

test('patterns: ANDed, ! negates, trailing / matches directories', () => {
  const text = '/home *.c !test_* \n/src !CVS/\n/w SCCS/\n';
  const r = parseRules(text);
  assert.ok(ruleFor(r, '/home/u/a.c', 'F'));
  assert.equal(ruleFor(r, '/home/u/test_a.c', 'F'), undefined);
  assert.equal(ruleFor(r, '/home/u/a.h', 'F'), undefined);
  assert.equal(ruleFor(r, '/home/u', 'D'), undefined, 'a file pattern does not select directories');
  assert.ok(ruleFor(r, '/src/a/b.c', 'F'));
  assert.equal(ruleFor(r, '/src/a/CVS/Entries', 'F'), undefined);
  assert.equal(ruleFor(r, '/src/a/CVS', 'D'), undefined);
  assert.ok(ruleFor(r, '/w/x/SCCS/s.a', 'F'));
  assert.equal(ruleFor(r, '/w/x/s.a', 'F'), undefined);
});

test('walk helpers prune ignored subtrees and negated directories', () => {
  const r = parseRules('/\nCHECK all\n/var/log\n/tmp\nIGNORE all\n/var/log/keep\nCHECK all\n/src !.git/\n');
  assert.deepEqual(walkRoots(r), ['/']);
  const at = (path: string) => path.split('/').filter(Boolean).reduce((c, n) => enter(c, n), rootContext(r));
  assert.equal(shouldDescend(at('/tmp'), ['tmp']), false);
  assert.equal(decide(at('/tmp'), ['tmp'], 'D')!.flags, 0);
  assert.equal(shouldDescend(at('/var/log'), ['var', 'log']), true, 'a later rule lives below');
  assert.equal(shouldDescend(at('/var/log/x'), ['var', 'log', 'x']), false);
  assert.equal(decide(at('/var/log/keep/a'), ['var', 'log', 'keep', 'a'], 'F')!.flags, ALL);
  // '/' still covers /src/.git: the rule that prunes it is not the only one holding it.
  assert.equal(shouldDescend(at('/src/.git'), ['src', '.git']), true);
  const r2 = parseRules('/src !.git/\n');
  const at2 = (path: string) => path.split('/').filter(Boolean).reduce((c, n) => enter(c, n), rootContext(r2));
  assert.equal(shouldDescend(at2('/src/.git'), ['src', '.git']), false);
  assert.equal(shouldDescend(at2('/src/lib'), ['src', 'lib']), true);
  assert.deepEqual(walkRoots(parseRules('/etc\n/etc/ssh\n/usr/*/bin\n')), ['/etc', '/usr']);
});

test('continuations and comments', () => {
  const text = '# a comment\n/etc   # trailing comment\nIGNORE mode \\\n  uid \\\n  gid\n\n';
  assert.equal(flagsAt(text, '/etc/x'), ALL & ~ATTR.mode & ~ATTR.uid & ~ATTR.gid);
});

test('errors name the line', () => {
  const bad = (text: string, re: RegExp) =>
    assert.throws(
      () => parseRules(text, 'my.rules'),
      (err) => isSysprimeError(err, 'RULES') && re.test(err.message),
    );
  bad('/etc\nCHECK colour\n', /my\.rules, line 2: unknown attribute 'colour'/);
  bad('\n\nIGNORE mode bogus\n', /line 3: unknown attribute 'bogus'/);
  bad('/etc\netc/ssh\n', /line 2: 'etc\/ssh' is neither/);
  bad('/etc\n# x\nCHECK mode \\\n bogus\n', /line 3: unknown attribute 'bogus'/);
});

test('-i list clears attributes; unknown names are usage errors', () => {
  assert.equal(applyIgnoreList('mode,uid'), ALL & ~ATTR.mode & ~ATTR.uid);
  assert.throws(() => applyIgnoreList('mode,nope'), (err) => isSysprimeError(err, 'USAGE'));
});

test("the shipped rules leave out OpenZFS's own records of the pools, and check the admin's ZFS configuration", async () => {
  const { readFileSync } = await import('node:fs');
  const { SHIPPED_RULES } = await import('../../../src/drift/rules.js');
  const r = parseRules(readFileSync(SHIPPED_RULES, 'utf8'), SHIPPED_RULES);
  // zed rewrites the mount generator's cache at every dataset change, sysprime's own clones included.
  for (const p of ['/etc/zfs/zfs-list.cache/rpool', '/etc/zfs/zfs-list.cache/bpool', '/etc/zfs/zpool.cache']) assert.equal(ruleFor(r, p, 'F')!.flags, 0, p);
  for (const p of ['/etc/zfs/vdev_id.conf', '/etc/default/zfs', '/etc/fstab']) assert.notEqual(ruleFor(r, p, 'F')!.flags, 0, p);
});
