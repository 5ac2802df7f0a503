/**
 * The state database at adoption. On a machine as its installer made it,
 * `[state] dir` (/var/lib/sysprime/state) is inside the installer's root:
 * each environment would have its own copy, and a staged environment's first
 * boot would not find the manifests staging kept. `init` gives it a home of
 * its own and mounts it there at once and in every environment: on Btrfs the
 * subvolume ROOT/.sysprime/state, through fstab; on ZFS the dataset
 * <pool>/sysprime/state, through its own mountpoint and canmount=on. Here
 * the "running root" is the Debian layout's @rootfs mounted at a scratch
 * path, or the ZFS guide's rpool/ROOT/debian mounted at the pool's altroot,
 * its state directory inside it.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { sysprime } from '../../fixtures/cli.js';
import { makeBtrfsLayout, readText, type BtrfsLayout } from '../../fixtures/btrfs-layouts.js';
import { makeZfsLayout, unmountPool, type ZfsLayout } from '../../fixtures/zfs-layouts.js';
import { run } from '../../../src/process/run.js';
import { openState } from '../../../src/state/db.js';
import { eventsOf, recordEvent } from '../../../src/state/events.js';

describe('the state database of an adopted machine', () => {
  let l: BtrfsLayout;
  let stateDir: string;
  const sp = (...args: string[]) => sysprime(args, { config: l.config });
  const ok = async (...args: string[]) => {
    const r = await sp(...args);
    assert.equal(r.code, 0, `sysprime ${args.join(' ')}: ${r.stderr}\n${r.stdout}`);
    return r;
  };
  const mountedThere = async () => (await run('findmnt', ['-n', '-o', 'FSROOT', '--mountpoint', stateDir], { allowFailure: true })).stdout.trim();

  before(async () => {
    l = await makeBtrfsLayout('debian');
    stateDir = join(l.sysroot, 'var/lib/sysprime/state');
    const update = join(l.pool.dir, 'update.sh');
    writeFileSync(update, '#!/bin/sh\nset -e\necho 2 > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"\n');
    chmodSync(update, 0o755);
    const config = readText(l.config).replace(/^dir = .*$/m, `dir = "${stateDir}"`);
    writeFileSync(l.config, `${config}[update]\nmethod = "command"\ncommand = "${update}"\nchroot = false\n`);
  });
  after(async () => {
    await l?.cleanup();
  });

  test('init moves it out of the root it adopts, into a subvolume every environment mounts', async () => {
    await ok('list');
    assert.ok(existsSync(join(stateDir, 'sysprime.db')), 'the database starts inside the installer\'s root');
    assert.equal(await mountedThere(), '', 'nothing is mounted there yet');
    const r = await ok('init', '--adopt', '@rootfs', '--name', 'debian');
    assert.match(r.stderr, /the state database is in ROOT\/\.sysprime\/state/);
    assert.equal(await mountedThere(), '/ROOT/.sysprime/state', 'mounted there at once, for every command until the reboot');
    const line = `UUID=${l.uuid} ${stateDir} btrfs subvol=/ROOT/.sysprime/state 0 0`;
    for (const tree of ['ROOT/debian', 'ROOT/.pristine/debian']) assert.ok(readText(join(l.pool.top, tree, 'etc/fstab')).includes(`\n${line}\n`), `${tree}/etc/fstab mounts it`);
    assert.ok(existsSync(join(l.pool.top, 'ROOT/.sysprime/state/sysprime.db')));
    const list = await ok('--json', 'list');
    assert.match(list.stdout, /"debian"/);
    assert.doesNotMatch(r.stderr, /not sysprime's.*ROOT\/\.sysprime\/state/, 'the home is not taken for another tool\'s subvolume');
  });

  test('what staging records lands in the shared database, and a second init finds it home', async () => {
    await ok('stage', '--name', 'next');
    // The database of the installer's root, hidden under the mount, never saw the staging.
    await run('umount', [stateDir]);
    try {
      const hidden = await ok('status');
      assert.doesNotMatch(hidden.stdout, /last stage:\s+done "next"/);
    } finally {
      await run('mount', ['-t', 'btrfs', '-o', 'subvol=/ROOT/.sysprime/state', l.pool.device, stateDir]);
    }
    const status = await ok('status');
    assert.match(status.stdout, /last stage:\s+done "next"/);
    assert.ok(readText(join(l.pool.top, 'ROOT/next/etc/fstab')).includes('subvol=/ROOT/.sysprime/state'), 'the staged environment mounts it too');
    const again = await sp('init', '--adopt', '@rootfs', '--name', 'other');
    assert.notEqual(again.code, 0, 'already initialised');
  });
});

describe('the state database on a subvolume the admin already mounts there', () => {
  let l: BtrfsLayout;
  let stateDir: string;
  before(async () => {
    l = await makeBtrfsLayout('debian');
    stateDir = join(l.sysroot, 'var/lib/sysprime/state');
    await run('btrfs', ['-q', 'subvolume', 'create', join(l.pool.top, '@sysprime')]);
    await run('mkdir', ['-p', stateDir]);
    await run('mount', ['-t', 'btrfs', '-o', 'subvol=/@sysprime', l.pool.device, stateDir]);
    writeFileSync(l.config, readText(l.config).replace(/^dir = .*$/m, `dir = "${stateDir}"`));
  });
  after(async () => {
    await l?.cleanup();
  });

  test('is left where it is: init neither mounts over it nor makes another home', async () => {
    const r = await sysprime(['init', '--adopt', '@rootfs', '--name', 'debian'], { config: l.config });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await run('findmnt', ['-n', '-o', 'FSROOT', '--mountpoint', stateDir])).stdout.trim(), '/@sysprime');
    assert.ok(!existsSync(join(l.pool.top, 'ROOT/.sysprime/state')));
    assert.ok(existsSync(join(l.pool.top, '@sysprime/sysprime.db')));
  });
});

// ---- ZFS: the OpenZFS "Root on ZFS" guide's layout (test/fixtures/zfs-layouts.ts)

async function zget(id: string, property: string): Promise<string> {
  return (await run('zfs', ['get', '-Hp', '-o', 'value', property, id])).stdout.trim();
}

async function zsource(id: string, property: string): Promise<string> {
  return (await run('zfs', ['get', '-Hp', '-o', 'source', property, id])).stdout.trim();
}

async function zexists(id: string): Promise<boolean> {
  return (await run('zfs', ['list', '-H', '-o', 'name', id], { allowFailure: true })).exitCode === 0;
}

async function zdatasets(pool: string): Promise<string[]> {
  return (await run('zfs', ['list', '-H', '-o', 'name', '-t', 'filesystem', '-r', pool])).stdout.trim().split('\n').sort();
}

/**
 * What a boot does with the pool's other datasets: zfs-mount.service (`zfs
 * mount -a`) mounts every one with canmount=on at its mountpoint, parents
 * first; here for this pool only.
 */
