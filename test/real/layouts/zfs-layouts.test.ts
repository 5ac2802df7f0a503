/**
 * The ZFS root layouts people already have, built as their guides build
 * them (test/fixtures/zfs-layouts.ts), adopted and used with the real CLI:
 * the OpenZFS "Root on ZFS" layout of the Debian bookworm guide with its
 * shared datasets and boot pool (which is refused while it is the running
 * /boot), ZFSBootMenu's, roots made by other tools, and input that cannot
 * be adopted, which must change nothing.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { sysprime } from '../../fixtures/cli.js';
import { makeZfsLayout, poolState, unmountPool, type ZfsLayout } from '../../fixtures/zfs-layouts.js';

interface EnvJson {
  name: string;
  generation: number;
  booted: boolean;
  default: boolean;
  pristine: string | null;
  mounted: string | null;
}

async function zget(id: string, property: string): Promise<string> {
  return (await run('zfs', ['get', '-Hp', '-o', 'value', property, id])).stdout.trim();
}

async function exists(id: string): Promise<boolean> {
  return (await run('zfs', ['list', '-H', '-o', 'name', id], { allowFailure: true })).exitCode === 0;
}

async function datasets(pool: string): Promise<string[]> {
  const out = await run('zfs', ['list', '-H', '-o', 'name', '-t', 'filesystem', '-r', pool]);
  return out.stdout.trim().split('\n').sort();
}

async function bootfsOf(pool: string): Promise<string> {
  return (await run('zpool', ['list', '-H', '-o', 'bootfs', pool])).stdout.trim();
}

/** An update script for the command updater: bumps a version file in the tree it is given. */
function updateScript(dir: string): string {
  const script = join(dir, 'update.sh');
  writeFileSync(
    script,
    `#!/bin/sh
set -e
v=$(cat "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION" 2>/dev/null || echo 1)
echo $((v + 1)) > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"
`,
  );
  chmodSync(script, 0o755);
  return script;
}

