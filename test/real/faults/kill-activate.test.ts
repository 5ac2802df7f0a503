/**
 * kill -9 of `activate`, which writes two things that must agree: the
 * filesystem default, then the boot entries' default. At every kill point
 * the running environment is byte for byte what it was, `doctor` names the
 * interrupted run, and the next `activate` (or another verb) brings back
 * the old default whole before doing its own job. Reports the number of
 * kill points tried.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ACTIVATE } from '../../../src/environments/lifecycle.js';
import { stepFaultPoints } from '../../../src/state/journal.js';
import { KINDS } from '../../fixtures/scratch.js';
import { doctorSeesIt, makeBootableScratch, type BootableScratch } from './bootable-scratch.js';

for (const kind of KINDS) {
  describe(`kill -9 of activate (${kind})`, () => {
    let m: BootableScratch;
    before(async () => {
      m = await makeBootableScratch(kind);
      assert.equal((await m.sp('create', 'other')).code, 0);
    });
    after(async () => {
      await m?.cleanup();
    });

    test('at every step boundary: the old default or the new one, never a mix; the next verb recovers', { timeout: 600_000 }, async (t) => {
      const before = await m.manifest('base');
      const points = stepFaultPoints(ACTIVATE);
      let tried = 0;
      for (const [i, point] of points.entries()) {
        await m.killedAt(`kill:activate:${point}`, 'activate', 'other');
        await doctorSeesIt(m, 'activate', point);
        if (i % 2 === 0) {
          // The same command again: it recovers the old state, then does the job.
          const again = await m.sp('activate', 'other');
          assert.equal(again.code, 0, `${point}: ${again.stderr}`);
          assert.match(again.stderr, /recovered: undid the activate interrupted/);
          await m.assertConsistent(`${point}, activated again`);
          assert.equal((await m.list()).find((e) => e.default)?.name, 'other');
        } else {
          // Another verb finds it first: back to the old default, whole.
          const other = await m.sp('create', `probe-${i}`);
          assert.equal(other.code, 0, `${point}: ${other.stderr}`);
          assert.match(other.stderr, /recovered: undid the activate interrupted/);
          await m.assertConsistent(`${point}, recovered by create`);
          assert.equal((await m.list()).find((e) => e.default)?.name, 'base');
          assert.equal((await m.sp('destroy', `probe-${i}`)).code, 0);
        }
        assert.equal((await m.sp('activate', 'base')).code, 0);
        await m.assertConsistent(`${point}, back to base`);
        tried++;
      }
      assert.equal(tried, points.length);
      assert.equal(await m.manifest('base'), before, 'base is byte for byte what it was');
      t.diagnostic(`activate on ${kind}: ${tried} kill points tried, all recovered`);
    });
  });
}