async function mountLikeABoot(pool: string): Promise<void> {
  const out = await run('zfs', ['list', '-H', '-o', 'name,canmount,mountpoint,mounted', '-t', 'filesystem', '-r', pool]);
  const rows = out.stdout.trim().split('\n').map((l) => l.split('\t') as [string, string, string, string]);
  const wanted = rows.filter(([, canmount, mp, mounted]) => canmount === 'on' && mp.startsWith('/') && mounted !== 'yes');
  wanted.sort((a, b) => a[2].split('/').length - b[2].split('/').length);
  for (const [name] of wanted) await run('zfs', ['mount', name]);
}

/** zfs-fuse lets a dataset go a while after the mounts below it went: unmount it until it is gone from `dir`. */
async function unmountUntilGone(dataset: string, dir: string): Promise<void> {
  let last = '';
  for (let i = 0; i < 50; i++) {
    if ((await run('findmnt', ['-n', '-o', 'SOURCE', '--mountpoint', dir], { allowFailure: true })).stdout.trim() !== dataset) return;
    last = (await run('zfs', ['unmount', dataset], { allowFailure: true })).stderr.trim();
    await sleep(200);
  }
  throw new Error(`${dataset} stays mounted at ${dir}: ${last}`);
}

/** The events the database in `dir` holds for an environment, oldest first. */
function eventsIn(dir: string, environment: string): { event: string; detail: Record<string, unknown> }[] {
  const db = openState(dir);
  try {
    return eventsOf(db, environment).map((e) => ({ event: e.event, detail: e.detail }));
  } finally {
    db.close();
  }
}

