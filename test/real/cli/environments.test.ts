/**
 * Every environment verb, run as a user runs it (the real bin/sysprime), on a
 * real Btrfs filesystem and a real zfs-fuse pool.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { type EnvJson, sysprime, BIN } from '../../fixtures/cli.js';
import { spawnSync } from 'node:child_process';


for (const kind of KINDS) {
  describe(`environment verbs on ${kind}`, () => {
    let s: Scratch;
    const sp = (...args: string[]) => sysprime(args, { config: s.config });
    const list = async () => (await sp('--json', 'list')).json<EnvJson[]>();

    before(async () => {
      s = await makeScratch(kind);
    });
    after(async () => {
      await s?.cleanup();
    });

    test('list on an uninitialised pool says so', async () => {
      const r = await sp('list');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /no environments/);
      assert.deepEqual(await list(), []);
    });

    test('init adopts the tree as generation 0 with a pristine snapshot, default of the pool', async () => {
      const r = await sp('init', '--adopt', s.adopt, '--name', 'base');
      assert.equal(r.code, 0, r.stderr);
      const envs = await list();
      assert.equal(envs.length, 1);
      const base = envs[0]!;
      assert.equal(base.name, 'base');
      assert.equal(base.generation, 0);
      assert.equal(base.default, true);
      assert.equal(base.booted, false);
      assert.ok(base.pristine, 'has a pristine snapshot');
      assert.ok(!Number.isNaN(Date.parse(base.created)));
      assert.equal(base.mounted, null);
    });

    test('init twice is refused', async () => {
      const r = await sp('init', '--adopt', s.adopt, '--name', 'again');
      assert.equal(r.code, 5);
      assert.match(r.stderr, /already initialised/);
    });

    test('create copies the current environment as it is now', async () => {
      const r = await sp('create', 'copy');
      assert.equal(r.code, 0, r.stderr);
      const envs = await list();
      const copy = envs.find((e) => e.name === 'copy');
      assert.ok(copy);
      assert.equal(copy.generation, 0);
      assert.equal(copy.default, false);
    });

    test('create --from a named environment, and a duplicate name is refused', async () => {
      assert.equal((await sp('create', 'copy2', '--from', 'copy')).code, 0);
      const dup = await sp('create', 'copy2');
      assert.equal(dup.code, 5);
      assert.match(dup.stderr, /already exists/);
      const missing = await sp('create', 'x', '--from', 'nope');
      assert.equal(missing.code, 4);
      assert.match(missing.stderr, /no environment named "nope"/);
    });

    test('mount shows the tree; a file written there is in the environment; umount', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'sysprime-mnt-'));
      try {
        const r = await sp('mount', 'copy', dir);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim(), dir);
        assert.equal(readFileSync(join(dir, 'etc/hostname'), 'utf8'), 'demo-host\n');
        writeFileSync(join(dir, 'etc/motd'), 'hello from copy\n');
        assert.equal((await list()).find((e) => e.name === 'copy')?.mounted, dir);
        const again = await sp('mount', 'copy', dir);
        assert.equal(again.code, 5);
        assert.equal((await sp('umount', 'copy')).code, 0);
        assert.equal((await list()).find((e) => e.name === 'copy')?.mounted, null);
        assert.ok(!existsSync(join(dir, 'etc/hostname')), 'unmounted');
        assert.equal((await sp('mount', 'copy', dir)).code, 0);
        assert.equal(readFileSync(join(dir, 'etc/motd'), 'utf8'), 'hello from copy\n');
        assert.equal((await sp('umount', 'copy')).code, 0);
        assert.equal((await sp('umount', 'copy')).code, 5, 'not mounted any more');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test('activate makes another environment the default', async () => {
      const r = await sp('activate', 'copy');
      assert.equal(r.code, 0, r.stderr);
      const envs = await list();
      assert.equal(envs.find((e) => e.name === 'copy')?.default, true);
      assert.equal(envs.find((e) => e.name === 'base')?.default, false);
      const once = await sp('activate', '--once', 'base');
      assert.equal(once.code, 5, 'no bootloader: one-shot is refused');
      assert.match(once.stderr, /bootloader/);
    });

    test('destroy refuses the default environment', async () => {
      const r = await sp('destroy', 'copy');
      assert.equal(r.code, 5);
      assert.match(r.stderr, /default/);
      assert.ok((await list()).some((e) => e.name === 'copy'));
    });

    test('rename, and the renamed environment keeps its generation and pristine', async () => {
      const before = (await list()).find((e) => e.name === 'copy2')!;
      const r = await sp('rename', 'copy2', 'renamed');
      assert.equal(r.code, 0, r.stderr);
      const after = (await list()).find((e) => e.name === 'renamed');
      assert.ok(after);
      assert.equal(after.generation, before.generation);
      assert.ok(after.pristine);
      assert.equal((await sp('rename', 'renamed', 'base')).code, 5, 'target name taken');
    });

    test('destroy an environment that is neither default nor running', async () => {
      const r = await sp('destroy', 'renamed');
      assert.equal(r.code, 0, r.stderr);
      assert.ok(!(await list()).some((e) => e.name === 'renamed'));
      assert.equal((await sp('destroy', 'renamed')).code, 4);
    });

    test('the origin of other environments can be destroyed; they keep working', async () => {
      // base holds the pristine snapshot of generation 0 and is the origin of copy.
      const r = await sp('destroy', 'base');
      assert.equal(r.code, 0, r.stderr);
      const envs = await list();
      assert.deepEqual(envs.map((e) => e.name), ['copy']);
      assert.ok(envs[0]!.pristine, 'generation 0 pristine survives for copy');
      assert.equal((await sp('create', 'after-destroy')).code, 0);
    });

    test('hostile names are refused before anything runs', async () => {
      for (const bad of ['../evil', '-rf', 'a/b', 'x'.repeat(300), 'with space', 'new\nline']) {
        const r = await sp('create', '--', bad);
        assert.equal(r.code, 2, `${JSON.stringify(bad)}: ${r.stderr}`);
        assert.match(r.stderr, /cannot be used/);
      }
      assert.equal((await list()).length, 2);
    });

    test('status and --json status', async () => {
      const r = await sp('status');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /current: +copy/);
      const j = (await sp('--json', 'status')).json<{ current: EnvJson; nextBoot: string }>();
      assert.equal(j.current.name, 'copy');
      assert.equal(j.nextBoot, 'copy');
    });

    test('a configuration with a typo is refused naming the key', async () => {
      const bad = join(s.stateDir, 'typo.toml');
      writeFileSync(bad, readFileSync(s.config, 'utf8') + '\n[retention]\nkeeep = 3\n');
      const r = await sysprime(['list'], { config: bad });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /unknown key 'retention\.keeep'/);
      assert.match(r.stderr, /retention\.keep/);
    });
  });
}

describe('refusals that need no pool', () => {
  test('a missing pool or filesystem is named', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sysprime-cfg-'));
    try {
      const zfs = join(dir, 'zfs.toml');
      writeFileSync(zfs, `backend = "zfs"\n[zfs]\npool = "sysprime-no-such-pool"\n[state]\ndir = "${dir}"\n`);
      const r = await sysprime(['list'], { config: zfs });
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, /sysprime-no-such-pool/);
      const btrfs = join(dir, 'btrfs.toml');
      writeFileSync(btrfs, `backend = "btrfs"\n[btrfs]\ntop = "${dir}/nowhere"\n[state]\ndir = "${dir}"\n`);
      const b = await sysprime(['list'], { config: btrfs });
      assert.notEqual(b.code, 0);
      assert.match(b.stderr, /nowhere/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('without root it refuses with a clear message', () => {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, 'list'], { encoding: 'utf8' });
    assert.equal(r.status, 5, r.stderr);
    assert.match(r.stderr, /must run as root/);
  });

  test('an unknown verb gets a suggestion and exit 2', async () => {
    const r = await sysprime(['lsit']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /list/);
  });
});
