/**
 * Staging, its recovery after a kill -9 at every step boundary, the first
 * boot's baselines and retention, run on the directory backend
 * (test/fixtures/directory-backend.ts): the library's logic in seconds, with
 * no pool. What only a filesystem can show (snapshots, mounts, the real
 * backends' refusals) stays in test/real.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stage, recoverStaging, STAGE, type StageOutcome } from '../../../src/staging/pipeline.js';
import { createUpdater } from '../../../src/updaters/registry.js';
import { createEnvironment, destroyEnvironment, renameEnvironment } from '../../../src/environments/lifecycle.js';
import { PRUNE, destroyedPoint, pruneEnvironments, recoverPrune } from '../../../src/environments/prune.js';
import { forgetManifestsOfGone } from '../../../src/environments/kept-manifests.js';
import { runFirstBoot } from '../../../src/reintegrate/first-boot.js';
import { readFirstBootNote } from '../../../src/reintegrate/first-boot-note.js';
import { manifestSubjects } from '../../../src/state/manifests.js';
import { generationUpdate, recordGeneration } from '../../../src/state/generations.js';
import { stepFaultPoints } from '../../../src/state/journal.js';
import { setLevel } from '../../../src/log.js';
import { makeDirectoryMachine, type DirectoryMachine } from '../../fixtures/directory-machine.js';

const CHILD = fileURLToPath(new URL('../../fixtures/directory-stage-child.js', import.meta.url));

describe('staging on the directory backend', () => {
  let m: DirectoryMachine;
  const staged = async (name: string): Promise<Extract<StageOutcome, { kind: 'staged' }>> => {
    const outcome = await stage(m.ctx, createUpdater(m.ctx.config), { name });
    assert.equal(outcome.kind, 'staged');
    return outcome as Extract<StageOutcome, { kind: 'staged' }>;
  };
  const file = (env: string, path: string) => readFileSync(join(m.backend.environmentPath(env), path), 'utf8');
  const edit = (env: string, path: string, text: string) => writeFileSync(join(m.backend.environmentPath(env), path), text);
  const stagingOf = (env: string) => readFirstBootNote(m.backend.environmentPath(env))?.staging;
  const baselines = () => manifestSubjects(m.ctx.db).filter((s) => s.startsWith('staged-ours:'));
  const generations = async () => (await m.backend.listPristines()).map((p) => p.generation).sort((a, b) => a - b);
  const names = async () => (await m.backend.listEnvironments()).map((e) => e.name).sort();

  before(async () => {
    // The scratch tree's /home and /var/log are inside the root: staging warns of it every time.
    setLevel('error');
    m = await makeDirectoryMachine();
    edit('base', 'etc/motd', 'an admin was here\n');
  });
  after(async () => {
    setLevel('info');
    await m?.cleanup();
  });

  test('stage with the command updater: the update and the admin\'s change are in the new environment, its note names the staging, its baseline is kept under that id', async () => {
    const outcome = await staged('gen-1');
    assert.equal(outcome.generation, 1);
    assert.equal(file('gen-1', 'usr/share/doc/demo/VERSION'), '2\n', 'the update ran in the clone');
    assert.ok(!existsSync(join(m.backend.environmentPath('base'), 'usr/share/doc/demo/VERSION')), 'and not in the running environment');
    assert.equal(file('gen-1', 'etc/motd'), 'an admin was here\n', 'the admin\'s change was carried');
    const id = stagingOf('gen-1');
    assert.ok(id !== undefined);
    assert.deepEqual(baselines(), [`staged-ours:${id}`]);
    assert.deepEqual((await m.backend.listPristines()).map((p) => p.generation).sort(), [0, 1]);
  });

  test('a copy before the first boot finds the baseline; it goes after the last first boot', async () => {
    const id = stagingOf('gen-1');
    await createEnvironment(m.ctx, 'gen-1-copy', 'gen-1');
    assert.equal(stagingOf('gen-1-copy'), id);
    edit('base', 'etc/motd', 'changed after staging\n');
    const first = await runFirstBoot(m.ctx, 'gen-1');
    assert.ok(first.firstBoot);
    assert.equal(file('gen-1', 'etc/motd'), 'changed after staging\n');
    assert.deepEqual(baselines(), [`staged-ours:${id}`], 'the copy\'s note still names it');
    await runFirstBoot(m.ctx, 'gen-1-copy');
    assert.equal(file('gen-1-copy', 'etc/motd'), 'changed after staging\n');
    assert.deepEqual(baselines(), [], 'no note names it any more');
    assert.deepEqual(await runFirstBoot(m.ctx, 'gen-1-copy'), { firstBoot: false, to: 'gen-1-copy' });
    await destroyEnvironment(m.ctx, 'gen-1-copy');
  });

  test('staged, renamed, staged again under the same name: each first boot compares against its own staging', async () => {
    await staged('next');
    const first = stagingOf('next');
    await renameEnvironment(m.ctx, 'next', 'tuesday');
    edit('base', 'etc/motd', 'changed between the two stagings\n');
    await staged('next');
    const second = stagingOf('next');
    assert.notEqual(second, first);
    assert.deepEqual(baselines().sort(), [`staged-ours:${first}`, `staged-ours:${second}`].sort());
    await runFirstBoot(m.ctx, 'tuesday');
    assert.equal(file('tuesday', 'etc/motd'), 'changed between the two stagings\n', 'the edit made after its staging was carried');
    assert.deepEqual(baselines(), [`staged-ours:${second}`]);
    await destroyEnvironment(m.ctx, 'next');
    assert.deepEqual(baselines(), [], 'its only holder is destroyed');
    await destroyEnvironment(m.ctx, 'tuesday');
  });

  test('a staging forgets the recorded updates of generations that are gone and keeps those left; a dry run forgets nothing', async () => {
    // A generation with neither a pristine state nor an environment left (as an undone staging or a destroy leaves it).
    recordGeneration(m.ctx.db, { generation: 42, update: 'u-gone', lineage: ['u-gone'], packages: [] });
    const kept = generationUpdate(m.ctx.db, 1);
    assert.ok(kept !== undefined, 'gen-1 was recorded when it was staged');
    const dry = await stage(m.ctx, createUpdater(m.ctx.config), { name: 'forgets', dryRun: true });
    assert.equal(dry.kind, 'dry-run');
    assert.equal(generationUpdate(m.ctx.db, 42)?.update, 'u-gone', 'a dry run changes nothing');
    const outcome = await staged('forgets');
    assert.equal(outcome.generation, 2, 'the plan saw the same environments and pristine states');
    assert.equal(generationUpdate(m.ctx.db, 42), undefined);
    assert.deepEqual(generationUpdate(m.ctx.db, 1), kept);
    assert.equal(generationUpdate(m.ctx.db, 2)?.generation, 2, 'the new generation is recorded');
    await destroyEnvironment(m.ctx, 'forgets');
  });

  test('a kill -9 at every step boundary of staging is undone by the next run, which then stages', { timeout: 300_000 }, async () => {
    const before = await names();
    const pristinesBefore = await generations();
    const pool = () => readdirSync(join(m.backend.root, 'ROOT')).sort();
    for (const point of stepFaultPoints(STAGE)) {
      const r = spawnSync(process.execPath, [CHILD, m.dir, 'stage', 'crash'], { env: { ...process.env, SYSPRIME_FAULT_INJECT: `kill:stage:${point}` }, encoding: 'utf8' });
      assert.equal(r.signal, 'SIGKILL', `${point}: killed there (exit ${r.status}): ${r.stderr}`);
      const recovered = await recoverStaging(m.ctx, createUpdater(m.ctx.config));
      assert.equal(recovered.length, 1, `${point}: one interrupted staging undone: ${recovered.join('; ')}`);
      assert.deepEqual(await names(), before, `${point}: its environment is gone`);
      assert.deepEqual(pool(), before, `${point}: no tree is left behind`);
      assert.deepEqual(await generations(), pristinesBefore, `${point}: no pristine state is left behind`);
      assert.ok(!(await m.backend.listEnvironments()).some((e) => e.mounted !== null), `${point}: nothing is left mounted`);
      await forgetManifestsOfGone(m.ctx);
      assert.deepEqual(baselines(), [], `${point}: the baseline of the undone staging is forgotten (no note names it)`);
      assert.equal(file('base', 'etc/motd'), 'changed between the two stagings\n', `${point}: the running environment is as it was`);
    }
    await staged('after-crashes');
    assert.equal(file('after-crashes', 'etc/motd'), 'changed between the two stagings\n');
    await destroyEnvironment(m.ctx, 'after-crashes');
    assert.deepEqual(await generations(), pristinesBefore, 'its pristine went with it');
  });

  test('retention after staging destroys the oldest beyond keep, with its pristine state and kept manifests', async () => {
    m.ctx.config.retention.keep = 2;
    try {
      await staged('r-1');
      const r1 = stagingOf('r-1');
      const second = await staged('r-2');
      assert.deepEqual(second.pruned, ['gen-1'], 'beyond keep = 2 (base is the default and stays)');
      assert.ok(!(await generations()).includes(1), 'generation 1 has no environment left: its pristine went');
      assert.ok(!manifestSubjects(m.ctx.db).includes('pristine:1'));
      const third = await staged('r-3');
      assert.deepEqual(third.pruned, ['r-1']);
      assert.deepEqual(await names(), ['base', 'r-2', 'r-3']);
      assert.ok(!baselines().includes(`staged-ours:${r1}`), 'the pruned environment\'s baseline went with it');
      assert.deepEqual(baselines().length, 2, 'those of r-2 and r-3, whose first boots are to come');
      const again = await pruneEnvironments(m.ctx);
      assert.deepEqual(again.destroyed, [], 'nothing more to prune');
    } finally {
      m.ctx.config.retention.keep = 5;
    }
  });

  test('a kill -9 of prune at each step boundary and between two destructions: the next prune finishes, and the kept manifests of what went go too', { timeout: 300_000 }, async () => {
    for (const point of [...stepFaultPoints(PRUNE), destroyedPoint(1)]) {
      // Two staged environments beyond keep = 1 (their first boots to come), and the newest that stays with base, the default.
      for (const name of ['p-a', 'p-b', 'p-c']) await staged(name);
      const held = (['p-a', 'p-b'] as const).map((n) => `staged-ours:${stagingOf(n)}`);
      const r = spawnSync(process.execPath, [CHILD, m.dir, 'prune', '1'], { env: { ...process.env, SYSPRIME_FAULT_INJECT: `kill:prune:${point}` }, encoding: 'utf8' });
      assert.equal(r.signal, 'SIGKILL', `${point}: killed there (exit ${r.status}): ${r.stderr}`);
      const left = await names();
      assert.ok(left.includes('base') && left.includes('p-c'), `${point}: prune destroyed what it must keep: ${left.join(' ')}`);
      assert.equal((await recoverPrune(m.ctx)).length, 1, `${point}: the interrupted prune is recovered`);
      const again = await pruneEnvironments(m.ctx, { keep: 1 });
      assert.deepEqual(await names(), ['base', 'p-c'], `${point}: the next prune finishes (it destroyed ${again.destroyed.join(', ') || 'nothing'})`);
      for (const subject of held) assert.ok(!baselines().includes(subject), `${point}: ${subject} went with the environment holding its note`);
      assert.ok(!manifestSubjects(m.ctx.db).some((s) => s === 'env:p-a' || s === 'env:p-b'));
      await destroyEnvironment(m.ctx, 'p-c');
      assert.deepEqual(baselines(), [], `${point}: none is left`);
    }
  });
});
