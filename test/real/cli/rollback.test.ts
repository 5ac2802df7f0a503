/**
 * `sysprime rollback` through the real CLI on real pools: back to the
 * environment of an older generation, with the admin's changes made since
 * carried over by the reintegration engine run towards the older
 * generation (merged where the older generation ships the file
 * differently), its state before kept as a snapshot, and its refusals. A
 * rollback killed after its snapshot, or after carrying the changes, is
 * finished by running it again.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { type EnvJson, environmentMounter, sysprime } from '../../fixtures/cli.js';

/** The update of generation 1: another port, a VERSION file. */
function updateScript(dir: string): string {
  const script = join(dir, 'update.sh');
  writeFileSync(script, `#!/bin/sh\nset -e\nr="$SYSPRIME_ROOT"\nsed -i 's/^port = 8080$/port = 9090/' "$r/etc/demo.conf"\necho 2 > "$r/usr/share/doc/demo/VERSION"\n`);
  chmodSync(script, 0o755);
  return script;
}

for (const kind of KINDS) {
  describe(`rollback on ${kind}`, () => {
    let s: Scratch;
    let dir: string;
    let mnt: string;
    const sp = (...args: string[]) => sysprime(args, { config: s.config });
    const ok = async (...args: string[]) => {
      const r = await sp(...args);
      assert.equal(r.code, 0, `sysprime ${args.join(' ')}: ${r.stderr}`);
      return r;
    };
    const inEnv = environmentMounter(sp, () => mnt);

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sysprime-rollback-'));
      mnt = join(dir, 'mnt');
      s = await makeScratch(kind, `[update]\nmethod = "command"\ncommand = "${updateScript(dir)}"\nchroot = false\n`);
      await ok('init', '--adopt', s.adopt, '--name', 'base');
      await ok('stage');
    });
    after(async () => {
      await s?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    test('refused: a newer generation, the current environment, one that does not exist', async () => {
      // base (generation 0) is still the default, so the current environment.
      const newer = await sp('rollback', 'gen-1');
      assert.equal(newer.code, 5, newer.stderr);
      assert.match(newer.stderr, /"gen-1" \(generation 1\) is newer than "base" \(generation 0\): rollback goes to an older generation/);
      const none = await sp('rollback');
      assert.equal(none.code, 4, none.stderr);
      assert.match(none.stderr, /no environment of an older generation than "base"/);
      assert.equal((await sp('rollback', 'base')).code, 5);
      assert.equal((await sp('rollback', 'nope')).code, 4);
    });

    test("back to generation 0 with today's edits: --plan, a kill after the snapshot and after carrying, then done", async () => {
      await ok('activate', 'gen-1');
      await inEnv('gen-1', (root) => {
        writeFileSync(join(root, 'etc/demo.conf'), readFileSync(join(root, 'etc/demo.conf'), 'utf8').replace('workers = 2', 'workers = 8'));
        writeFileSync(join(root, 'etc/motd'), 'today\n');
      });
      await inEnv('base', (root) => assert.ok(!existsSync(join(root, 'etc/motd'))));

      const plan = await ok('rollback', '--plan');
      assert.match(plan.stdout, /Plan: changes of "gen-1" \(generation 1\) into "base" \(generation 0\)/);
      assert.match(plan.stdout, /copy\s+\/etc\/motd/);
      assert.match(plan.stdout, /merge\s+\/etc\/demo\.conf/);
      await inEnv('base', (root) => assert.ok(!existsSync(join(root, 'etc/motd')), '--plan writes nothing'));

      const first = await sysprime(['rollback', 'base'], { config: s.config, env: { SYSPRIME_FAULT_INJECT: 'kill:rollback:snapshot-taken' } });
      assert.notEqual(first.code, 0);
      const second = await sysprime(['rollback', 'base'], { config: s.config, env: { SYSPRIME_FAULT_INJECT: 'kill:rollback:reintegrated' } });
      assert.notEqual(second.code, 0);
      assert.equal((await ok('--json', 'list')).json<EnvJson[]>().find((e) => e.default)?.name, 'gen-1', 'not activated yet');
      const done = await ok('--json', 'rollback', 'base');
      const r = done.json<{ from: string; to: string; snapshot: string; counts: { failed: number } }>();
      assert.deepEqual([r.from, r.to, r.counts.failed], ['gen-1', 'base', 0]);

      assert.equal((await ok('--json', 'list')).json<EnvJson[]>().find((e) => e.default)?.name, 'base');
      await inEnv('base', (root) => {
        assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'today\n');
        assert.match(readFileSync(join(root, 'etc/demo.conf'), 'utf8'), /^port = 8080$[\s\S]*^workers = 8$/m, "generation 0's port, the admin's workers");
        assert.ok(!existsSync(join(root, 'usr/share/doc/demo/VERSION')), 'what generation 1 added is not carried back: it is not an edit of the admin');
      });
      // The first snapshot holds base as it was before the rollback wrote into it.
      const snaps = (await ok('--json', 'list', '--snapshots')).json<{ environment: string; name: string }[]>().filter((x) => x.environment === 'base').map((x) => x.name);
      assert.equal(snaps.length, 3, snaps.join(' '));
      assert.ok(snaps.every((n) => n.startsWith('rollback-')));
      await ok('create', 'as-it-was', '--from', `base@${snaps[0]}`);
      await inEnv('as-it-was', (root) => assert.ok(!existsSync(join(root, 'etc/motd'))));
    });
  });
}
