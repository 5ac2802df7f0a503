import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planPrune, type PruneOptions, type RetentionEnvironment } from '../../../src/retention/plan.js';

const GiB = 2 ** 30;
/** Environments gen-1 (oldest) .. gen-N (newest), 1 GiB each unless said. */
function envs(n: number, over: Partial<Record<string, Partial<RetentionEnvironment>>> = {}): RetentionEnvironment[] {
  return Array.from({ length: n }, (_, i) => {
    const name = `gen-${i + 1}`;
    return { name, generation: i + 1, created: new Date(Date.UTC(2026, 0, i + 1)), createdOrder: i + 1, booted: false, isDefault: false, pinned: false, spaceUnique: GiB, ...over[name] };
  });
}
const opts = (o: Partial<PruneOptions> = {}): PruneOptions => ({ keep: 3, keepDays: 0, now: new Date(Date.UTC(2026, 5, 1)), minFreePercent: 0, poolFree: 50 * GiB, poolSize: 100 * GiB, oneShot: null, ...o });
const names = (xs: { name: string }[]) => xs.map((x) => x.name);

test('keeps the newest N and destroys the older ones, oldest first', () => {
  const plan = planPrune(envs(6), opts());
  assert.deepEqual(names(plan.keep), ['gen-6', 'gen-5', 'gen-4']);
  assert.deepEqual(names(plan.destroy), ['gen-1', 'gen-2', 'gen-3']);
  assert.ok(plan.destroy.every((d) => d.reason === 'beyond-keep'));
  assert.ok(plan.keep.every((k) => k.reasons.join() === 'newest'));
  assert.equal(plan.space.freeAfter, 53 * GiB);
});

test('never the booted, the default or the one-shot environment, however old', () => {
  const plan = planPrune(envs(6, { 'gen-1': { booted: true }, 'gen-2': { isDefault: true } }), opts({ oneShot: 'gen-3' }));
  assert.deepEqual(names(plan.destroy), []);
  const why = Object.fromEntries(plan.keep.map((k) => [k.name, k.reasons]));
  assert.deepEqual(why['gen-1'], ['booted']);
  assert.deepEqual(why['gen-2'], ['default']);
  assert.deepEqual(why['gen-3'], ['one-shot']);
  assert.match(plan.keep.find((k) => k.name === 'gen-1')!.why, /running now/);
});

test('nothing to do when there are no more than N', () => {
  const plan = planPrune(envs(2), opts());
  assert.deepEqual(plan.destroy, []);
  assert.equal(plan.space.floorMet, true);
});

test('below the free-space floor, older kept ones go until the floor is met', () => {
  // 10% free of 100 GiB, floor 13%: pruning beyond keep (gen-1) frees 1 GiB, then gen-2 and gen-3 go for the floor.
  const plan = planPrune(envs(4), opts({ keep: 3, minFreePercent: 13, poolFree: 10 * GiB }));
  assert.deepEqual(names(plan.destroy), ['gen-1', 'gen-2', 'gen-3']);
  assert.deepEqual(plan.destroy.map((d) => d.reason), ['beyond-keep', 'free-space', 'free-space']);
  assert.deepEqual(names(plan.keep), ['gen-4']);
  assert.equal(plan.space.floorMet, true);
  assert.equal(plan.space.freeAfter, 13 * GiB);
});

test('the floor never takes a protected environment; the plan says the floor is not met', () => {
  const plan = planPrune(envs(3, { 'gen-3': { booted: true, isDefault: true } }), opts({ minFreePercent: 50, poolFree: 10 * GiB }));
  assert.deepEqual(names(plan.destroy), ['gen-1', 'gen-2']);
  assert.deepEqual(names(plan.keep), ['gen-3']);
  assert.equal(plan.space.floorMet, false);
  assert.match(plan.notes.join('\n'), /stays below its 50% floor/);
});

test('unknown space: the planner says it cannot compute and destroys nothing more for the floor', () => {
  const plan = planPrune(envs(4, { 'gen-2': { spaceUnique: null } }), opts({ keep: 3, minFreePercent: 20, poolFree: 10 * GiB }));
  assert.deepEqual(names(plan.destroy), ['gen-1']);
  assert.equal(plan.space.floorMet, null);
  assert.match(plan.notes.join('\n'), /cannot compute how much destroying "gen-2" frees/);

  const beyond = planPrune(envs(4, { 'gen-1': { spaceUnique: null } }), opts({ keep: 3, minFreePercent: 20, poolFree: 10 * GiB }));
  assert.deepEqual(names(beyond.destroy), ['gen-1']);
  assert.equal(beyond.space.freeAfter, null);
  assert.equal(beyond.space.floorMet, null);
  assert.match(beyond.notes.join('\n'), /cannot compute the free space after pruning/);
});

