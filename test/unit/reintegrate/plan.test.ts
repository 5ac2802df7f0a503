import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planReintegration, type PlanAction } from '../../../src/reintegrate/plan.js';
import { planSinceStaging } from '../../../src/reintegrate/since-staging.js';
import { parseRules } from '../../../src/bart/rules.js';
import type { EntryType, Manifest, ManifestEntry } from '../../../src/bart/types.js';

const MODE: Record<EntryType, number> = { F: 0o100644, D: 0o40755, L: 0o120777, P: 0o10644, S: 0o140755, B: 0o60660, C: 0o20660, O: 0o150644 };

function e(path: string, type: EntryType, more: Partial<ManifestEntry> = {}): ManifestEntry {
  const base: ManifestEntry = { path, type, size: 0, mode: MODE[type], acl: '-', mtime: 1, uid: 0, gid: 0 };
  if (type === 'F') base.contents = 'h0';
  if (type === 'L') base.dest = 'target';
  return { ...base, ...more, ...(more.mode !== undefined ? { mode: (MODE[type] & ~0o7777) | more.mode } : {}) };
}
const f = (path: string, contents: string, more: Partial<ManifestEntry> = {}) => e(path, 'F', { contents, size: contents.length, ...more });
const d = (path: string, more: Partial<ManifestEntry> = {}) => e(path, 'D', more);
const l = (path: string, dest: string) => e(path, 'L', { dest });

function m(...entries: ManifestEntry[]): Manifest {
  return { header: { version: '1.1', hash: 'xxh64', root: '/', date: 'x' }, entries: [d('/etc'), ...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)) };
}

function plan(base: ManifestEntry[], ours: ManifestEntry[], theirs: ManifestEntry[]): Map<string, PlanAction> {
  const p = planReintegration({ base: m(...base), ours: m(...ours), theirs: m(...theirs) });
  return new Map(p.actions.map((a) => [a.path, a]));
}
function one(base: ManifestEntry[], ours: ManifestEntry[], theirs: ManifestEntry[], path: string): PlanAction | undefined {
  return plan(base, ours, theirs).get(path);
}

test('admin changed content, update unchanged: the admin\'s file', () => {
  const a = one([f('/etc/a', 'b')], [f('/etc/a', 'o')], [f('/etc/a', 'b')], '/etc/a');
  assert.equal(a?.action, 'copy');
  assert.equal(a?.reason, 'admin-changed');
});

test('nothing changed by the admin: no action, whatever the update did', () => {
  const p = plan([f('/etc/a', 'b'), f('/etc/c', 'b')], [f('/etc/a', 'b'), f('/etc/c', 'b')], [f('/etc/a', 't'), f('/etc/n', 'n')]);
  assert.equal(p.size, 0);
});

test('both changed content: three-way merge', () => {
  const a = one([f('/etc/a', 'b')], [f('/etc/a', 'o')], [f('/etc/a', 't')], '/etc/a');
  assert.equal(a?.action, 'merge');
  assert.equal(a?.reason, 'both-changed');
});

test('both made the same change: keep', () => {
  const a = one([f('/etc/a', 'b')], [f('/etc/a', 'x')], [f('/etc/a', 'x')], '/etc/a');
  assert.equal(a?.action, 'keep');
  assert.equal(a?.reason, 'same-change');
});

test('admin added, update absent: the admin\'s file', () => {
  const a = one([], [f('/usr/local/bin/tool', 'x')], [], '/usr/local/bin/tool');
  assert.equal(a?.action, 'copy');
  assert.equal(a?.reason, 'admin-added');
  assert.deepEqual(a?.meta, { mode: 0o644, uid: 0, gid: 0, acl: 'ours', xattrs: 'ours' });
});

test('both added the same path: equal is nothing, different is a conflict', () => {
  assert.equal(one([], [f('/etc/n', 'x')], [f('/etc/n', 'x')], '/etc/n')?.action, 'keep');
  const c = one([], [f('/etc/n', 'x')], [f('/etc/n', 'y')], '/etc/n');
  assert.equal(c?.action, 'conflict');
  assert.equal(c?.reason, 'both-added-differ');
});

