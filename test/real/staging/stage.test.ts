/**
 * `sysprime stage` end to end on real pools with the command updater: the
 * new generation holds the update, the running environment is unchanged
 * byte for byte, failures undo themselves, and a kill -9 at any step
 * boundary is recovered by the next run.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { BIN, sysprime } from '../../fixtures/cli.js';
import { STAGE } from '../../../src/staging/pipeline.js';

interface EnvJson {
  name: string;
  generation: number;
  default: boolean;
  pristine: string | null;
}

/** An update script: writes a version file into the tree it is given; exit 100 when told nothing is new. */
function updateScript(dir: string): string {
  const script = join(dir, 'update.sh');
  writeFileSync(
    script,
    `#!/bin/sh
set -e
[ -f "${dir}/fail" ] && { echo "mirror unreachable" >&2; exit 7; }
[ -f "${dir}/nothing" ] && exit 100
[ -f "${dir}/slow" ] && { touch "${dir}/started"; sleep 60; }
v=$(cat "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION" 2>/dev/null || echo 1)
echo $((v + 1)) > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"
printf '#!/bin/sh\\necho "demo %s"\\n' $((v + 1)) > "$SYSPRIME_ROOT/usr/bin/demo"
`,
  );
  chmodSync(script, 0o755);
  return script;
}

