/**
 * kill -9 of `prune` between writing the boot entries and destroying, and
 * between destroying two environments. The next `prune` (or another verb)
 * writes the entries again for what is still there; environments, entries
 * and defaults agree, and nothing that had to stay is gone. Reports the
 * number of kill points tried.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PRUNE, destroyedPoint } from '../../../src/environments/prune.js';
import { stepFaultPoints } from '../../../src/state/journal.js';
import { KINDS } from '../../fixtures/scratch.js';
import { doctorSeesIt, makeBootableScratch, type BootableScratch } from './bootable-scratch.js';

for (const kind of KINDS) {
  describe(`kill -9 of prune (${kind})`, () => {
    let m: BootableScratch;
    before(async () => {
      m = await makeBootableScratch(kind);
    });
    after(async () => {
      await m?.cleanup();
    });

    test('between the entries and the destruction, and between two destructions', { timeout: 900_000 }, async (t) => {
      const before = await m.manifest('base');
      // Two to destroy (a, b); c is the newest and stays with base, the default.
      const points = [...stepFaultPoints(PRUNE), destroyedPoint(1)];
      let tried = 0;
      for (const [i, point] of points.entries()) {
        for (const name of ['a', 'b', 'c']) assert.equal((await m.sp('create', name)).code, 0);
        await m.killedAt(`kill:prune:${point}`, 'prune', '--keep', '1');
        await doctorSeesIt(m, 'prune', point);
        const names = (await m.list()).map((e) => e.name);
        assert.ok(names.includes('base') && names.includes('c'), `${point}: prune destroyed what it must keep: ${names.join(' ')}`);
        if (i % 2 === 0) {
          const again = await m.sp('prune', '--keep', '1');
          assert.equal(again.code, 0, `${point}: ${again.stderr}`);
          assert.match(again.stderr, /recovered: undid the prune interrupted/);
          await m.assertConsistent(`${point}, pruned again`);
          assert.deepEqual((await m.list()).map((e) => e.name).sort(), ['base', 'c']);
        } else {
          // doctor --fix is not the only way back: any verb that changes environments recovers first.
          const other = await m.sp('activate', 'base');
          assert.equal(other.code, 0, `${point}: ${other.stderr}`);
          assert.match(other.stderr, /recovered: undid the prune interrupted/);
          await m.assertConsistent(`${point}, recovered by activate`);
          assert.equal((await m.sp('prune', '--keep', '1')).code, 0);
          await m.assertConsistent(`${point}, pruned after`);
        }
        assert.equal((await m.sp('destroy', 'c')).code, 0);
        tried++;
      }
      assert.equal(tried, points.length);
      assert.equal(await m.manifest('base'), before, 'base is byte for byte what it was');
      t.diagnostic(`prune on ${kind}: ${tried} kill points tried, all recovered`);
    });
  });
}
