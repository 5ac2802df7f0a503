import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planSnapshotPrune, type RetentionSnapshot, type SnapshotPruneOptions } from '../../../src/retention/snapshots.js';

const now = new Date(Date.UTC(2026, 5, 30));
const DAY = 24 * 60 * 60 * 1000;
const opts = (o: Partial<SnapshotPruneOptions> = {}): SnapshotPruneOptions => ({ keepSnapshots: 2, keepDays: 0, now, pinned: new Set(), going: new Set(), ...o });

/** n snapshots s1..sn of `env`, one a day, the last one made yesterday. */
function snaps(env: string, n: number, order0 = 0): RetentionSnapshot[] {
  return Array.from({ length: n }, (_, i) => ({ environment: env, name: `s${i + 1}`, created: new Date(now.getTime() - (n - i) * DAY), createdOrder: order0 + i + 1 }));
}
const ids = (list: readonly { environment: string; name: string }[]): string[] => list.map((s) => `${s.environment}@${s.name}`);

test('each environment keeps its newest snapshots; the older ones go, oldest first', () => {
  const plan = planSnapshotPrune([...snaps('a', 4), ...snaps('b', 1, 10)], opts());
  assert.deepEqual(ids(plan.destroy), ['a@s1', 'a@s2']);
  assert.deepEqual(ids(plan.keep).sort(), ['a@s3', 'a@s4', 'b@s1']);
});

test('creation order decides "newest", not the clock', () => {
  const list = snaps('a', 3);
  list[0]!.created = new Date(now.getTime() + DAY); // a clock that jumped
  assert.deepEqual(ids(planSnapshotPrune(list, opts({ keepSnapshots: 1 })).destroy), ['a@s1', 'a@s2']);
});

test('a pinned environment keeps all its snapshots; one that is destroyed lists none', () => {
  const plan = planSnapshotPrune([...snaps('a', 4), ...snaps('b', 4, 10)], opts({ pinned: new Set(['a']), going: new Set(['b']) }));
  assert.deepEqual(plan.destroy, []);
  assert.deepEqual(ids(plan.keep), ['a@s4', 'a@s3', 'a@s2', 'a@s1']);
  assert.match(plan.keep[3]!.why, /pinned/);
});

test('keep_days keeps the young ones beyond the count; 0 keeps none by count', () => {
  assert.deepEqual(ids(planSnapshotPrune(snaps('a', 5), opts({ keepSnapshots: 0, keepDays: 3 })).destroy), ['a@s1', 'a@s2', 'a@s3']);
  assert.deepEqual(ids(planSnapshotPrune(snaps('a', 2), opts({ keepSnapshots: 0 })).destroy), ['a@s1', 'a@s2']);
});
