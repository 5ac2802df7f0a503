/** The plan below shared paths inside the root: users' data, the running system's version wins. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planReintegration, type PlanAction } from '../../../src/reintegrate/plan.js';
import { planSinceStaging } from '../../../src/reintegrate/since-staging.js';
import type { EntryType, Manifest, ManifestEntry } from '../../../src/bart/types.js';

const MODE: Record<EntryType, number> = { F: 0o100644, D: 0o40755, L: 0o120777, P: 0o10644, S: 0o140755, B: 0o60660, C: 0o20660, O: 0o150644 };

function e(path: string, type: EntryType, more: Partial<ManifestEntry> = {}): ManifestEntry {
  const base: ManifestEntry = { path, type, size: 0, mode: MODE[type], acl: '-', mtime: 1, uid: 0, gid: 0 };
  if (type === 'F') base.contents = 'h0';
  return { ...base, ...more, ...(more.mode !== undefined ? { mode: (MODE[type] & ~0o7777) | more.mode } : {}) };
}
const f = (path: string, contents: string, more: Partial<ManifestEntry> = {}) => e(path, 'F', { contents, size: contents.length, ...more });
const d = (path: string, more: Partial<ManifestEntry> = {}) => e(path, 'D', more);

function m(...entries: ManifestEntry[]): Manifest {
  return { header: { version: '1.1', hash: 'xxh64', root: '/', date: 'x' }, entries: [d('/etc'), d('/home'), d('/var'), d('/var/log'), ...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)) };
}

const SHARED = ['/home', '/var/log'];

function plan(base: ManifestEntry[], ours: ManifestEntry[], theirs: ManifestEntry[]): Map<string, PlanAction> {
  const p = planReintegration({ base: m(...base), ours: m(...ours), theirs: m(...theirs), shared: SHARED });
  return new Map(p.actions.map((a) => [a.path, a]));
}

test('both changed a file below a shared path: the running system\'s version is copied, no merge', () => {
  const a = plan([f('/var/log/messages', 'b')], [f('/var/log/messages', 'o', { mode: 0o640 })], [f('/var/log/messages', 't')]).get('/var/log/messages');
  assert.equal(a?.action, 'copy');
  assert.equal(a?.reason, 'shared-data');
  assert.equal(a?.meta?.mode, 0o640);
});

test('outside the shared paths the three-way plan is unchanged', () => {
  const a = plan([f('/etc/a', 'b')], [f('/etc/a', 'o')], [f('/etc/a', 't')]).get('/etc/a');
  assert.equal(a?.action, 'merge');
  assert.equal(a?.reason, 'both-changed');
});

test('a user file added, a user file deleted, a new directory with its owner', () => {
  const p = plan(
    [f('/home/old', 'x')],
    [d('/home/alice', { uid: 1000, gid: 1000, mode: 0o700 }), f('/home/alice/notes', 'n', { uid: 1000, gid: 1000 })],
    [f('/home/old', 'x')],
  );
  assert.deepEqual([p.get('/home/old')?.action, p.get('/home/old')?.reason], ['delete', 'shared-data']);
  assert.deepEqual([p.get('/home/alice')?.action, p.get('/home/alice')?.meta?.uid, p.get('/home/alice')?.meta?.mode], ['copy', 1000, 0o700]);
  assert.deepEqual([p.get('/home/alice/notes')?.action, p.get('/home/alice/notes')?.meta?.uid], ['copy', 1000]);
});

test("a file only the update wrote below a shared path stays the update's", () => {
  const p = plan([], [], [f('/var/log/update.log', 'u')]);
  assert.equal(p.size, 0);
});

test('metadata only: the running system\'s metadata; a type clash keeps both, the running system\'s in place', () => {
  const p = plan(
    [f('/home/a', 'x'), f('/home/b', 'x')],
    [f('/home/a', 'x', { mode: 0o600 }), d('/home/b')],
    [f('/home/a', 'x'), f('/home/b', 'y')],
  );
  assert.deepEqual([p.get('/home/a')?.action, p.get('/home/a')?.meta?.mode], ['metadata', 0o600]);
  assert.equal(p.get('/home/b')?.action, 'conflict');
});

test('at first boot the same policy holds for what changed since staging', () => {
  const base = m(f('/home/a', 'b'));
  const oursAtStaging = m(f('/home/a', 'o1'));
  const oursNow = m(f('/home/a', 'o2'), f('/home/new', 'n'));
  const theirs = m(f('/home/a', 't'));
  const p = planSinceStaging({ base, oursAtStaging, oursNow, theirs, shared: SHARED });
  assert.deepEqual(
    p.actions.map((a) => [a.path, a.action, a.reason]),
    [
      ['/home/a', 'copy', 'shared-data'],
      ['/home/new', 'copy', 'shared-data'],
    ],
  );
});
