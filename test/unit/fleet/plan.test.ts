/** What a machine may do in the fleet, decided on one snapshot of etcd's keys. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideAcquire, keyOf, readSnapshot, type FleetSnapshot, type MachineRecord } from '../../../src/fleet/plan.js';

const P = '/sysprime/fleet';
const holder = (group: string, slot: number, id: string) => [keyOf.slot(P, group, slot), JSON.stringify({ id, generation: 2, since: 't', lease: '1' })] as const;
const machine = (m: Partial<MachineRecord> & { id: string; group: string }) =>
  [keyOf.machine(P, m.id), JSON.stringify({ running: 1, staged: null, health: 'good', reason: null, updated: 't', ...m })] as const;
const snap = (...kv: (readonly [string, string])[]): FleetSnapshot => readSnapshot(P, Object.fromEntries(kv));
const req = { id: 'w1', group: 'web', slots: 2, after: [] as string[], generation: 2 };

test('the snapshot reads slots, machines and halts, and skips what sysprime did not write', () => {
  const s = snap(holder('web', 1, 'w2'), machine({ id: 'w2', group: 'web' }), [keyOf.halted(P, 3), JSON.stringify({ by: 'c1', group: 'canary', reason: 'x', at: 't' })], [`${P}/slots/web/0`, 'not json'], ['/other/key', '{}']);
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
  const halted = [keyOf.halted(P, 2), JSON.stringify({ by: 'c1', group: 'canary', reason: 'nginx failed', at: 't' })] as const;
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