test('order is by creation order in the pool, even when the clock says otherwise', () => {
  const list = envs(3);
  list[0]!.createdOrder = 10; // gen-1 recreated last: newest
  list[2]!.created = new Date(Date.UTC(2020, 0, 1)); // gen-3 made while the clock was years behind
  const plan = planPrune(list, opts({ keep: 2 }));
  assert.deepEqual(names(plan.keep), ['gen-1', 'gen-3']);
  assert.deepEqual(names(plan.destroy), ['gen-2']);
});

test('within one second, the creation order decides; names do not (old2 made after old1 is newer)', () => {
  const second = new Date(Date.UTC(2026, 5, 1, 12, 0, 0));
  const list = envs(3).map((e) => ({ ...e, created: second, generation: 0 }));
  // gen-3 first, then gen-1, then gen-2: name order and creation order disagree.
  list[2]!.createdOrder = 10;
  list[0]!.createdOrder = 11;
  list[1]!.createdOrder = 12;
  const plan = planPrune(list, opts({ keep: 1 }));
  assert.deepEqual(names(plan.keep), ['gen-2']);
  assert.deepEqual(names(plan.destroy), ['gen-3', 'gen-1']);
});

test('a one-shot name that does not exist is noted', () => {
  assert.match(planPrune(envs(1), opts({ oneShot: 'ghost' })).notes.join(), /"ghost" does not exist/);
});

const MiB = 2 ** 20;
const espFiles = (n: number, each = 60 * MiB) => new Map(Array.from({ length: n }, (_, i) => [`gen-${i + 1}`, each] as const));

test('ESP: enough room for one more kernel set, nothing more goes', () => {
  const plan = planPrune(envs(4), opts({ keep: 3, esp: { free: 100 * MiB, need: 60 * MiB, perEnvironment: espFiles(4) } }));
  assert.deepEqual(names(plan.destroy), ['gen-1']);
  assert.deepEqual(plan.space.esp, { freeBefore: 100 * MiB, freeAfter: 160 * MiB, need: 60 * MiB, met: true });
});

test('ESP: short of room, older kept environments go until one more kernel set fits, and the plan says why', () => {
  // 10 MiB free; gen-1 (beyond keep) frees 60, still short of 100: gen-2 goes for the ESP.
  const plan = planPrune(envs(4), opts({ keep: 3, esp: { free: 10 * MiB, need: 100 * MiB, perEnvironment: espFiles(4) } }));
  assert.deepEqual(names(plan.destroy), ['gen-1', 'gen-2']);
  assert.deepEqual(plan.destroy.map((d) => d.reason), ['beyond-keep', 'esp-space']);
  assert.match(plan.destroy[1]!.why, /ESP lacks room for one more kernel/);
  assert.equal(plan.space.esp?.met, true);
});

test('ESP: protected environments never go for it, environments without files there are not taken, and the shortfall is said', () => {
  const files = new Map([
    ['gen-2', 0],
    ['gen-3', 60 * MiB],
  ]);
  const plan = planPrune(envs(3, { 'gen-3': { booted: true, isDefault: true } }), opts({ keep: 3, esp: { free: 0, need: 60 * MiB, perEnvironment: files } }));
  assert.deepEqual(names(plan.destroy), [], 'gen-1 and gen-2 have nothing on the ESP; gen-3 is protected');
  assert.equal(plan.space.esp?.met, false);
  assert.match(plan.notes.join('\n'), /ESP stays short of room/);
});

test('a pinned environment is never destroyed, however old, and does not count in keep', () => {
  const plan = planPrune(envs(6, { 'gen-1': { pinned: true } }), opts({ keep: 3 }));
  assert.deepEqual(names(plan.destroy), ['gen-2', 'gen-3']);
  assert.deepEqual(names(plan.keep), ['gen-6', 'gen-5', 'gen-4', 'gen-1'], 'the 3 newest unpinned, and the pinned one besides');
  const pinned = plan.keep.find((k) => k.name === 'gen-1')!;
  assert.deepEqual(pinned.reasons, ['pinned']);
  assert.equal(pinned.why, 'it is pinned');
});

test('neither the free-space floor nor the ESP takes a pinned environment', () => {
  const floor = planPrune(envs(3, { 'gen-1': { pinned: true }, 'gen-2': { pinned: true } }), opts({ keep: 1, minFreePercent: 90, poolFree: 0 }));
  assert.deepEqual(names(floor.destroy), ['gen-3'], 'only the unpinned one, kept as the newest, goes for the floor');
  assert.equal(floor.space.floorMet, false);
  const esp = planPrune(envs(2, { 'gen-1': { pinned: true } }), opts({ keep: 1, esp: { free: 0, need: 60 * MiB, perEnvironment: espFiles(2) } }));
  assert.deepEqual(names(esp.destroy), ['gen-2']);
  assert.ok(esp.keep.some((k) => k.name === 'gen-1' && k.reasons.includes('pinned')));
});

