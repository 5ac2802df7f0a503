/**
 * kill -9 of the daemon while it stages, at every step boundary of staging
 * and while the updater runs; and SIGTERM, as systemd stops it. The running environment is byte for byte
 * what it was; the next daemon start undoes the interrupted staging (and
 * stops the orphaned updater) and stages cleanly. Reports the number of
 * kill points tried.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BIN, sysprime } from '../../fixtures/cli.js';
import { STAGE } from '../../../src/staging/pipeline.js';
import { stepFaultPoints } from '../../../src/state/journal.js';
import { KINDS } from '../../fixtures/scratch.js';
import { doctorSeesIt, makeBootableScratch, type BootableScratch } from './bootable-scratch.js';

for (const kind of KINDS) {
  describe(`kill -9 of the daemon while it stages (${kind})`, () => {
    let m: BootableScratch;
    let cfg: string;
    const daemon = (env: Record<string, string> = {}) => sysprime(['daemon', '--max-runs', '1'], { config: cfg, env });
    const cleanState = async () => {
      for (const e of await m.list()) if (e.name !== 'base') assert.equal((await m.sp('destroy', e.name)).code, 0);
    };
    before(async () => {
      m = await makeBootableScratch(kind);
      cfg = join(m.dir, 'daemon.toml');
      writeFileSync(cfg, readFileSync(m.s.config, 'utf8') + '\n[schedule]\nstage = "* * * * * *"\ndrift = "off"\nprune = "off"\nrandom_delay = 0\n');
    });
    after(async () => {
      await m?.cleanup();
    });

    test('at every step boundary of staging, and while the updater runs', { timeout: 1_800_000 }, async (t) => {
      const before = await m.manifest('base');
      // The kills are chained: each daemon start first undoes the staging the
      // one before was killed in, then stages and is killed at the next point;
      // the last start undoes the last and stages to the end. Anything an undo
      // left behind would still be there at the end (environments, entries,
      // defaults, doctor's findings), and no more than the one half-made
      // environment may exist after any kill.
      let tried = 0;
      let interrupted: string | undefined;
      const killedAt = async (point: string, start: () => Promise<{ code: number | null; stderr: string }>) => {
        const killed = await start();
        assert.equal(killed.code, -1, `${point}: the daemon should have been killed\n${killed.stderr}`);
        if (interrupted !== undefined) assert.match(killed.stderr, /recovered: undid the stage interrupted/, `${interrupted}: the next start undoes it\n${killed.stderr}`);
        assert.ok((await m.list()).length <= 2, `${point}: at most the one half-made environment (after undoing ${interrupted ?? 'nothing'})`);
        await doctorSeesIt(m, 'stage', point);
        interrupted = point;
        tried++;
      };
      for (const point of stepFaultPoints(STAGE)) await killedAt(point, () => daemon({ SYSPRIME_FAULT_INJECT: `kill:stage:${point}` }));

      // In the middle of the longest step: the updater is running.
      const script = join(m.dir, 'update.sh');
      await killedAt('while the updater runs', async () => {
        writeFileSync(`${script}.slow`, '');
        let stderr = '';
        try {
          const child = spawn(process.execPath, [BIN, '--config', cfg, 'daemon', '--max-runs', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          const closed = new Promise<number | null>((r) => child.on('close', r));
          for (let i = 0; i < 600 && !existsSync(`${script}.started`); i++) await sleep(100);
          assert.ok(existsSync(`${script}.started`), 'the update started');
          child.kill('SIGKILL');
          await closed;
        } finally {
          rmSync(`${script}.slow`, { force: true });
          rmSync(`${script}.started`, { force: true });
        }
        return { code: -1, stderr };
      });

      // The orphaned updater is still waiting: recovery must stop it before destroying its clone.
      const r = await daemon();
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /recovered: undid the stage interrupted/, r.stderr);
      assert.match(r.stderr, /stage: staged generation \d+ as gen-\d+/, r.stderr);
      assert.equal((await m.list()).length, 2, 'one new environment, nothing left over');
      await m.assertConsistent('after the last kill');
      await cleanState();

      assert.equal(await m.manifest('base'), before, 'base is byte for byte what it was');
      assert.equal(tried, stepFaultPoints(STAGE).length + 1);
      t.diagnostic(`daemon on ${kind}: ${tried} kill points tried, all recovered`);
    });

    test('SIGTERM while it stages: the staging finishes, then the daemon exits; a second SIGTERM exits at once and the next start undoes it', { timeout: 900_000 }, async () => {
      const script = join(m.dir, 'update.sh');
      /** A daemon that runs until signalled, stopped with `signals` SIGTERMs once its updater has started. */
      const signalled = async (signals: number) => {
        writeFileSync(`${script}.slow`, '');
        const child = spawn(process.execPath, [BIN, '--config', cfg, 'daemon'], { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const exited = new Promise<number | null>((r) => child.on('close', r));
        try {
          for (let i = 0; i < 600 && !existsSync(`${script}.started`); i++) await sleep(100);
          assert.ok(existsSync(`${script}.started`), 'the update started');
          for (let k = 0; k < signals; k++) {
            child.kill('SIGTERM');
            await sleep(500);
          }
          writeFileSync(`${script}.go`, '');
          return { code: await exited, stderr };
        } finally {
          child.kill('SIGKILL');
          for (const f of ['slow', 'started', 'go']) rmSync(`${script}.${f}`, { force: true });
        }
      };

      const once = await signalled(1);
      assert.equal(once.code, 0, once.stderr);
      assert.match(once.stderr, /SIGTERM: finishing the running job, then exiting/);
      assert.match(once.stderr, /stage: staged generation \d+ as gen-\d+/);
      assert.match(once.stderr, /sysprime daemon stopped/);
      assert.equal((await m.list()).length, 2, 'the staging it was doing is finished');
      assert.equal((await m.sp('--json', 'status')).json<{ daemon: unknown }>().daemon, null, 'its schedule is gone with it');
      await m.assertConsistent('after SIGTERM');
      await cleanState();

      const twice = await signalled(2);
      assert.equal(twice.code, 143, twice.stderr);
      assert.match(twice.stderr, /SIGTERM again: exiting now/);
      const r = await daemon();
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /recovered: undid the stage interrupted/);
      assert.equal((await m.list()).length, 2, 'one new environment, nothing left over');
      await m.assertConsistent('after two SIGTERMs');
      await cleanState();
    });
  });
}