describe('the OpenZFS Root on ZFS layout (Debian bookworm guide)', () => {
  let l: ZfsLayout;
  let dir: string;
  const sp = (...args: string[]) => sysprime(args, { config: l.config });
  const list = async () => (await sp('--json', 'list')).json<EnvJson[]>();
  let shared: string[];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-layout-'));
    l = await makeZfsLayout('debian', `[update]\nmethod = "command"\ncommand = "${updateScript(dir)}"\nchroot = false\n`);
    shared = (await datasets(l.pool)).filter((d) => !d.startsWith(`${l.pool}/ROOT`));
  });
  after(async () => {
    await l?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('before init, list names the installed root as not sysprime\'s', async () => {
    const r = await sp('list');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /no environments/);
    assert.match(r.stdout, /not sysprime's, left alone: debian \[default\]/);
  });

  test('a dataset that does not exist is refused in one line, and the pool is byte for byte what it was', async () => {
    const before = await poolState(l.pool);
    const r = await sp('init', '--adopt', `${l.pool}/ROOT/debain`);
    assert.equal(r.code, 4, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length <= 2, true, r.stderr);
    assert.match(r.stderr, /dataset .*\/ROOT\/debain does not exist/);
    assert.equal(await poolState(l.pool), before);
  });

  test('a dataset outside ROOT is not suggested by any hint', async () => {
    const r = await sp('init', '--adopt', `${l.bootPool}/BOOT/debian`);
    assert.equal(r.code, 5, r.stderr);
    assert.doesNotMatch(r.stderr, new RegExp(`${l.pool}/(?!ROOT)\\w`));
  });

  test('init adopts the pool\'s bootfs in place when nothing is mounted at /: it keeps its name and stays the default', async () => {
    const r = await sp('init');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /environment "debian", generation 0/);
    const envs = await list();
    assert.deepEqual(envs.map((e) => e.name), ['debian']);
    assert.equal(envs[0]!.default, true);
    assert.equal(envs[0]!.booted, false);
    assert.ok(envs[0]!.pristine);
    assert.equal(await bootfsOf(l.pool), l.rootDataset);
    assert.equal(await zget(l.rootDataset, 'org.sysprime:generation'), '0');
    assert.equal(await zget(l.rootDataset, 'mountpoint'), l.altroot, 'mountpoint=/ (below the altroot) is kept');
    assert.equal(await zget(l.rootDataset, 'canmount'), 'noauto');
  });

  test('a file written in the shared rpool/home after init is still there, and stays there through every verb', async () => {
    await run('zfs', ['mount', `${l.pool}/home`]);
    try {
      mkdirSync(join(l.altroot, 'home/alice'), { recursive: true });
      writeFileSync(join(l.altroot, 'home/alice/notes.txt'), 'written after init\n');
    } finally {
      await unmountPool(l.pool);
    }
  });

  test('create copies the default environment; the shared datasets are not cloned', async () => {
    const r = await sp('create', 'before-upgrade');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await list()).map((e) => e.name).sort(), ['before-upgrade', 'debian']);
    assert.deepEqual((await datasets(l.pool)).filter((d) => !d.startsWith(`${l.pool}/ROOT`)), shared);
    assert.equal(await zget(`${l.pool}/ROOT/before-upgrade`, 'origin') !== '-', true);
  });

  test('stage with the command updater builds generation 1 from the adopted root', async () => {
    const r = await sp('--json', 'stage');
    assert.equal(r.code, 0, r.stderr);
    const out = r.json<{ name: string; generation: number }>();
    assert.equal(out.name, 'gen-1');
    assert.equal(out.generation, 1);
    const mnt = join(l.altroot, 'check');
    const m = await sp('mount', 'gen-1', mnt);
    assert.equal(m.code, 0, m.stderr);
    try {
      assert.equal(readFileSync(join(mnt, 'usr/share/doc/demo/VERSION'), 'utf8'), '2\n');
      assert.equal(readFileSync(join(mnt, 'etc/hostname'), 'utf8'), 'demo-host\n');
    } finally {
      assert.equal((await sp('umount', 'gen-1')).code, 0);
    }
    assert.deepEqual((await datasets(l.pool)).filter((d) => !d.startsWith(`${l.pool}/ROOT`)), shared);
    assert.equal(await zget(l.rootDataset, 'mountpoint'), l.altroot, 'the adopted root is as it was');
  });

  test('activate makes the staged environment the pool\'s bootfs', async () => {
    const r = await sp('activate', 'gen-1');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await bootfsOf(l.pool), `${l.pool}/ROOT/gen-1`);
    assert.equal((await list()).find((e) => e.name === 'gen-1')?.default, true);
  });

  test('destroy removes an environment and nothing shared', async () => {
    const r = await sp('destroy', 'before-upgrade');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await exists(`${l.pool}/ROOT/before-upgrade`), false);
    assert.deepEqual((await datasets(l.pool)).filter((d) => !d.startsWith(`${l.pool}/ROOT`)), shared);
    assert.equal(await exists(`${l.bootPool}/BOOT/debian`), true);
  });

  test('prune leaves roots made by other tools alone, and destroy refuses them', async () => {
    // zectl's own boot environment (its properties as `zectl create` sets them) and a root an installer left.
    await run('zfs', ['create', '-o', 'canmount=noauto', '-o', 'mountpoint=/', '-o', 'org.zectl:bootloader=systemdboot', `${l.pool}/ROOT/zectl-be`]);
    await run('zfs', ['snapshot', `${l.pool}/ROOT/zectl-be@before`]);
    await run('zfs', ['create', '-o', 'canmount=noauto', '-o', 'mountpoint=/', `${l.pool}/ROOT/old-install`]);
    assert.equal((await sp('create', 'spare')).code, 0);
    const listed = await sp('list');
    assert.match(listed.stdout, /not sysprime's, left alone: .*zectl-be \(zectl\)/);
    assert.match(listed.stdout, /old-install/);
    assert.deepEqual((await list()).map((e) => e.name).sort(), ['debian', 'gen-1', 'spare']);

    const r = await sp('prune', '--keep', '1');
    assert.equal(r.code, 0, r.stderr);
    // keep 1: the newest (spare) and the default (gen-1) stay, the adopted root goes; the foreign roots are not counted.
    assert.match(r.stdout, /destroyed debian/, r.stdout);
    assert.deepEqual((await list()).map((e) => e.name).sort(), ['gen-1', 'spare']);
    assert.equal(await exists(l.rootDataset), false);
    assert.equal(await exists(`${l.pool}/ROOT/zectl-be`), true);
    assert.equal(await exists(`${l.pool}/ROOT/zectl-be@before`), true);
    assert.equal(await zget(`${l.pool}/ROOT/zectl-be`, 'org.zectl:bootloader'), 'systemdboot');
    assert.equal(await exists(`${l.pool}/ROOT/old-install`), true);

    const d = await sp('destroy', 'zectl-be');
    assert.equal(d.code, 5, d.stderr);
    assert.match(d.stderr, /"zectl-be" .* was not made or adopted by sysprime \(it is zectl's\)/);
    assert.equal(await exists(`${l.pool}/ROOT/zectl-be`), true);
    const rn = await sp('rename', 'old-install', 'mine');
    assert.equal(rn.code, 5, rn.stderr);
    assert.equal(await exists(`${l.pool}/ROOT/old-install`), true);
  });

  test('the file in rpool/home is still there', async () => {
    assert.deepEqual((await datasets(l.pool)).filter((d) => !d.startsWith(`${l.pool}/ROOT`)), shared);
    await run('zfs', ['mount', `${l.pool}/home`]);
    try {
      assert.equal(readFileSync(join(l.altroot, 'home/alice/notes.txt'), 'utf8'), 'written after init\n');
    } finally {
      await unmountPool(l.pool);
    }
  });
});

describe('a boot pool dataset not named after its root at /boot: not taken for a /boot partition, refused', () => {
  let l: ZfsLayout;
  let dir: string;
  let boot: string;
  // The running system's /boot is the boot pool's dataset, mounted (below the altroot) where the test tells sysprime /boot is.
  const sp = (...args: string[]) => sysprime(args, { config: l.config, env: { SYSPRIME_BOOT_PARTITION: boot } });
  const pools = async () => `${await poolState(l.pool)}\n${await poolState(l.bootPool!)}`;
  // The guide's layout but for the boot dataset's name: sysprime pairs `BOOT/<name>` with `ROOT/<name>` only.
  const mountBoot = () => run('zfs', ['mount', `${l.bootPool}/BOOT/bookworm`]);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-layout-'));
    l = await makeZfsLayout('debian', `[update]\nmethod = "command"\ncommand = "${updateScript(dir)}"\nchroot = false\n`);
    boot = join(l.altroot, 'boot');
    await unmountPool(l.bootPool!);
    await unmountPool(l.pool);
    await run('zfs', ['rename', `${l.bootPool}/BOOT/debian`, `${l.bootPool}/BOOT/bookworm`]);
  });
  after(async () => {
    await l?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('init refuses in one line, before anything changes: both pools byte for byte as they were', async () => {
    await mountBoot();
    try {
      const before = await pools();
      const r = await sp('init');
      assert.equal(r.code, 5, r.stderr);
      assert.ok(r.stderr.trim().split('\n').length <= 2, r.stderr);
      assert.match(r.stderr, new RegExp(`${boot} is the ZFS dataset ${l.bootPool}/BOOT/bookworm, a boot pool .*, not named after the root's environment "debian" .*: sysprime cannot tell which environment it belongs to`));
      assert.match(r.stderr, new RegExp(`hint: rename it to ${l.bootPool}/BOOT/debian .*ZFSBootMenu or systemd-boot`));
      assert.equal(await pools(), before);
      assert.match((await sp('list')).stdout, /no environments/);
    } finally {
      await unmountPool(l.bootPool!);
    }
  });

  test('adopted while it was not mounted, stage refuses it before cloning anything, and doctor names it', async () => {
    const init = await sysprime(['init'], { config: l.config });
    assert.equal(init.code, 0, init.stderr);
    await mountBoot();
    try {
      const before = await pools();
      const r = await sp('stage');
      assert.equal(r.code, 5, r.stderr);
      assert.match(r.stderr, /sysprime cannot tell which environment it belongs to/);
      assert.equal(await pools(), before, 'no clone, no snapshot, nothing in the boot pool');
      assert.equal(await exists(`${l.pool}/ROOT/gen-1`), false);
      const d = await sp('doctor');
      assert.notEqual(d.code, 0, d.stdout);
      assert.match(d.stdout, new RegExp(`^zfs-boot-pool: ${boot} is the ZFS dataset ${l.bootPool}/BOOT/bookworm, .*staging is refused`, 'm'));
      // --fix cannot change it: it says so and still exits non-zero.
      const f = await sp('doctor', '--fix');
      assert.notEqual(f.code, 0, f.stdout);
      assert.match(f.stdout, /doctor --fix cannot repair zfs-boot-pool/);
    } finally {
      await unmountPool(l.bootPool!);
    }
  });
});

describe('init --adopt names a root of the Debian layout and renames it', () => {
  let l: ZfsLayout;
  before(async () => {
    l = await makeZfsLayout('debian');
  });
  after(async () => {
    await l?.cleanup();
  });

  test('--name renames the dataset inside ROOT and the bootfs follows it', async () => {
    const r = await sysprime(['init', '--adopt', l.rootDataset, '--name', 'x'], { config: l.config });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await exists(l.rootDataset), false);
    assert.equal(await exists(`${l.pool}/ROOT/x`), true);
    assert.equal(await bootfsOf(l.pool), `${l.pool}/ROOT/x`);
    const envs = (await sysprime(['--json', 'list'], { config: l.config })).json<EnvJson[]>();
    assert.deepEqual(envs.map((e) => [e.name, e.default]), [['x', true]]);
    assert.equal(await exists(`${l.pool}/home/root`), true);
    // The boot dataset is the environment's: renamed with it, and its pristine taken under the same name.
    assert.equal(await exists(`${l.bootPool}/BOOT/debian`), false);
    assert.equal(await zget(`${l.bootPool}/BOOT/x`, 'org.sysprime:boot-of'), 'x');
    assert.equal(await zget(`${l.bootPool}/BOOT/x@sysprime-pristine`, 'org.sysprime:pristine-generation'), '0');
  });
});

