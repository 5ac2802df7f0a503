/**
 * kill -9 in the middle of `sysprime import`, at each point from the
 * filesystem's receive to the pristine state: inside the backend's receive,
 * before the environment has its name (nothing of it may be left), and
 * after it has its name with the mark of an unfinished import (it must be
 * finished: it was received whole and checked). The next verb that changes
 * environments (`create` here), or `doctor --fix`, does either and says
 * which; doctor then finds nothing, and the boot entries match the
 * environments. Reports the number of kill points tried. On Btrfs, an
 * import that keeps the export's pristine state (`--with-pristine`) places
 * it just before the environment gets its name: killed there, the pristine
 * of the import's generation goes too.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { KINDS } from '../../fixtures/scratch.js';
import { environmentMounter, type CliResult, type EnvJson } from '../../fixtures/cli.js';
import { doctorSeesIt, makeBootableScratch, type BootableScratch } from './bootable-scratch.js';

/** Each point, whether the environment had its name there (finished) or not (nothing left), and whether the import kept the export's pristine. */
const POINTS: Record<'btrfs' | 'zfs', readonly (readonly [string, 'nothing' | 'finished', boolean?])[]> = {
  btrfs: [
    ['backend:btrfs:received', 'nothing'],
    ['backend:btrfs:pristine-placed', 'nothing', true],
    ['backend:btrfs:clone-before-rename', 'nothing'],
    ['transfer:import-received', 'finished'],
    ['transfer:import-pristine-taken', 'finished'],
  ],
  zfs: [
    ['backend:zfs:received', 'nothing'],
    ['backend:zfs:receive-before-rename', 'nothing'],
    ['transfer:import-received', 'finished'],
    ['transfer:import-pristine-taken', 'finished'],
  ],
};

/**
 * What recovers it: the next verb that changes environments (saying so on
 * stderr), or doctor --fix (on its report); taken in turn, so each outcome
 * (finished, nothing left) is recovered both ways once.
 */
const RECOVERIES = ['create', 'doctor --fix'] as const;

for (const kind of KINDS) {
  describe(`kill -9 inside an import (${kind})`, () => {
    let m: BootableScratch;
    let file: string;
    let withPristine: string;
    const ok = async (...args: string[]): Promise<CliResult> => {
      const r = await m.sp(...args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      return r;
    };
    const full = async (): Promise<EnvJson[]> => (await ok('--json', 'list')).json<EnvJson[]>();
    /** Half-received datasets or subvolumes, whatever their name. */
    const leftovers = async (): Promise<string[]> => {
      if (kind === 'zfs') return (await run('zfs', ['list', '-H', '-o', 'name', '-t', 'all', '-r', `${m.s.where}/ROOT`])).stdout.split('\n').filter((l) => /sysprime-tmp|sysprime-copy-export/.test(l));
      return (await run('btrfs', ['subvolume', 'list', m.s.where])).stdout.split('\n').filter((l) => l.includes('.partial-') || l.includes('receive'));
    };

    before(async () => {
      m = await makeBootableScratch(kind);
      await ok('create', 'work', '--description', 'the one we send');
      await environmentMounter(m.sp, () => join(m.dir, 'mnt'))('work', (root) => writeFileSync(join(root, 'etc/marker'), 'sent\n'));
      file = join(m.dir, 'work.sysprime');
      await ok('export', 'work', file);
      withPristine = join(m.dir, 'work-p.sysprime');
      if (kind === 'btrfs') await ok('export', '--with-pristine', 'work', withPristine);
    });
    after(async () => {
      await m?.cleanup();
    });

    test('the next verb or doctor --fix finishes what was received whole, and leaves nothing of the rest', { timeout: 1_200_000 }, async (t) => {
      const sent = await m.manifest('work');
      let tried = 0;
      for (const [point, outcome, keep] of POINTS[kind]) {
        const recovery = RECOVERIES[tried % RECOVERIES.length]!;
        const what = `${point}${keep === true ? ' (--with-pristine)' : ''}, then ${recovery}`;
        const name = `in${tried}`;
        await m.killedAt(`kill:${point}`, 'import', ...(keep === true ? ['--with-pristine', withPristine] : [file]), name);
        await doctorSeesIt(m, 'import', what);
        if (outcome === 'finished') {
          // Named, but marked: nothing may change the tree its pristine state will be taken of.
          const mounted = await m.sp('mount', name, join(m.dir, 'mnt'));
          assert.equal(mounted.code, 5, `${what}: mounting an unfinished import is refused\n${mounted.stderr}`);
          assert.match(mounted.stderr, /still being imported/);
          assert.ok(!m.entryNames().includes(name), `${what}: no boot entry before it is finished`);
          assert.match((await m.sp('doctor')).stdout, new RegExp(`"${name}" is from an import that did not finish`), `${what}: doctor names the unfinished import`);
        }

        let said: string;
        if (recovery === 'create') {
          const r = await ok('create', `${name}c`);
          said = r.stderr;
          await ok('destroy', `${name}c`);
        } else {
          said = (await ok('doctor', '--fix')).stdout;
        }
        const env = (await full()).find((e) => e.name === name);
        if (outcome === 'finished') {
          assert.match(said, new RegExp(`the import interrupted at .* is finished by this run: "${name}" was received whole and checked, and its pristine state is taken now`), `${what}: says it finished it\n${said}`);
          assert.ok(env !== undefined, `${what}: the environment is there`);
          assert.notEqual(env.pristine, null, `${what}: with its pristine state`);
          assert.equal(env.description, 'the one we send', `${what}: with its description`);
          const drift = await ok('--json', 'drift', name);
          assert.deepEqual(drift.json<{ items: unknown[] }>().items, [], `${what}: no drift from its pristine state`);
          assert.equal(await m.manifest(name), sent, `${what}: holding what was exported, byte for byte`);
        } else {
          assert.match(said, new RegExp(`the import interrupted at .* had not given "${name}" its name: nothing of it is left`), `${what}: says nothing is left\n${said}`);
          assert.equal(env, undefined, `${what}: no environment`);
          if (keep === true) assert.match(said, /removed the pristine state of generation \d+ that the import of "in\d+" had received/, `${what}: says its pristine went too\n${said}`);
          if (kind === 'btrfs') {
            const named = (await run('btrfs', ['subvolume', 'list', m.s.where])).stdout.split('\n').filter((l) => l.endsWith(`/.pristine/${name}`));
            assert.deepEqual(named, [], `${what}: no pristine state of its generation is left`);
          }
        }
        assert.deepEqual(await leftovers(), [], `${what}: nothing half-received is left`);
        await m.assertConsistent(what);
        if (env !== undefined) await ok('destroy', name);
        tried++;
      }
      t.diagnostic(`import on ${kind}: ${tried} kill points tried, recovered by create and by doctor --fix in turn, all recovered`);
    });
  });
}