/** The guide's layout, its root mounted where its mountpoint=/ lands (the altroot) as the running root is at /, and [state] dir inside it. */
async function zfsMachine(extraToml = ''): Promise<{ l: ZfsLayout; stateDir: string }> {
  const l = await makeZfsLayout('debian', extraToml);
  try {
    // The fixture unmounts the root pool before the boot pool, whose /boot keeps the root busy: it may still be there.
    const there = (await run('findmnt', ['-n', '-o', 'SOURCE', '--mountpoint', l.altroot], { allowFailure: true })).stdout.trim();
    if (there !== l.rootDataset) await run('zfs', ['mount', l.rootDataset]);
    const stateDir = join(l.altroot, 'var/lib/sysprime/state');
    writeFileSync(l.config, readText(l.config).replace(/^dir = .*$/m, `dir = "${stateDir}"`));
    return { l, stateDir };
  } catch (err) {
    await l.cleanup();
    throw err;
  }
}

describe('the state database of a machine on the OpenZFS Root on ZFS layout', () => {
  let l: ZfsLayout;
  let stateDir: string;
  let scripts: string;
  const home = () => `${l.pool}/sysprime/state`;
  const sp = (...args: string[]) => sysprime(args, { config: l.config });
  const ok = async (...args: string[]) => {
    const r = await sp(...args);
    assert.equal(r.code, 0, `sysprime ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const mountedThere = async () => (await run('findmnt', ['-n', '-o', 'SOURCE', '--mountpoint', stateDir], { allowFailure: true })).stdout.trim();
  const doctorProblems = async () => (await sp('--json', 'doctor')).json<{ problems: { kind: string; what: string }[] }>().problems;

  before(async () => {
    scripts = mkdtempSync(join(tmpdir(), 'sysprime-statehome-'));
    const update = join(scripts, 'update.sh');
    writeFileSync(update, '#!/bin/sh\nset -e\necho 2 > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"\n');
    chmodSync(update, 0o755);
    ({ l, stateDir } = await zfsMachine(`[update]\nmethod = "command"\ncommand = "${update}"\nchroot = false\n`));
  });
  after(async () => {
    await l?.cleanup();
    rmSync(scripts, { recursive: true, force: true });
  });

  test('init gives it a dataset beside ROOT, mounted there now and at every boot, with the history it had', async () => {
    await ok('list');
    assert.ok(existsSync(join(stateDir, 'sysprime.db')), "the database starts inside the installer's root");
    const db = openState(stateDir);
    recordEvent(db, 'installer', 'note', { said: 'before init' });
    db.close();
    assert.equal(await mountedThere(), '', 'nothing is mounted there yet');

    const r = await ok('init');
    assert.match(r.stderr, new RegExp(`the state database is in ${l.pool}/sysprime/state`));
    assert.match(r.stderr, /removed the adopted root's copy of the state database/);
    assert.equal(await mountedThere(), home(), 'mounted there at once, for every command until the reboot');
    assert.equal(await zget(home(), 'canmount'), 'on', 'zfs-mount.service mounts it in every environment');
    assert.equal(await zget(home(), 'mountpoint'), stateDir, 'its own mountpoint: the state directory (below the altroot here)');
    assert.equal(await zsource(home(), 'mountpoint'), 'local');
    assert.equal(await zget(home(), 'org.sysprime:state-home'), 'database');
    assert.equal(await zget(`${l.pool}/sysprime`, 'canmount'), 'off');
    assert.equal(await zget(`${l.pool}/sysprime`, 'mountpoint'), 'none');
    assert.deepEqual(eventsIn(stateDir, 'installer'), [{ event: 'note', detail: { said: 'before init' } }], 'the history from before init came along');
    assert.deepEqual(eventsIn(stateDir, 'debian').map((e) => e.event), ['init']);
    assert.ok(!existsSync(`${stateDir}.sysprime-new`), 'the directory it was filled at is gone');

    const list = await ok('--json', 'list');
    assert.deepEqual(list.json<{ name: string }[]>().map((e) => e.name), ['debian']);
    assert.doesNotMatch((await ok('list')).stdout, /sysprime\/state|not sysprime's/, 'not an environment, not a root of another tool');
    const fstab = join(l.altroot, 'etc/fstab');
    assert.ok(!existsSync(fstab) || !readText(fstab).includes('sysprime'), 'no fstab line: its mountpoint is enough');
  });

  test('doctor finds it shared; a home unmounted by hand is named', async () => {
    assert.deepEqual((await doctorProblems()).filter((p) => p.kind === 'state-not-shared'), []);
    await run('zfs', ['unmount', home()]);
    try {
      const problems = await doctorProblems();
      assert.equal(problems.filter((p) => p.kind === 'state-not-shared').length, 1, JSON.stringify(problems));
    } finally {
      // doctor opened a database in the root's directory; ZFS mounts on an empty one only.
      for (const name of readdirSync(stateDir)) rmSync(join(stateDir, name), { recursive: true });
      await run('zfs', ['mount', home()]);
    }
    assert.deepEqual((await doctorProblems()).filter((p) => p.kind === 'state-not-shared'), []);
  });

  test("what staging records is in the shared database, which the staged environment's boot mounts by itself", async () => {
    const staged = await ok('-v', '--json', 'stage');
    const name = staged.json<{ name: string }>().name;
    assert.doesNotMatch(staged.stderr, /state database .* is inside/);
    assert.match((await ok('status')).stdout, new RegExp(`last stage:\\s+done "${name}"`));

    // The boot of the staged environment, as far as mounts go: the initramfs mounts it at / (here the
    // altroot), and nothing of sysprime's runs before zfs-mount.service has mounted the pool's datasets.
    // The boot pool first: its /boot mounted inside the root keeps the root busy.
    await unmountPool(l.bootPool!);
    await unmountPool(l.pool);
    await unmountUntilGone(l.rootDataset, l.altroot);
    await run('zfs', ['mount', `${l.pool}/ROOT/${name}`]);
    // No copy of its own: init took the root's out before the pristine snapshot the environment is cloned from.
    assert.deepEqual(readdirSync(stateDir), []);
    await mountLikeABoot(l.pool);
    assert.equal(await mountedThere(), home());
    assert.match((await ok('status')).stdout, new RegExp(`last stage:\\s+done "${name}"`));
    assert.deepEqual(eventsIn(stateDir, 'installer').length, 1);
  });

  test('a second init changes nothing', async () => {
    const before = await zdatasets(l.pool);
    const props = await Promise.all(['canmount', 'mountpoint', 'org.sysprime:state-home'].map((p) => zget(home(), p)));
    const again = await sp('init');
    assert.notEqual(again.code, 0, 'already initialised');
    assert.deepEqual(await zdatasets(l.pool), before);
    assert.deepEqual(await Promise.all(['canmount', 'mountpoint', 'org.sysprime:state-home'].map((p) => zget(home(), p))), props);
    assert.equal(await mountedThere(), home());
  });
});

describe('the state database on ZFS where the admin has a dataset of the name sysprime would use, or one of their own mounted there', () => {
  let l: ZfsLayout;
  let stateDir: string;
  before(async () => {
    ({ l, stateDir } = await zfsMachine());
  });
  after(async () => {
    await l?.cleanup();
  });

  test('a <pool>/sysprime/state sysprime did not make is refused, and the pool is left as it was', async () => {
    await run('zfs', ['create', '-o', 'canmount=off', '-o', 'mountpoint=none', `${l.pool}/sysprime`]);
    await run('zfs', ['create', '-o', 'canmount=noauto', `${l.pool}/sysprime/state`]);
    const before = await zdatasets(l.pool);
    const r = await sysprime(['init'], { config: l.config });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, new RegExp(`${l.pool}/sysprime/state.* not made by sysprime`));
    assert.deepEqual(await zdatasets(l.pool), before);
    assert.equal(await zget(`${l.pool}/sysprime/state`, 'canmount'), 'noauto');
    assert.equal(await zget(l.rootDataset, 'org.sysprime:generation'), '-', 'not adopted');
    await run('zfs', ['destroy', '-r', `${l.pool}/sysprime`]);
  });

  test('their own dataset mounted at the state directory is already its home: init neither mounts over it nor makes another', async () => {
    // Made as an admin would before installing sysprime (the directory is new, so nothing is hidden under it).
    rmSync(stateDir, { recursive: true, force: true });
    await run('zfs', ['create', '-o', 'mountpoint=/var/lib/sysprime/state', `${l.pool}/var/lib/sysprime-state`]);
    assert.equal((await run('findmnt', ['-n', '-o', 'SOURCE', '--mountpoint', stateDir])).stdout.trim(), `${l.pool}/var/lib/sysprime-state`);
    const r = await sysprime(['init'], { config: l.config });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /the state database is in/);
    assert.equal((await run('findmnt', ['-n', '-o', 'SOURCE', '--mountpoint', stateDir])).stdout.trim(), `${l.pool}/var/lib/sysprime-state`);
    assert.equal(await zexists(`${l.pool}/sysprime`), false);
    assert.deepEqual(eventsIn(stateDir, 'debian').map((e) => e.event), ['init']);
  });
});

describe('the state database on ZFS: init killed while it makes the home', () => {
  let l: ZfsLayout;
  let stateDir: string;
  const home = () => `${l.pool}/sysprime/state`;
  const init = (fault?: string) => sysprime(['init'], { config: l.config, env: fault === undefined ? {} : { SYSPRIME_FAULT_INJECT: `kill:backend:zfs:${fault}` } });
  before(async () => {
    ({ l, stateDir } = await zfsMachine());
  });
  after(async () => {
    await l?.cleanup();
  });

  test('at each point the next init takes it further, and the last finishes it with the history the root held', async () => {
    const db = openState(stateDir);
    recordEvent(db, 'installer', 'note', { said: 'before init' });
    db.close();

    assert.notEqual((await init('state-home-created')).code, 0);
    assert.equal(await zget(home(), 'canmount'), 'noauto', 'no boot mounts it yet: the root keeps its database');
    assert.equal(await zget(home(), 'mounted'), 'no');
    assert.deepEqual(eventsIn(stateDir, 'installer').length, 1);

    assert.notEqual((await init('state-home-mounted')).code, 0);
    assert.equal(await zget(home(), 'mounted'), 'yes', 'beside the state directory, empty');
    assert.equal(await zget(home(), 'mountpoint'), `${stateDir}.sysprime-new`);
    assert.deepEqual(eventsIn(stateDir, 'installer').length, 1);

    // Copied in, the root's copy removed, not mounted anywhere: the next command opens an empty directory.
    assert.notEqual((await init('state-home-mountpoint-set')).code, 0);
    assert.equal(await zget(home(), 'mounted'), 'no');
    assert.equal(await zget(home(), 'canmount'), 'noauto');

    assert.notEqual((await init('state-home-in-place')).code, 0);
    assert.equal((await run('findmnt', ['-n', '-o', 'SOURCE', '--mountpoint', stateDir])).stdout.trim(), home());
    assert.equal(await zget(home(), 'canmount'), 'noauto');

    const r = await init();
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await run('findmnt', ['-n', '-o', 'SOURCE', '--mountpoint', stateDir])).stdout.trim(), home());
    assert.equal(await zget(home(), 'canmount'), 'on');
    assert.equal(await zget(home(), 'mountpoint'), stateDir);
    assert.deepEqual(eventsIn(stateDir, 'installer'), [{ event: 'note', detail: { said: 'before init' } }]);
    assert.deepEqual(eventsIn(stateDir, 'debian').map((e) => e.event), ['init']);
    assert.ok(!existsSync(`${stateDir}.sysprime-new`));
  });
});