test('admin deleted, update unchanged: deleted', () => {
  const a = one([f('/etc/a', 'b')], [], [f('/etc/a', 'b')], '/etc/a');
  assert.equal(a?.action, 'delete');
  assert.equal(a?.reason, 'admin-deleted');
  assert.equal(a?.notice, undefined);
});

test('admin deleted, update changed: deletion kept and reported', () => {
  const a = one([f('/etc/a', 'b')], [], [f('/etc/a', 't')], '/etc/a');
  assert.equal(a?.action, 'delete');
  assert.equal(a?.reason, 'deleted-update-changed');
  assert.equal(a?.notice, true);
});

test('both deleted: nothing to do', () => {
  assert.equal(one([f('/etc/a', 'b')], [], [], '/etc/a'), undefined);
});

test('chmod only: metadata replayed with the admin\'s mode, the update\'s owner', () => {
  const a = one([f('/etc/a', 'b', { mode: 0o644 })], [f('/etc/a', 'b', { mode: 0o600 })], [f('/etc/a', 'b', { mode: 0o644, uid: 7 })], '/etc/a');
  assert.equal(a?.action, 'metadata');
  assert.deepEqual(a?.meta, { mode: 0o600, uid: 7, gid: 0, acl: 'theirs', xattrs: 'theirs' });
});

test('chown only, update changed the content: admin\'s owner on the update\'s content', () => {
  const a = one([f('/etc/a', 'b')], [f('/etc/a', 'b', { uid: 1000, gid: 1000 })], [f('/etc/a', 't')], '/etc/a');
  assert.equal(a?.action, 'metadata');
  assert.equal(a?.meta?.uid, 1000);
  assert.equal(a?.meta?.gid, 1000);
});

test('xattr only: the changed names come from the admin', () => {
  const a = one([f('/etc/a', 'b', { xattrs: { 'user.k': '0x01' } })], [f('/etc/a', 'b', { xattrs: { 'user.k': '0x02', 'user.n': '0x03' } })], [f('/etc/a', 'b', { xattrs: { 'user.k': '0x01' } })], '/etc/a');
  assert.equal(a?.action, 'metadata');
  assert.deepEqual(a?.meta?.xattrs, { ours: ['user.k', 'user.n'] });
});

test('acl only: the admin\'s ACL', () => {
  const a = one([f('/etc/a', 'b')], [f('/etc/a', 'b', { acl: 'user::rw-,user:1000:r--,group::r--,mask::r--,other::r--' })], [f('/etc/a', 'b')], '/etc/a');
  assert.equal(a?.action, 'metadata');
  assert.equal(a?.meta?.acl, 'ours');
});

test('both changed the mode differently: the admin\'s wins, reported', () => {
  const a = one([f('/etc/a', 'b', { mode: 0o644 })], [f('/etc/a', 'b', { mode: 0o600 })], [f('/etc/a', 'b', { mode: 0o640 })], '/etc/a');
  assert.equal(a?.meta?.mode, 0o600);
  assert.equal(a?.notice, true);
});

test('mtime alone is not drift', () => {
  assert.equal(one([f('/etc/a', 'b')], [f('/etc/a', 'b', { mtime: 99 })], [f('/etc/a', 'b')], '/etc/a'), undefined);
});

test('symlink retargeted, update left it alone: the admin\'s link', () => {
  const a = one([l('/etc/l', 'one')], [l('/etc/l', 'two')], [l('/etc/l', 'one')], '/etc/l');
  assert.equal(a?.action, 'copy');
  assert.equal(a?.reason, 'admin-changed');
});

test('symlink retargeted, update retargeted it too: conflict', () => {
  const a = one([l('/etc/l', 'one')], [l('/etc/l', 'two')], [l('/etc/l', 'three')], '/etc/l');
  assert.equal(a?.action, 'conflict');
});

