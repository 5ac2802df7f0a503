/** What a machine may do in the fleet, decided on one snapshot of etcd's keys. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideAcquire, haltsToResume, keyOf, readSnapshot, type FleetSnapshot, type MachineRecord } from '../../../src/fleet/plan.js';
import { lineageAfter, updateIdentity } from '../../../src/staging/update-identity.js';

const P = '/sysprime/fleet';
const holder = (group: string, slot: number, id: string) => [keyOf.slot(P, group, slot), JSON.stringify({ id, generation: 2, since: 't', lease: '1' })] as const;
const machine = (m: Partial<MachineRecord> & { id: string; group: string }) =>
  [keyOf.machine(P, m.id), JSON.stringify({ running: 1, staged: null, health: 'good', reason: null, updated: 't', ...m })] as const;
const snap = (...kv: (readonly [string, string])[]): FleetSnapshot => readSnapshot(P, Object.fromEntries(kv));
const req = { id: 'w1', group: 'web', slots: 2, after: [] as string[], generation: 2, update: null as string | null, lineage: [] as string[] };

test('the snapshot reads slots, machines and halts, and skips what sysprime did not write', () => {
  const s = snap(holder('web', 1, 'w2'), machine({ id: 'w2', group: 'web' }), [keyOf.halted(P, '3'), JSON.stringify({ by: 'c1', group: 'canary', reason: 'x', at: 't' })], [`${P}/slots/web/0`, 'not json'], ['/other/key', '{}']);
  assert.deepEqual(s.holders.map((h) => [h.group, h.slot, h.id]), [['web', 1, 'w2']]);
  assert.equal(s.machines.length, 1);
  assert.deepEqual(s.halted.map((h) => h.generation), [3]);
});

test('a free slot is taken, the lowest first; a full group is refused naming its holders', () => {
  assert.deepEqual(decideAcquire(snap(), req), { kind: 'take', slot: 0 });
  assert.deepEqual(decideAcquire(snap(holder('web', 0, 'w2')), req), { kind: 'take', slot: 1 });
  assert.deepEqual(decideAcquire(snap(holder('web', 1, 'w2'), holder('db', 0, 'd1')), req), { kind: 'take', slot: 0 });
  const full = decideAcquire(snap(holder('web', 0, 'w2'), holder('web', 1, 'w3')), req);
  assert.equal(full.kind, 'full');
  assert.match(full.kind === 'full' ? full.why : '', /2 slots, all held: w2 .*w3/);
});

test('a slot already held is kept, even when the group is full since', () => {
  const d = decideAcquire(snap(holder('web', 0, 'w2'), holder('web', 1, 'w1')), req);
  assert.equal(d.kind, 'held');
});

test('a halted generation is refused; another generation is not', () => {
  const halted = [keyOf.halted(P, '2'), JSON.stringify({ by: 'c1', group: 'canary', reason: 'nginx failed', at: 't' })] as const;
  const d = decideAcquire(snap(halted), req);
  assert.equal(d.kind, 'halted');
  assert.match(d.kind === 'halted' ? d.why : '', /failed on c1.*nginx failed.*fleet resume 2/);
  assert.equal(decideAcquire(snap(halted), { ...req, generation: 3 }).kind, 'take');
});

test('after: waits until every machine of the groups before runs the generation healthily; an unknown group is said', () => {
  const after = { ...req, after: ['canary'] };
  assert.equal(decideAcquire(snap(), after).kind, 'unknown-group');
  const behind = decideAcquire(snap(machine({ id: 'c1', group: 'canary', running: 2, health: 'good' }), machine({ id: 'c2', group: 'canary', running: 1 })), after);
  assert.equal(behind.kind, 'waiting');
  assert.match(behind.kind === 'waiting' ? behind.why : '', /c2 runs 1/);
  assert.equal(decideAcquire(snap(machine({ id: 'c1', group: 'canary', running: 2, health: 'pending' })), after).kind, 'waiting');
  assert.equal(decideAcquire(snap(machine({ id: 'c1', group: 'canary', running: 2 }), machine({ id: 'c2', group: 'canary', running: 3 })), after).kind, 'take');
});

test('an update\'s identity is its package changes, the same whatever each machine went from; none without a package change', () => {
  const a = updateIdentity([{ name: 'openssl', from: '3.0.1', to: '3.0.2' }, { name: 'curl', from: '7.1', to: '7.2' }]);
  const b = updateIdentity([{ name: 'curl', from: '7.0', to: '7.2' }, { name: 'openssl', from: '3.0.0', to: '3.0.2' }]);
  assert.match(a ?? '', /^u-[0-9a-f]{16}$/);
  assert.equal(a, b, 'the same packages brought, in another order, from other versions');
  assert.notEqual(updateIdentity([{ name: 'openssl', from: '3.0.1', to: '3.0.3' }]), updateIdentity([{ name: 'openssl', from: '3.0.1', to: '3.0.2' }]));
  assert.notEqual(updateIdentity([{ name: 'openssl', from: '3.0.1', to: null }]), updateIdentity([{ name: 'openssl', from: '3.0.1', to: '3.0.1' }]), 'a removal is not an install');
  assert.equal(updateIdentity([]), null);
  assert.deepEqual(lineageAfter(['u-1'], 'u-2'), ['u-1', 'u-2']);
  assert.deepEqual(lineageAfter(['u-1'], null), ['u-1'], 'an update without identity adds nothing');
  assert.equal(lineageAfter([], 'x').length, 1);
  assert.equal(lineageAfter(Array.from({ length: 100 }, (_, i) => `u-${i}`), 'y').length, 64, 'the lineage is bounded');
});

test('a halted update stops every generation built on it, on any machine, whatever its number; another update is not stopped', () => {
  const bad = 'u-00000000000000aa';
  const halted = [keyOf.halted(P, bad), JSON.stringify({ generation: 4, by: 'c1', group: 'canary', reason: 'nginx failed', at: 't' })] as const;
  const s = snap(halted);
  assert.deepEqual(s.halted.map((h) => [h.key, h.update, h.generation]), [[bad, bad, 4]]);
  const same = decideAcquire(s, { ...req, generation: 2, update: bad, lineage: ['u-1', bad] });
  assert.equal(same.kind, 'halted', 'the same update as generation 2 here');
  assert.match(same.kind === 'halted' ? same.why : '', new RegExp(`update ${bad} \\(generation 4 on c1\\) is halted.*nginx failed.*fleet resume ${bad}`));
  const built = decideAcquire(s, { ...req, generation: 5, update: 'u-00000000000000bb', lineage: [bad, 'u-00000000000000bb'] });
  assert.equal(built.kind, 'halted', 'the next update, staged on the bad one');
  assert.match(built.kind === 'halted' ? built.why : '', /generation 5 here is built on it/);
  assert.equal(decideAcquire(s, { ...req, generation: 4, update: 'u-00000000000000cc', lineage: ['u-00000000000000cc'] }).kind, 'take', 'generation 4 of another update');
  const unknown = decideAcquire(s, { ...req, generation: 4 });
  assert.equal(unknown.kind, 'halted', 'a target whose update is not known is judged by number');
  assert.match(unknown.kind === 'halted' ? unknown.why : '', /generation 4 here, whose updates are not known, is held back with it/);
  assert.deepEqual(haltsToResume(s, bad).map((h) => h.key), [bad]);
  assert.deepEqual(haltsToResume(s, '4').map((h) => h.key), [bad], 'by the generation it failed as');
  assert.deepEqual(haltsToResume(s, '5'), []);
});

test('after: a group before this one runs the update when its lineage holds it, whatever its generation numbers', () => {
  const u = 'u-00000000000000dd';
  const after = { ...req, after: ['canary'], generation: 3, update: u, lineage: ['u-1', u] };
  assert.equal(decideAcquire(snap(machine({ id: 'c1', group: 'canary', running: 9, lineage: ['u-1'] })), after).kind, 'waiting', 'a higher number without the update');
  assert.equal(decideAcquire(snap(machine({ id: 'c1', group: 'canary', running: 1, lineage: ['u-1', u] })), after).kind, 'take', 'a lower number with it');
  assert.equal(decideAcquire(snap(machine({ id: 'c1', group: 'canary', running: 4, lineage: [u, 'u-2'] })), after).kind, 'take', 'something built on it');
  assert.equal(decideAcquire(snap(machine({ id: 'c1', group: 'canary', running: 3 })), after).kind, 'take', 'a record without lineage: by number');
});
