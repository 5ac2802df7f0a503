/**
 * The VM suite's slots: lowest priority first, and work queued by what
 * awaited a finished job (a machine's install, then its first scenario)
 * gets the freed slot before work of a lower priority already waiting.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Slots } from '../../../vm-tests/slots.js';

test('one slot: the lowest priority waiting goes first, and a follow-up queued at once outranks a waiting lower priority', async () => {
  const slots = new Slots(() => 1);
  const order: string[] = [];
  const job = (name: string) => async (): Promise<void> => {
    order.push(name);
    await new Promise((r) => setTimeout(r, 5));
  };
  const install = slots.run(1, job('install')).then(() => slots.run(1.5, job('longest')));
  const other = slots.run(3, job('other machine'));
  const later = slots.run(100, job('short'));
  await Promise.all([install, other, later]);
  assert.deepEqual(order, ['install', 'longest', 'other machine', 'short']);
});

test('two slots run two at a time', async () => {
  const slots = new Slots(() => 2);
  let running = 0;
  let most = 0;
  const job = async (): Promise<void> => {
    running++;
    most = Math.max(most, running);
    await new Promise((r) => setTimeout(r, 10));
    running--;
  };
  await Promise.all([1, 2, 3, 4].map((p) => slots.run(p, job)));
  assert.equal(most, 2);
});