test('file replaced by a directory, update left it alone: the admin\'s directory and its entries', () => {
  const p = plan([f('/etc/x', 'b')], [d('/etc/x'), f('/etc/x/one', '1')], [f('/etc/x', 'b')]);
  assert.equal(p.get('/etc/x')?.action, 'copy');
  assert.equal(p.get('/etc/x')?.reason, 'admin-retyped');
  assert.equal(p.get('/etc/x/one')?.action, 'copy');
});

test('directory replaced by a file, update left it alone: entries deleted, then the file', () => {
  const p = plan([d('/etc/x'), f('/etc/x/one', '1')], [f('/etc/x', 'o')], [d('/etc/x'), f('/etc/x/one', '1')]);
  assert.equal(p.get('/etc/x')?.action, 'copy');
  assert.equal(p.get('/etc/x/one')?.action, 'delete');
});

test('directory replaced by a file while the update changed an entry in it: conflict, the entries stay with the update\'s directory', () => {
  const p = plan([d('/etc/x'), f('/etc/x/one', '1')], [f('/etc/x', 'o')], [d('/etc/x'), f('/etc/x/one', '2')]);
  assert.equal(p.get('/etc/x')?.action, 'conflict');
  assert.equal(p.get('/etc/x/one')?.action, 'skip');
  assert.equal(p.get('/etc/x/one')?.reason, 'inside-sidelined');
});

test('type changed by both differently: conflict', () => {
  const a = one([f('/etc/x', 'b')], [l('/etc/x', 'y')], [d('/etc/x')], '/etc/x');
  assert.equal(a?.action, 'conflict');
  assert.equal(a?.reason, 'type-conflict');
});

test('the update replaced a directory the admin added to: conflict at the directory, the admin\'s entries all come back', () => {
  const p = plan([d('/etc/x'), f('/etc/x/pkg', 'p')], [d('/etc/x'), f('/etc/x/pkg', 'p'), f('/etc/x/mine', 'm')], [l('/etc/x', '/usr/share/x')]);
  assert.equal(p.get('/etc/x')?.action, 'conflict');
  assert.equal(p.get('/etc/x/mine')?.action, 'copy');
  assert.equal(p.get('/etc/x/pkg')?.action, 'copy');
  assert.equal(p.get('/etc/x/pkg')?.reason, 'restored-with-parent');
});

test('admin deleted a directory the update added entries to: kept for them, the others deleted', () => {
  const p = plan([d('/etc/x'), f('/etc/x/a', 'a')], [], [d('/etc/x'), f('/etc/x/a', 'a'), f('/etc/x/new', 'n')]);
  assert.equal(p.get('/etc/x/a')?.action, 'delete');
  assert.equal(p.get('/etc/x')?.action, 'keep');
  assert.equal(p.get('/etc/x')?.reason, 'directory-kept');
  assert.equal(p.has('/etc/x/new'), false);
});

test('admin deleted a whole directory: every entry and the directory deleted', () => {
  const p = plan([d('/etc/x'), d('/etc/x/y'), f('/etc/x/y/a', 'a')], [], [d('/etc/x'), d('/etc/x/y'), f('/etc/x/y/a', 'a')]);
  assert.deepEqual([...p.values()].map((a) => [a.path, a.action]), [['/etc/x', 'delete'], ['/etc/x/y', 'delete'], ['/etc/x/y/a', 'delete']]);
});

test('admin added an empty directory: created', () => {
  assert.equal(one([], [d('/srv/data', { mode: 0o750 })], [], '/srv/data')?.action, 'copy');
});

test('admin changed a file the update removed: the admin\'s is kept, reported', () => {
  const a = one([f('/etc/a', 'b')], [f('/etc/a', 'o')], [], '/etc/a');
  assert.equal(a?.action, 'copy');
  assert.equal(a?.reason, 'admin-kept-update-removed');
  assert.equal(a?.notice, true);
});

test('account databases are merged by entry', () => {
  for (const p of ['/etc/passwd', '/etc/group', '/etc/shadow', '/etc/gshadow', '/etc/subuid', '/etc/subgid', '/etc/passwd-']) {
    assert.equal(one([f(p, 'b')], [f(p, 'o')], [f(p, 't')], p)?.action, 'accounts', p);
    assert.equal(one([f(p, 'b')], [f(p, 'o')], [f(p, 'b')], p)?.action, 'accounts', p);
  }
});