test('keep_days: an environment stays while among the newest OR younger than keep_days', () => {
  // gen-1 .. gen-6 made on January 1st .. 6th; now is January 10th, 12:00.
  const now = new Date(Date.UTC(2026, 0, 10, 12));
  const plan = planPrune(envs(6), opts({ keep: 2, keepDays: 7, now }));
  // Younger than 7 days: made after January 3rd, 12:00, so gen-4 .. gen-6; gen-5 and gen-6 are also the 2 newest.
  assert.deepEqual(names(plan.destroy), ['gen-1', 'gen-2', 'gen-3']);
  assert.deepEqual(Object.fromEntries(plan.keep.map((k) => [k.name, k.reasons])), { 'gen-6': ['newest', 'recent'], 'gen-5': ['newest', 'recent'], 'gen-4': ['recent'] });
  assert.equal(plan.keep.find((k) => k.name === 'gen-4')!.why, 'it is younger than 7 days');
  assert.equal(plan.destroy[0]!.why, 'older than the 2 newest, and made 7 days ago or more');
  // Exactly keep_days old is old: 7 × 24 hours after gen-4 was made, it goes.
  const later = planPrune(envs(6), opts({ keep: 2, keepDays: 7, now: new Date(Date.UTC(2026, 0, 11)) }));
  assert.deepEqual(names(later.destroy), ['gen-1', 'gen-2', 'gen-3', 'gen-4']);
  // The count still keeps old ones: with nothing young, the 2 newest stay.
  const quiet = planPrune(envs(6), opts({ keep: 2, keepDays: 7, now: new Date(Date.UTC(2027, 0, 1)) }));
  assert.deepEqual(names(quiet.keep), ['gen-6', 'gen-5']);
  // 0 turns the rule off.
  assert.deepEqual(names(planPrune(envs(6), opts({ keep: 2, keepDays: 0, now })).keep), ['gen-6', 'gen-5']);
});

test('keep_days: the free-space floor may still take young environments, oldest first; an unknown creation time is never young', () => {
  const now = new Date(Date.UTC(2026, 0, 10));
  const plan = planPrune(envs(4), opts({ keep: 1, keepDays: 30, now, minFreePercent: 52, poolFree: 50 * GiB }));
  assert.deepEqual(names(plan.destroy), ['gen-1', 'gen-2']);
  assert.deepEqual(plan.destroy.map((d) => d.reason), ['free-space', 'free-space']);
  const unknown = planPrune(envs(2, { 'gen-1': { created: new Date(0) } }), opts({ keep: 1, keepDays: 30, now }));
  assert.deepEqual(names(unknown.destroy), ['gen-1']);
  assert.match(unknown.notes.join('\n'), /creation time of "gen-1" is unknown/);
});

test('a mounted environment (a shell in it, an admin looking through a mount) is kept, whatever else would destroy it', () => {
  const plan = planPrune(envs(6, { 'gen-1': { mounted: '/run/sysprime/mount/gen-1' } }), opts({ keep: 2, minFreePercent: 90, poolFree: 0 }));
  assert.deepEqual(names(plan.keep), ['gen-1'], 'the newest go for the free-space floor; the mounted one stays');
  assert.deepEqual(plan.keep[0]!.reasons, ['mounted']);
  assert.match(plan.keep[0]!.why, /^it is mounted/);
  const unmounted = planPrune(envs(6), opts({ keep: 2 }));
  assert.ok(names(unmounted.destroy).includes('gen-1'), 'unmounted, the same one goes');
});

test('keep_auto: the apt hook\'s environments are counted apart, so a day of package operations pushes none of the admin\'s out', () => {
  const auto = { auto: true };
  // gen-1..3 the admin's, gen-4..8 made before package operations, gen-8 pinned.
  const plan = planPrune(envs(8, { 'gen-4': auto, 'gen-5': auto, 'gen-6': auto, 'gen-7': auto, 'gen-8': { auto: true, pinned: true } }), opts({ keep: 2, keepAuto: 2 }));
  assert.deepEqual(names(plan.destroy), ['gen-1', 'gen-4', 'gen-5']);
  const why = Object.fromEntries(plan.keep.map((k) => [k.name, k.reasons]));
  assert.deepEqual(why, { 'gen-8': ['pinned'], 'gen-7': ['newest-auto'], 'gen-6': ['newest-auto'], 'gen-3': ['newest'], 'gen-2': ['newest'] });
  assert.match(plan.destroy.find((d) => d.name === 'gen-4')!.why, /package operation.*keep_auto/);
  assert.match(plan.destroy.find((d) => d.name === 'gen-1')!.why, /^older than the 2 newest$/);
  // keep_auto = 0 keeps none of them (but the pinned one); without keepAuto they count against keep like any other.
  assert.deepEqual(names(planPrune(envs(8, { 'gen-4': auto, 'gen-5': auto, 'gen-6': auto, 'gen-7': auto, 'gen-8': auto }), opts({ keep: 2, keepAuto: 0 })).destroy), ['gen-1', 'gen-4', 'gen-5', 'gen-6', 'gen-7', 'gen-8']);
  assert.deepEqual(names(planPrune(envs(4, { 'gen-4': auto }), opts({ keep: 2 })).destroy), ['gen-1', 'gen-2']);
});
