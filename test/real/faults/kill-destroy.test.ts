/**
 * kill -9 inside a backend's destroy, between its commands: Btrfs after the
 * environment is renamed out of its name and after its subvolumes are
 * deleted; ZFS after a dependent clone is promoted and after the dataset is
 * destroyed. `list` never shows a half-destroyed environment, the clone
 * that depended on it keeps every byte, and `doctor --fix` (or destroying
 * again) finishes the job, leaving what a destroy without a crash leaves.
 * Reports the number of kill points tried.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { run } from '../../../src/process/run.js';
import { KINDS } from '../../fixtures/scratch.js';
import { makeBootableScratch, type BootableScratch } from './bootable-scratch.js';

const POINTS = { btrfs: ['destroy-renamed', 'destroy-deleted'], zfs: ['destroy-promoted-1', 'destroy-destroyed'] } as const;

for (const kind of KINDS) {
  describe(`kill -9 inside a destroy (${kind})`, () => {
    let m: BootableScratch;
    /** Everything the backend keeps for environments: subvolumes or datasets and snapshots, sorted. */
    const storage = async (): Promise<string[]> => {
      const r = kind === 'btrfs' ? await run('btrfs', ['subvolume', 'list', m.s.where]) : await run('zfs', ['list', '-H', '-t', 'all', '-o', 'name', '-r', m.s.where]);
      return r.stdout
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => (kind === 'btrfs' ? l.replace(/^.* path /, '') : l))
        .sort();
    };
    /** What went and what came between two listings, with the two environments' names made neutral. */
    const diff = (before: string[], after: string[], a: string, b: string) => {
      // Whole path components only: the pool's own name may hold the same letters.
      const component = (name: string) => new RegExp(`(^|/|-)${name}(?=$|@|/)`, 'g');
      const neutral = (n: string) =>
        n
          .replace(component(b), '$1<B>')
          .replace(component(a), '$1<A>')
          .replace(/@.*$/, '@<snap>')
          .replace(/gen-\d+/g, 'gen-<N>');
      return { gone: before.filter((n) => !after.includes(n)).map(neutral).sort(), came: after.filter((n) => !before.includes(n)).map(neutral).sort() };
    };
    before(async () => {
      m = await makeBootableScratch(kind);
    });
    after(async () => {
      await m?.cleanup();
    });

    test('the next run finishes it; the clone made from it keeps every byte', { timeout: 900_000 }, async (t) => {
      let tried = 0;
      const ok = async (...args: string[]) => {
        const r = await m.sp(...args);
        assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      };
      for (const [i, point] of POINTS[kind].entries()) {
        const a = `a${i}`;
        const b = `b${i}`;
        await ok('create', a);
        await ok('create', b, '--from', a);
        const bBefore = await m.manifest(b);
        const storageBefore = await storage();

        await m.killedAt(`kill:backend:${kind}:${point}`, 'destroy', a);
        const names = (await m.list()).map((e) => e.name);
        assert.ok(names.includes(b), `${point}: ${b} is still listed`);
        assert.ok(!names.some((n) => n.includes('partial')), `${point}: no half-destroyed environment is listed: ${names.join(', ')}`);
        assert.equal(await m.manifest(b), bBefore, `${point}: ${b} keeps every byte`);

        await ok('doctor', '--fix');
        if ((await m.list()).some((e) => e.name === a)) await ok('destroy', a);
        assert.ok(!(await m.list()).some((e) => e.name === a), `${point}: ${a} is gone`);
        await m.assertConsistent(point);
        assert.equal(await m.manifest(b), bBefore, `${point}: ${b} keeps every byte after the recovery`);
        const after = await storage();
        const killed = diff(storageBefore, after, a, b);

        // The same shape destroyed without a crash leaves the same.
        await ok('create', `${a}r`);
        await ok('create', `${b}r`, '--from', `${a}r`);
        const mid = await storage();
        await ok('destroy', `${a}r`);
        const clean = diff(mid, await storage(), `${a}r`, `${b}r`);
        assert.deepEqual(killed, clean, `${point}: the recovered destroy leaves what a destroy without a crash leaves`);
        for (const name of [`${b}r`, b]) await ok('destroy', name);
        tried++;
      }
      t.diagnostic(`destroy on ${kind}: ${tried} kill points tried, all recovered`);
    });
  });
}