test('sockets are not carried over', () => {
  assert.equal(one([], [e('/srv/s', 'S')], [], '/srv/s')?.action, 'skip');
});

test('rules: paths outside them are left alone, ignored attributes are not replayed', () => {
  const rules = parseRules('/etc\nCHECK all\nIGNORE uid gid\n');
  const p = planReintegration({
    base: m(f('/etc/a', 'b'), f('/var/x', 'b')),
    ours: m(f('/etc/a', 'b', { uid: 5 }), f('/var/x', 'o')),
    theirs: m(f('/etc/a', 'b'), f('/var/x', 'b')),
    rules,
  });
  assert.deepEqual(p.actions, []);
});

test('the plan is sorted, deterministic and survives JSON', () => {
  const base = [f('/etc/b', 'b'), f('/etc/a', 'b')];
  const ours = [f('/etc/b', 'o'), f('/etc/a', 'o'), f('/etc/\xff\n-x', 'n')];
  const p1 = planReintegration({ base: m(...base), ours: m(...ours), theirs: m(...base) });
  const p2 = planReintegration({ base: m(...base), ours: m(...[...ours].reverse()), theirs: m(...base) });
  assert.deepEqual(p1, p2);
  assert.deepEqual(JSON.parse(JSON.stringify(p1)), p1);
  assert.deepEqual(p1.actions.map((a) => a.path), ['/etc/\xff\n-x', '/etc/a', '/etc/b'].sort());
  assert.deepEqual(p1.counts, { copy: 3 });
});

test('manifests with different hashes are refused', () => {
  const other: Manifest = { ...m(), header: { version: '1.1', hash: 'sha256', root: '/', date: 'x' } };
  assert.throws(() => planReintegration({ base: m(), ours: other, theirs: m() }), /different content hashes/);
});

test('since staging: only what changed after staging, and reverted changes put back', () => {
  const base = [f('/etc/a', 'b'), f('/etc/b', 'b'), f('/etc/c', 'b')];
  const atStaging = [f('/etc/a', 'o1'), f('/etc/b', 'o1'), f('/etc/c', 'o1')];
  const now = [f('/etc/a', 'o1'), f('/etc/b', 'o2'), f('/etc/c', 'b'), f('/etc/d', 'new')];
  const p = planSinceStaging({ base: m(...base), oursAtStaging: m(...atStaging), oursNow: m(...now), theirs: m(...base) });
  assert.deepEqual(
    p.actions.map((a) => [a.path, a.action]),
    [
      ['/etc/b', 'copy'],
      ['/etc/c', 'restore'],
      ['/etc/d', 'copy'],
    ],
  );
});

test("a `.sysprime-new` an earlier staging left is sysprime's, not the admin's: not carried over while unchanged", () => {
  const base = [f('/etc/hostname', 'update-2')];
  const theirs = [f('/etc/hostname', 'update-3')];
  const left = plan(base, [f('/etc/hostname', 'admin'), f('/etc/hostname.sysprime-new', 'update-2'), f('/etc/motd.sysprime-new.1', 'x')], theirs);
  assert.equal(left.get('/etc/hostname.sysprime-new')?.action, 'skip');
  assert.equal(left.get('/etc/hostname.sysprime-new')?.reason, 'sysprime-sidelined');
  assert.equal(left.get('/etc/hostname.sysprime-new')?.meta, undefined);
  assert.equal(left.get('/etc/motd.sysprime-new.1')?.reason, 'admin-added', 'beside nothing the update shipped: the admin\'s');
  // Edited by the admin since: the admin's now, carried over like any file the admin added.
  const edited = plan(base, [f('/etc/hostname', 'admin'), f('/etc/hostname.sysprime-new', 'merged by hand')], theirs);
  assert.equal(edited.get('/etc/hostname.sysprime-new')?.action, 'copy');
  assert.equal(edited.get('/etc/hostname.sysprime-new')?.reason, 'admin-added');
});
