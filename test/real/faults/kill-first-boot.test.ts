/**
 * kill -9 of the first-boot reintegration (what sysprime-reintegrate.service
 * runs) in the middle of its plan: after an action, and inside one file's
 * write with half its bytes on disk. The previous environment is byte for
 * byte what it was, the first-boot note and unit stay (so the next boot runs
 * it again), and running it again leaves exactly what an uninterrupted first
 * boot leaves (compared with a copy of the same environment that booted
 * without a crash), no temporary file, and removes itself. Reports the
 * number of kill points tried.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { appliedPoint } from '../../../src/reintegrate/apply.js';
import { writingPoint } from '../../../src/reintegrate/objects.js';
import { FIRST_BOOT_NOTE } from '../../../src/reintegrate/first-boot-note.js';
import { KINDS } from '../../fixtures/scratch.js';
import { makeBootableScratch, reintegrationTemps, timelessManifest, type BootableScratch } from './bootable-scratch.js';

const UNIT_LINK = 'etc/systemd/system/sysinit.target.wants/sysprime-reintegrate.service';
const POINTS = [appliedPoint(1), appliedPoint(3), writingPoint(1), writingPoint(3)];

for (const kind of KINDS) {
  describe(`kill -9 of the first-boot reintegration (${kind})`, () => {
    let m: BootableScratch;
    let staged: string;
    const mnt = () => join(m.dir, 'edit');
    const inEnv = async <T>(name: string, fn: (root: string) => T): Promise<T> => {
      mkdirSync(mnt(), { recursive: true });
      const r = await m.sp('mount', name, mnt());
      assert.equal(r.code, 0, r.stderr);
      try {
        return fn(mnt());
      } finally {
        const u = await m.sp('umount', name);
        assert.equal(u.code, 0, u.stderr);
      }
    };

    before(async () => {
      m = await makeBootableScratch(kind);
      const r = await m.sp('stage');
      assert.equal(r.code, 0, r.stderr);
      staged = (await m.list()).find((e) => e.generation === 1)!.name;
    });
    after(async () => {
      await m?.cleanup();
    });

    test('killed after an action or inside a write: the next run finishes what an uninterrupted first boot does', { timeout: 1_200_000 }, async (t) => {
      let tried = 0;
      for (const [i, point] of POINTS.entries()) {
        // The admin keeps working on the old environment after staging: the first boot carries this over.
        await inEnv('base', (root) => {
          for (let k = 0; k < 4; k++) writeFileSync(join(root, `etc/late-${i}-${k}.conf`), `setting = ${i}.${k}\n`.repeat(300));
          writeFileSync(join(root, 'etc/hostname'), `late-host-${i}\n`);
        });
        // Two copies of the staged environment, each with its first boot still to come.
        const ref = `fb-ref-${i}`;
        const victim = `fb-kill-${i}`;
        for (const name of [ref, victim]) assert.equal((await m.sp('create', name, '--from', staged)).code, 0);
        const clean = await m.sp('reintegrate', '--first-boot', '--to', ref);
        assert.equal(clean.code, 0, clean.stderr);
        const baseBefore = await m.manifest('base');

        await m.killedAt(`kill:reintegrate:${point}`, 'reintegrate', '--first-boot', '--to', victim);
        await inEnv(victim, (root) => {
          assert.ok(existsSync(join(root, FIRST_BOOT_NOTE)), `${point}: the first-boot note stays, so the next boot runs it again`);
          assert.ok(lstatSync(join(root, UNIT_LINK)).isSymbolicLink(), `${point}: the unit stays enabled`);
          if (point.startsWith('writing-')) {
            const left = reintegrationTemps(root);
            assert.equal(left.length, 1, `${point}: one half-written temporary: ${left.join(', ')}`);
            // What the first boot writes: every late file so far, and the hostname.
            const whole = [`late-host-${i}\n`];
            for (let j = 0; j <= i; j++) for (let k = 0; k < 4; k++) whole.push(`setting = ${j}.${k}\n`.repeat(300));
            const half = readFileSync(left[0]!, 'utf8');
            assert.ok(half !== '' && whole.some((w) => w.length > half.length && w.startsWith(half)), `${point}: the temporary holds part of a file: ${JSON.stringify(half.slice(0, 40))}`);
          }
        });

        const again = await m.sp('reintegrate', '--first-boot', '--to', victim);
        assert.equal(again.code, 0, `${point}: ${again.stderr}`);
        assert.match(again.stdout, /carried over what changed on "base" since staging/);
        assert.equal(await m.manifest('base'), baseBefore, `${point}: the previous environment is byte for byte what it was`);
        assert.equal(timelessManifest(await m.manifest(victim)), timelessManifest(await m.manifest(ref)), `${point}: the environment holds what an uninterrupted first boot writes`);
        await inEnv(victim, (root) => {
          assert.deepEqual(reintegrationTemps(root), [], `${point}: no temporary file is left`);
          assert.equal(readFileSync(join(root, 'etc/hostname'), 'utf8'), `late-host-${i}\n`);
          assert.ok(!existsSync(join(root, FIRST_BOOT_NOTE)), `${point}: the note is gone`);
          assert.ok(!existsSync(join(root, UNIT_LINK)), `${point}: the unit removed itself`);
        });
        const third = await m.sp('reintegrate', '--first-boot', '--to', victim);
        assert.match(third.stdout, /no first-boot reintegration waiting/);
        for (const name of [ref, victim]) assert.equal((await m.sp('destroy', name)).code, 0);
        await m.assertConsistent(point);
        tried++;
      }
      t.diagnostic(`first-boot reintegration on ${kind}: ${tried} kill points tried, all recovered`);
    });
  });
}