describe('ZFSBootMenu layout: /boot inside the root, the command line as a property', () => {
  let l: ZfsLayout;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-layout-'));
    l = await makeZfsLayout('zfsbootmenu', `[update]\nmethod = "command"\ncommand = "${updateScript(dir)}"\nchroot = false\n`);
  });
  after(async () => {
    await l?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('init adopts zroot/ROOT/debian, stage and create keep org.zfsbootmenu:commandline on the clones', async () => {
    const sp = (...args: string[]) => sysprime(args, { config: l.config });
    assert.equal((await sp('init')).code, 0);
    const r = await sp('stage');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await zget(`${l.pool}/ROOT/gen-1`, 'org.zfsbootmenu:commandline'), 'quiet loglevel=4');
    assert.equal((await sp('create', 'copy', '--from', 'gen-1')).code, 0);
    assert.equal(await zget(`${l.pool}/ROOT/copy`, 'org.zfsbootmenu:commandline'), 'quiet loglevel=4');
    const mnt = join(l.altroot, 'check');
    assert.equal((await sp('mount', 'gen-1', mnt)).code, 0);
    try {
      assert.ok(existsSync(join(mnt, 'boot')), '/boot is part of the environment');
      assert.equal(readFileSync(join(mnt, 'usr/share/doc/demo/VERSION'), 'utf8'), '2\n');
    } finally {
      await sp('umount', 'gen-1');
    }
  });
});