for (const kind of KINDS) {
  describe(`stage on ${kind}`, () => {
    let s: Scratch;
    let dir: string;
    let mnt: string;
    const sp = (...args: string[]) => sysprime(args, { config: s.config });
    const list = async () => (await sp('--json', 'list')).json<EnvJson[]>();
    /** A manifest of the running (default) environment, to prove staging never touched it. */
    const manifestOfBase = async () => {
      const m = await sp('mount', 'base', mnt);
      assert.equal(m.code, 0, m.stderr);
      try {
        const r = await sysprime(['bart', 'create', '-R', mnt]);
        assert.equal(r.code, 0, r.stderr);
        return r.stdout.split('\n').filter((l) => !l.startsWith('!') && !l.startsWith('#')).join('\n');
      } finally {
        assert.equal((await sp('umount', 'base')).code, 0);
      }
    };
    const cleanState = async () => {
      const envs = await list();
      for (const e of envs) if (e.name !== 'base') assert.equal((await sp('destroy', e.name)).code, 0);
    };

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sysprime-stage-'));
      mnt = join(dir, 'mnt');
      const script = updateScript(dir);
      s = await makeScratch(kind, `[update]\nmethod = "command"\ncommand = "${script}"\nchroot = false\n`);
      const r = await sp('init', '--adopt', s.adopt, '--name', 'base');
      assert.equal(r.code, 0, r.stderr);
    });
    after(async () => {
      await s?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    test('--dry-run says what it would do and changes nothing', async () => {
      const r = await sp('stage', '--dry-run');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /would stage generation 1 as "gen-1"/);
      assert.deepEqual((await list()).map((e) => e.name), ['base']);
    });

    test('stage builds generation 1 with the update; the running environment is unchanged', async () => {
      const before = await manifestOfBase();
      const r = await sp('--json', 'stage');
      assert.equal(r.code, 0, r.stderr);
      const out = r.json<{ kind: string; name: string; generation: number }>();
      assert.equal(out.kind, 'staged');
      assert.equal(out.name, 'gen-1');
      const envs = await list();
      const g1 = envs.find((e) => e.name === 'gen-1');
      assert.ok(g1);
      assert.equal(g1.generation, 1);
      assert.ok(g1.pristine);
      assert.equal(envs.find((e) => e.name === 'base')?.default, true, 'the default is unchanged');
      assert.equal(await manifestOfBase(), before, 'base is byte for byte what it was');
      const m = await sp('mount', 'gen-1', mnt);
      assert.equal(m.code, 0, m.stderr);
      try {
        assert.equal(readFileSync(join(mnt, 'usr/share/doc/demo/VERSION'), 'utf8'), '2\n');
      } finally {
        await sp('umount', 'gen-1');
      }
      const st = (await sp('--json', 'status')).json<{ lastStage: { status: string; environment: string } }>();
      assert.equal(st.lastStage.status, 'done');
      assert.equal(st.lastStage.environment, 'gen-1');
    });

    test('the next stage builds on the newest pristine state', async () => {
      const r = await sp('--json', 'stage');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.json<{ generation: number }>().generation, 2);
      const m = await sp('mount', 'gen-2', mnt);
      assert.equal(m.code, 0, m.stderr);
      try {
        assert.equal(readFileSync(join(mnt, 'usr/share/doc/demo/VERSION'), 'utf8'), '3\n');
      } finally {
        await sp('umount', 'gen-2');
      }
      await cleanState();
    });

    test('nothing to update makes no environment', async () => {
      writeFileSync(join(dir, 'nothing'), '');
      try {
        const r = await sp('stage');
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /up to date/);
        assert.deepEqual((await list()).map((e) => e.name), ['base']);
      } finally {
        rmSync(join(dir, 'nothing'));
      }
    });

    test('a failing updater undoes the clone and says which step failed', async () => {
      writeFileSync(join(dir, 'fail'), '');
      try {
        const r = await sp('stage');
        assert.equal(r.code, 3, r.stderr);
        assert.match(r.stderr, /failed at step "apply the updates/);
        assert.match(r.stderr, /mirror unreachable/);
        assert.deepEqual((await list()).map((e) => e.name), ['base']);
        const st = (await sp('--json', 'status')).json<{ lastStage: { status: string } }>();
        assert.equal(st.lastStage.status, 'failed');
      } finally {
        rmSync(join(dir, 'fail'));
      }
    });

    test('kill -9 at a step boundary leaves base untouched and the next run recovers, saying so', async () => {
      const before = await manifestOfBase();
      let points = 0;
      // The first boundary, one in the middle and the last: every boundary is
      // tried, with the boot entries checked too, in faults/kill-daemon.test.ts.
      const chosen = [STAGE.steps[0]!, STAGE.steps[Math.floor(STAGE.steps.length / 2)]!, STAGE.steps.at(-1)!];
      for (const step of chosen) {
        for (const where of ['before', 'after'] as const) {
          if ((step === chosen[0] && where === 'after') || (step === chosen[2] && where === 'before')) continue;
          const killed = await sysprime(['stage'], { config: s.config, env: { SYSPRIME_FAULT_INJECT: `kill:stage:${step.name}:${where}` } });
          assert.notEqual(killed.code, 0, `${step.name}:${where} should have died`);
          // The next run finds the interrupted staging, undoes it, and stages cleanly.
          const r = await sp('--json', 'stage');
          assert.equal(r.code, 0, `${step.name}:${where}: ${r.stderr}`);
          const out = r.json<{ kind: string; name: string; recovered: string[] }>();
          assert.equal(out.kind, 'staged');
          assert.equal(out.recovered.length, 1, `${step.name}:${where}: recovered ${JSON.stringify(out.recovered)}`);
          const names = (await list()).map((e) => e.name).sort();
          assert.deepEqual(names, ['base', out.name].sort(), `${step.name}:${where}: leftovers ${names}`);
          await cleanState();
          points++;
        }
      }
      assert.equal(points, 4);
      assert.equal(await manifestOfBase(), before);
    });

    test('kill -9 while the package manager runs is recovered too', async () => {
      writeFileSync(join(dir, 'slow'), '');
      try {
        const child = spawn(process.execPath, [BIN, '--config', s.config, 'stage'], { stdio: 'ignore' });
        for (let i = 0; i < 300 && !existsSync(join(dir, 'started')); i++) await sleep(100);
        assert.ok(existsSync(join(dir, 'started')), 'the update started');
        child.kill('SIGKILL');
        await new Promise((r) => child.on('close', r));
      } finally {
        rmSync(join(dir, 'slow'), { force: true });
        rmSync(join(dir, 'started'), { force: true });
      }
      // `status` finishes the cleanup, as `stage` and the daemon's start do.
      const st = await sp('--json', 'status');
      assert.equal(st.code, 0, st.stderr);
      const recovered = st.json<{ recovered: string[] }>().recovered;
      assert.equal(recovered.length, 1, JSON.stringify(recovered));
      assert.match(recovered[0]!, /undid the stage interrupted/);
      assert.deepEqual((await list()).map((e) => e.name), ['base'], 'nothing of the dead staging is left');
      const again = await sp('--json', 'status');
      assert.deepEqual(again.json<{ recovered: string[] }>().recovered, [], 'the next status has nothing to do');
      const r = await sp('--json', 'stage');
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.json<{ recovered: string[] }>().recovered, []);
      assert.deepEqual((await list()).map((e) => e.name).sort(), ['base', r.json<{ name: string }>().name].sort());
      await cleanState();
    });

    test('two stagings at once: one works, the other says the lock is held', async () => {
      writeFileSync(join(dir, 'slow'), '');
      const child = spawn(process.execPath, [BIN, '--config', s.config, 'stage'], { stdio: 'ignore' });
      try {
        for (let i = 0; i < 300 && !existsSync(join(dir, 'started')); i++) await sleep(100);
        const r = await sp('stage');
        assert.equal(r.code, 6, r.stderr);
        assert.match(r.stderr, /another sysprime/);
      } finally {
        child.kill('SIGKILL');
        await new Promise((r) => child.on('close', r));
        rmSync(join(dir, 'slow'), { force: true });
        rmSync(join(dir, 'started'), { force: true });
      }
      assert.equal((await sp('stage')).code, 0);
      await cleanState();
    });

    test('the daemon stages on a seconds-level schedule', async () => {
      const cfg = join(dir, 'daemon.toml');
      writeFileSync(cfg, readFileSync(s.config, 'utf8') + '\n[schedule]\nstage = "* * * * * *"\nrandom_delay = 0\n');
      const r = await sysprime(['daemon', '--max-runs', '1'], { config: cfg });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /stage: staged generation \d+ as gen-\d+/);
      assert.equal((await list()).length, 2);
      await cleanState();
    });

    test('the daemon records drift on its schedule', async () => {
      const cfg = join(dir, 'daemon-drift.toml');
      writeFileSync(cfg, readFileSync(s.config, 'utf8') + '\n[schedule]\nstage = "off"\ndrift = "* * * * * *"\nprune = "off"\n');
      const r = await sysprime(['daemon', '--max-runs', '1'], { config: cfg });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /drift: recorded drift of base/);
    });
  });
}
