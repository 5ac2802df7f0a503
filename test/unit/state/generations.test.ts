/** Each staged generation's update, kept in the state database for the fleet. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openState } from '../../../src/state/db.js';
import { forgetGeneration, forgetGenerationsExcept, generationUpdate, recordGeneration } from '../../../src/state/generations.js';

test('recorded, replaced when the number is used again, and forgotten with the generation', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-state-'));
  const db = openState(dir);
  try {
    const packages = [{ name: 'demo', from: '1.0', to: '2.0' }];
    for (const g of [1, 2, 3]) recordGeneration(db, { generation: g, update: `u-${g}`, lineage: [`u-${g}`], packages });
    assert.deepEqual(generationUpdate(db, 2), { generation: 2, update: 'u-2', lineage: ['u-2'], packages });
    recordGeneration(db, { generation: 2, update: null, lineage: ['u-1'], packages: [] });
    assert.deepEqual(generationUpdate(db, 2), { generation: 2, update: null, lineage: ['u-1'], packages: [] });
    assert.equal(generationUpdate(db, 7), undefined);
    // Gone: neither a pristine state nor an environment of generation 2 is left.
    forgetGenerationsExcept(db, [1, 3, 3]);
    assert.equal(generationUpdate(db, 2), undefined);
    assert.equal(generationUpdate(db, 3)?.update, 'u-3');
    forgetGeneration(db, 3);
    assert.equal(generationUpdate(db, 3), undefined);
    assert.equal(generationUpdate(db, 1)?.update, 'u-1');
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('forgetting keeps any number of generations, and forgets every row when none is left', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-state-'));
  const db = openState(dir);
  try {
    for (const g of [1, 2, 3, 40_000]) recordGeneration(db, { generation: g, update: `u-${g}`, lineage: [`u-${g}`], packages: [] });
    // More numbers than SQLite takes as parameters of one statement (32766).
    const kept = Array.from({ length: 50_000 }, (_, i) => i).filter((g) => g !== 2);
    forgetGenerationsExcept(db, kept);
    assert.deepEqual([1, 2, 3, 40_000].map((g) => generationUpdate(db, g)?.update ?? null), ['u-1', null, 'u-3', 'u-40000']);
    forgetGenerationsExcept(db, []);
    assert.deepEqual([1, 3, 40_000].map((g) => generationUpdate(db, g)), [undefined, undefined, undefined]);
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