describe('a root that cannot be adopted changes nothing', () => {
  let l: ZfsLayout;
  before(async () => {
    l = await makeZfsLayout('zfsbootmenu');
  });
  after(async () => {
    await l?.cleanup();
  });

  test('a pool whose root is not inside ROOT: one line, exit 5, the pool byte for byte as it was', async () => {
    // The root of an older layout: `<pool>/debian`, booted as the pool's bootfs, no ROOT container around it.
    await run('zfs', ['create', '-o', 'canmount=noauto', '-o', 'mountpoint=/', `${l.pool}/debian`]);
    await run('zpool', ['set', `bootfs=${l.pool}/debian`, l.pool]);
    const before = await poolState(l.pool);
    const r = await sysprime(['init'], { config: l.config });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /not inside .*\/ROOT/);
    assert.doesNotMatch(r.stderr, /adopt .*\/debian /);
    assert.equal(await poolState(l.pool), before);
  });
});

describe('a ZFS root with /boot on a partition of its own: refused before anything changes', () => {
  let l: ZfsLayout;
  let boot: string;

  before(async () => {
    // One pool, /boot a filesystem of its own (a plain directory stands in for the partition, as SYSPRIME_BOOT_PARTITION allows).
    l = await makeZfsLayout('zfsbootmenu');
    await unmountPool(l.pool);
    boot = mkdtempSync(join(tmpdir(), 'sysprime-bootpart-'));
    writeFileSync(join(boot, 'vmlinuz-6.1.0-demo'), 'kernel\n');
  });
  after(async () => {
    await l?.cleanup();
    rmSync(boot, { recursive: true, force: true });
  });

  test("init says why in one line: the running root's own /boot would get no kernels, nor anything made from it", async () => {
    const before = await poolState(l.pool);
    const r = await sysprime(['init'], { config: l.config, env: { SYSPRIME_BOOT_PARTITION: boot } });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, new RegExp(`${boot} is a partition of its own beside a ZFS root: sysprime cannot yet keep each environment's kernels there`));
    assert.match(r.stderr, /hint: keep \/boot in a boot pool .*bpool\/BOOT\/<name>/);
    assert.equal(await poolState(l.pool), before, 'nothing changed');
  });

  test('initialised before the check (or the partition mounted since), doctor names it, and --fix cannot change it', async () => {
    const init = await sysprime(['init'], { config: l.config });
    assert.equal(init.code, 0, init.stderr);
    const d = await sysprime(['doctor'], { config: l.config, env: { SYSPRIME_BOOT_PARTITION: boot } });
    assert.equal(d.code, 1, d.stdout + d.stderr);
    assert.match(d.stdout, new RegExp(`^zfs-boot-partition: ${boot} is a partition of its own beside a ZFS root: .*staging is refused`, 'm'));
    const f = await sysprime(['doctor', '--fix'], { config: l.config, env: { SYSPRIME_BOOT_PARTITION: boot } });
    assert.equal(f.code, 1, 'only the admin can change it');
    const s = await sysprime(['stage'], { config: l.config, env: { SYSPRIME_BOOT_PARTITION: boot } });
    assert.equal(s.code, 5, s.stderr);
    assert.match(s.stderr, /is a partition of its own beside a ZFS root/);
  });
});
