/**
 * Older states through the real CLI on a real Btrfs filesystem and a real
 * zfs-fuse pool: `snapshot`, `list --snapshots`, retention of snapshots
 * (pins respected), `destroy ENV@NAME`, and what destroying an environment
 * does to its snapshots; a `snapshot` killed halfway (Btrfs, where it is
 * more than one command) leaves nothing a later verb trips over.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type EnvJson, environmentMounter, sysprime } from '../../fixtures/cli.js';

interface SnapshotJson {
  environment: string;
  name: string;
  id: string;
  generation: number;
  created: string;
  prune: boolean;
}

for (const kind of KINDS) {
  describe(`snapshots of environments on ${kind}`, () => {
    let s: Scratch;
    const sp = (...args: string[]) => sysprime(args, { config: s.config });
    const ok = async (...args: string[]) => {
      const r = await sp(...args);
      assert.equal(r.code, 0, `sysprime ${args.join(' ')}: ${r.stderr}`);
      return r;
    };
    const snaps = async () => (await ok('--json', 'list', '--snapshots')).json<SnapshotJson[]>();
    const ids = async () => (await snaps()).map((x) => `${x.environment}@${x.name}`);
    let mnt = '';
    const inside = environmentMounter(sp, () => mnt);

    before(async () => {
      s = await makeScratch(kind);
      mnt = mkdtempSync(join(tmpdir(), 'sysprime-snapshots-mnt-'));
      await ok('init', '--adopt', s.adopt, '--name', 'base');
      await ok('create', 'work');
    });
    after(async () => {
      await s?.cleanup();
      if (mnt !== '') rmSync(mnt, { recursive: true, force: true });
    });

    test('snapshot ENV NAME, and one named by the time; list --snapshots shows them', async () => {
      assert.match((await ok('list', '--snapshots')).stdout, /no snapshots/);
      assert.match((await ok('snapshot', 'work', 'one')).stdout, /took snapshot work@one \(generation 0\)/);
      const timed = (await ok('--json', 'snapshot', 'work')).json<SnapshotJson>();
      assert.match(timed.name, /^\d{8}T\d{6}Z$/);
      assert.deepEqual(await ids(), ['work@one', `work@${timed.name}`]);
      const table = (await ok('list', '--snapshots')).stdout;
      assert.match(table, /^SNAPSHOT\s+GEN\s+CREATED\s+PRUNE$/m);
      assert.match(table, /^work@one\s+0\s/m);
      // Not environments: `list` shows the same two as before.
      assert.deepEqual((await ok('--json', 'list')).json<{ name: string }[]>().map((e) => e.name).sort(), ['base', 'work']);
    });

    test('what snapshot refuses: a taken name, a missing environment, a bad or reserved name', async () => {
      const taken = await sp('snapshot', 'work', 'one');
      assert.equal(taken.code, 5, taken.stderr);
      assert.match(taken.stderr, /already has a snapshot "one"/);
      const missing = await sp('snapshot', 'nope', 'x');
      assert.equal(missing.code, 4, missing.stderr);
      assert.equal((await sp('snapshot', 'work', 'a/b')).code, 2);
      assert.equal((await sp('snapshot', 'work', 'sysprime-pristine')).code, 2);
      assert.equal((await sp('snapshot', 'work', 'pristine')).code, 2, 'ENV@pristine is the pristine state');
      assert.equal((await sp('destroy', 'work@nope')).code, 4);
    });

    test('prune keeps [retention] keep_snapshots of each environment, all of a pinned one', async () => {
      await ok('snapshot', 'work', 'two');
      await ok('snapshot', 'base', 'b1');
      await ok('snapshot', 'base', 'b2');
      const dry = await ok('prune', '--dry-run', '--keep-snapshots', '1');
      assert.match(dry.stdout, /would destroy snapshot work@one: beyond the 1 newest snapshots of work/);
      assert.match(dry.stdout, /would destroy snapshot base@b1/);
      assert.doesNotMatch(dry.stdout, /work@two|base@b2/);
      assert.equal((await ids()).length, 5, 'a dry run destroys nothing');
      await ok('pin', 'base');
      const r = await ok('prune', '--keep-snapshots', '1');
      assert.match(r.stdout, /destroyed snapshot work@one/);
      assert.match(r.stdout, /kept snapshot base@b1: base is pinned/);
      assert.deepEqual((await ids()).sort(), ['base@b1', 'base@b2', 'work@two']);
      await ok('unpin', 'base');
    });

    test('destroy ENV@NAME removes one snapshot; destroy ENV takes its snapshots and says so', async () => {
      assert.match((await ok('destroy', 'base@b1')).stdout, /destroyed snapshot base@b1/);
      assert.deepEqual((await ids()).sort(), ['base@b2', 'work@two']);
      await ok('rename', 'work', 'renamed');
      assert.deepEqual((await ids()).sort(), ['base@b2', 'renamed@two'], 'snapshots follow a rename');
      const d = await ok('destroy', 'renamed');
      assert.match(d.stdout, /destroyed "renamed" and its snapshot two/);
      assert.deepEqual(await ids(), ['base@b2']);
    });

    if (kind === 'btrfs') {
      test('a snapshot killed before it is in place, or a snapshot destroy killed halfway, leaves nothing behind', async () => {
        const killed = await sysprime(['snapshot', 'base', 'cut'], { config: s.config, env: { SYSPRIME_FAULT_INJECT: 'kill:backend:btrfs:snapshot-written' } });
        assert.notEqual(killed.code, 0);
        assert.deepEqual(await ids(), ['base@b2'], 'a half-made snapshot is not listed');
        await ok('snapshot', 'base', 'cut'); // the name is free again
        const cut = await sysprime(['destroy', 'base@cut'], { config: s.config, env: { SYSPRIME_FAULT_INJECT: 'kill:backend:btrfs:snapshot-renamed' } });
        assert.notEqual(cut.code, 0);
        assert.deepEqual(await ids(), ['base@b2']);
        const fixed = await ok('doctor', '--fix');
        assert.match(fixed.stdout + fixed.stderr, /half-made subvolume ROOT\/\.snapshots\/\.partial-base@cut/);
        await ok('snapshot', 'base', 'cut');
        assert.deepEqual((await ids()).sort(), ['base@b2', 'base@cut']);
      });
    }

    if (kind === 'btrfs') {
      test('a rename killed before its subvolume moved is undone, one killed after is finished: the snapshots follow the name', async () => {
        await ok('create', 'moving');
        await ok('snapshot', 'moving', 'keep');
        const mine = async () => (await ids()).filter((i) => /^mov(ing|ed)@/.test(i));
        const names = async () => (await ok('--json', 'list')).json<EnvJson[]>().map((e) => e.name).filter((n) => n.startsWith('mov'));

        const early = await sysprime(['rename', 'moving', 'moved'], { config: s.config, env: { SYSPRIME_FAULT_INJECT: 'kill:backend:btrfs:rename-marked' } });
        assert.notEqual(early.code, 0);
        const undone = await ok('doctor', '--fix');
        assert.match(undone.stdout + undone.stderr, /undid the rename of environment moving to moved/);
        assert.deepEqual(await names(), ['moving']);
        assert.deepEqual(await mine(), ['moving@keep']);

        const late = await sysprime(['rename', 'moving', 'moved'], { config: s.config, env: { SYSPRIME_FAULT_INJECT: 'kill:backend:btrfs:rename-renamed' } });
        assert.notEqual(late.code, 0);
        const finished = await ok('doctor', '--fix');
        assert.match(finished.stdout + finished.stderr, /finished renaming environment moving to moved/);
        assert.deepEqual(await names(), ['moved']);
        assert.deepEqual(await mine(), ['moved@keep'], 'the snapshot follows the name, as an uninterrupted rename makes it');
        await ok('create', 'from-moved', '--from', 'moved@keep');
        await ok('destroy', 'from-moved');
        await ok('destroy', 'moved');
      });
    }

    test('create --from ENV@SNAPSHOT and --from ENV@pristine; clear errors for unknown ones', async () => {
      await ok('create', 'third', '--from', 'base');
      await inside('third', (root) => writeFileSync(join(root, 'etc/marker'), 'then\n'));
      await ok('snapshot', 'third', 'marked');
      await inside('third', (root) => writeFileSync(join(root, 'etc/marker'), 'now\n'));

      await ok('create', 'from-snap', '--from', 'third@marked');
      assert.equal(await inside('from-snap', (root) => readFileSync(join(root, 'etc/marker'), 'utf8')), 'then\n');
      await ok('create', 'from-pristine', '--from', 'third@pristine');
      assert.equal(await inside('from-pristine', (root) => existsSync(join(root, 'etc/marker'))), false, 'the pristine state of generation 0 has no marker');
      const envs = (await ok('--json', 'list')).json<EnvJson[]>();
      assert.deepEqual(envs.filter((e) => e.name.startsWith('from-')).map((e) => [e.name, e.generation]).sort(), [['from-pristine', 0], ['from-snap', 0]]);
      assert.equal(await inside('third', (root) => readFileSync(join(root, 'etc/marker'), 'utf8')), 'now\n', 'the source is untouched');

      const noSnap = await sp('create', 'x', '--from', 'third@nope');
      assert.equal(noSnap.code, 4, noSnap.stderr);
      assert.match(noSnap.stderr, /environment "third" has no snapshot "nope"/);
      const noEnv = await sp('create', 'x', '--from', 'nope@pristine');
      assert.equal(noEnv.code, 4, noEnv.stderr);
      assert.match(noEnv.stderr, /no environment named "nope"/);
      assert.equal((await sp('create', 'x', '--from', 'third@sysprime-x')).code, 2);
      assert.equal((await sp('create', 'from-snap', '--from', 'third@marked')).code, 5, 'the name is taken');
      if (kind === 'zfs') {
        // ZFS keeps a clone's origin: said, and left, by destroy and by prune.
        const kept = await sp('destroy', 'third@marked');
        assert.equal(kept.code, 5, kept.stderr);
        assert.match(kept.stderr, /origin of .*from-snap/);
      }
      await ok('destroy', 'from-snap');
      await ok('destroy', 'third@marked');
    });
  });
}
