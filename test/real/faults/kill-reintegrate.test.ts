/**
 * kill -9 of the manual `reintegrate` in the middle of applying its plan:
 * after an action, and inside a file's write (half its bytes on disk); and a
 * file left half-written under its temporary name by an earlier dead run. The running
 * environment is byte for byte what it was, `doctor` names the interrupted
 * run, and running the command again leaves exactly what an uninterrupted
 * run leaves (compared with a copy reintegrated without a crash), with no
 * temporary file and no mount left behind. Reports the number of kill
 * points tried.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { appliedPoint } from '../../../src/reintegrate/apply.js';
import { writingPoint } from '../../../src/reintegrate/objects.js';
import { KINDS } from '../../fixtures/scratch.js';
import { doctorSeesIt, makeBootableScratch, reintegrationTemps, timelessManifest, type BootableScratch } from './bootable-scratch.js';

for (const kind of KINDS) {
  describe(`kill -9 of reintegrate (${kind})`, () => {
    let m: BootableScratch;
    const mnt = () => join(m.dir, 'edit');
    /** The admin edits base by hand: files added and changed under /etc. */
    const edit = async (round: number) => {
      mkdirSync(mnt(), { recursive: true });
      assert.equal((await m.sp('mount', 'base', mnt())).code, 0);
      try {
        for (let k = 0; k < 4; k++) writeFileSync(join(mnt(), `etc/round-${round}-${k}.conf`), `setting = ${round}.${k}\n`.repeat(200));
        writeFileSync(join(mnt(), 'etc/hostname'), `host-${round}\n`);
      } finally {
        assert.equal((await m.sp('umount', 'base')).code, 0);
      }
    };
    before(async () => {
      m = await makeBootableScratch(kind);
      const r = await m.sp('stage');
      assert.equal(r.code, 0, r.stderr);
    });
    after(async () => {
      await m?.cleanup();
    });

    test('mid-apply, with a file half-written: the next run finishes the same result', { timeout: 900_000 }, async (t) => {
      const target = (await m.list()).find((e) => e.generation === 1)!.name;
      let tried = 0;
      // After the first action, and inside a later file's write (half its bytes on disk). The
      // same points of the same apply, and more, are the first boot's (kill-first-boot.test.ts);
      // what is this command's own is the recovery it says and an earlier dead run's temporary.
      const points: [number, string][] = [[1, appliedPoint(1)], [7, writingPoint(3)]];
      for (const [n, point] of points) {
        await edit(n);
        // The reference: a copy of the target, reintegrated without a crash.
        const ref = `ref-${n}`;
        assert.equal((await m.sp('create', ref, '--from', target)).code, 0);
        const clean = await m.sp('reintegrate', '--to', ref);
        assert.equal(clean.code, 0, clean.stderr);
        const baseBefore = await m.manifest('base');

        // A run that died inside a file's write left it half-written under its temporary name.
        const dead = spawnSync('/bin/true').pid!;
        assert.equal((await m.sp('mount', target, mnt())).code, 0);
        const halfWritten = join(mnt(), `etc/.sysprime-tmp-${dead}-0`);
        writeFileSync(halfWritten, 'setting = half');
        assert.equal((await m.sp('umount', target)).code, 0);

        await m.killedAt(`kill:reintegrate:${point}`, 'reintegrate', '--to', target);
        await doctorSeesIt(m, 'reintegrate', point);
        const again = await m.sp('reintegrate', '--to', target);
        assert.equal(again.code, 0, `${point}: ${again.stderr}`);
        assert.match(again.stderr, /recovered: the reintegrate interrupted at .* is finished by this run/);

        assert.equal(await m.manifest('base'), baseBefore, `${point}: base is byte for byte what it was`);
        assert.equal(timelessManifest(await m.manifest(target)), timelessManifest(await m.manifest(ref)), `${point}: the target holds what an uninterrupted run writes`);
        assert.equal((await m.sp('mount', target, mnt())).code, 0);
        try {
          assert.deepEqual(reintegrationTemps(mnt()), [], `${point}: no temporary file is left`);
          assert.equal(readFileSync(join(mnt(), 'etc/hostname'), 'utf8'), `host-${n}\n`);
        } finally {
          assert.equal((await m.sp('umount', target)).code, 0);
        }
        assert.equal((await m.sp('destroy', ref)).code, 0);
        await m.assertConsistent(`${point}`);
        tried++;
      }
      assert.equal(existsSync(join(m.dir, 'edit')), true);
      t.diagnostic(`reintegrate on ${kind}: ${tried} kill points tried, all recovered`);
    });
  });
}
