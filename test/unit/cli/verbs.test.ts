/**
 * A run loads only its verb's module: the table that says which module
 * defines which verb must be the modules' own account, or a verb would be
 * "unknown" when run by itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildProgram, verbOf, VERB_MODULES } from '../../../src/cli/main.js';

const argv = (...words: string[]) => ['node', 'sysprime', ...words];

test('every verb and alias of the whole program is in the table, under the module that defines it', async () => {
  const all = await buildProgram();
  const names = all.commands.flatMap((c) => [c.name(), ...c.aliases()]);
  assert.deepEqual([...names].sort(), VERB_MODULES.flatMap((m) => m.verbs).sort());
  for (const name of names) {
    const alone = await buildProgram(name);
    assert.ok(
      alone.commands.some((c) => c.name() === name || c.aliases().includes(name)),
      `${name} is defined when the program is built for it alone`,
    );
    assert.ok(alone.commands.length < all.commands.length, `${name}: only its module's verbs`);
  }
});

test('the verb is the first word that is not a global option or its value', () => {
  assert.equal(verbOf(argv('list')), 'list');
  assert.equal(verbOf(argv('--config', '/etc/x.toml', '--json', 'status')), 'status');
  assert.equal(verbOf(argv('-c', 'list', 'stage', '--plan')), 'stage');
  assert.equal(verbOf(argv('--config=/x', '-v', 'drift', 'env')), 'drift');
  assert.equal(verbOf(argv('--help')), undefined);
  assert.equal(verbOf(argv()), undefined);
});

test('help and unknown words get every verb', async () => {
  const all = (await buildProgram()).commands.length;
  assert.equal((await buildProgram('help')).commands.length, all);
  assert.equal((await buildProgram('lsit')).commands.length, all);
});
