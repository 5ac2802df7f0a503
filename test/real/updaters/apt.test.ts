/**
 * The apt updater against a real Debian 12 tree (mmdebstrap minbase, cached,
 * see test/fixtures/debian-tree.ts) and a local repository of small packages.
 * The "pristine" tree has sysprime-demo 1 installed from that repository;
 * each test copies it into a clone (and, when the admin changed something, a
 * "live" copy), runs the updater on the clone and looks at what apt did there.
 * The Debian mirror is switched off in the trees: only the local repository is
 * used, and apt needs no network.
 */
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { cloneDefaults } from '../../../src/config/schema.js';
import { isSysprimeError } from '../../../src/errors.js';
import { run } from '../../../src/process/run.js';
import type { AptApplyReport } from '../../../src/updaters/apt/index.js';
import { parseDpkgStatus, type DpkgPackage } from '../../../src/updaters/apt/dpkg-status.js';
import { withChroot } from '../../../src/updaters/chroot.js';
import { mountsAtOrBelow, parseMountinfo, unmountOrder } from '../../../src/os/mounts.js';
import { createUpdater } from '../../../src/updaters/registry.js';
import type { UpdateOptions } from '../../../src/updaters/types.js';
import { buildDeb, makeDebRepo, type DebRepo, type DebSpec } from '../../fixtures/deb-repo.js';
import { copyTree, makeDebianTree } from '../../fixtures/debian-tree.js';

const NONINTERACTIVE = { DEBIAN_FRONTEND: 'noninteractive' };

let scratch: string;
let pristine: string;
let repo: DebRepo;
/** Trees the running test made; removed after it, so only a few are on disk at a time. */
let made: string[] = [];

function demo(version: string, more: Partial<DebSpec> = {}): DebSpec {
  return {
    name: 'sysprime-demo',
    version,
    conffile: `# sysprime-demo configuration, version ${version}\ngreeting = hello ${version}\n`,
    script: `#!/bin/sh\necho "sysprime-demo version ${version}"\n`,
    ...more,
  };
}

before(async () => {
  // Large trees: /var/tmp, not a tmpfs.
  scratch = mkdtempSync('/var/tmp/sysprime-apt-');
  pristine = join(scratch, 'pristine');
  await makeDebianTree(pristine);
  repo = await makeDebRepo(join(scratch, 'repo'));
  await repo.publish(demo('1'));
  await repo.publish({ name: 'sysprime-extra', version: '1', script: '#!/bin/sh\necho extra\n' });
  await repo.installInto(pristine);
  await inTree(pristine, [
    ['apt-get', 'update'],
    ['apt-get', 'install', '-y', 'sysprime-demo'],
    ['apt-get', 'clean'],
  ]);
});

/** What a failed test may have left mounted, detached before anything is removed. */
async function removeTree(tree: string): Promise<void> {
  for (const m of unmountOrder(await mountsBelow(tree))) await run('umount', ['--lazy', m.mountPoint], { allowFailure: true });
  await run('rm', ['-rf', '--one-file-system', tree], { timeout: 10 * 60_000 });
}

afterEach(async () => {
  for (const tree of made) await removeTree(tree);
  made = [];
});

after(async () => {
  await removeTree(scratch);
});

/** Runs commands in a tree the way an admin would on that system. */
async function inTree(tree: string, commands: string[][]): Promise<void> {
  await withChroot(tree, { timeout: 600 }, async (session) => {
    for (const argv of commands) await session.run(argv, { env: NONINTERACTIVE });
  });
}

/** A new environment: a copy of the pristine tree, seeing the repository as it is now. */
async function cloneOf(from: string, name: string): Promise<string> {
  const dest = join(scratch, name);
  made.push(dest);
  await copyTree(from, dest);
  await repo.installInto(dest);
  return dest;
}

function status(tree: string): DpkgPackage[] {
  return parseDpkgStatus(readFileSync(join(tree, 'var/lib/dpkg/status'), 'utf8'));
}

function pkg(tree: string, name: string): DpkgPackage | undefined {
  return status(tree).find((p) => p.name === name);
}

/** Every entry of a tree with its type, size, mode and mtime: a tree that was only read lists the same. */
async function listing(tree: string): Promise<string> {
  return (await run('find', [tree, '-printf', '%P %y %s %m %T@ %l\\n'])).stdout;
}

async function mountsBelow(root: string) {
  return mountsAtOrBelow(parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8')), root);
}

async function apply(opts: Partial<UpdateOptions> & { root: string }): Promise<AptApplyReport> {
  const c = cloneDefaults();
  c.update.method = 'apt';
  return (await createUpdater(c).apply({ timeout: 600, verbose: false, ...opts })) as AptApplyReport;
}

test('a newer version in the repository is installed in the clone, reported, and the trees read are left alone', async () => {
  await repo.publish(demo('2'));
  const clone = await cloneOf(pristine, 'clone-upgrade');
  const pristineBefore = await listing(pristine);

  const res = await apply({ root: clone, pristineRoot: pristine, liveRoot: pristine });
  assert.equal(res.changed, true);
  assert.deepEqual(res.packages, [{ name: 'sysprime-demo', from: '1', to: '2' }]);
  assert.match(res.summary, /1 upgraded/);
  assert.equal(pkg(clone, 'sysprime-demo')?.version, '2');
  assert.match(readFileSync(join(clone, 'usr/bin/sysprime-demo'), 'utf8'), /version 2/);
  assert.match(readFileSync(join(clone, 'etc/sysprime-demo.conf'), 'utf8'), /hello 2/);
  assert.deepEqual(readdirSync(join(clone, 'var/cache/apt/archives')).filter((n) => n.endsWith('.deb')), []);

  assert.equal(pkg(pristine, 'sysprime-demo')?.version, '1');
  assert.equal(await listing(pristine), pristineBefore);
  assert.deepEqual(await mountsBelow(clone), []);
  assert.equal(existsSync(join(clone, 'usr/sbin/policy-rc.d')), false);

  const again = await apply({ root: clone, pristineRoot: pristine, liveRoot: pristine });
  assert.equal(again.changed, false);
  assert.deepEqual(again.packages, []);
  assert.match(again.summary, /nothing to update/);
});

test('a package the admin installed on the live system is installed in the clone by the selection replay', async () => {
  const live = await cloneOf(pristine, 'live-extra');
  await inTree(live, [['apt-get', 'install', '-y', 'sysprime-extra']]);
  const liveBefore = await listing(live);
  const clone = await cloneOf(pristine, 'clone-extra');

  const res = await apply({ root: clone, pristineRoot: pristine, liveRoot: live });
  assert.equal(res.changed, true);
  assert.deepEqual(res.selection.install, ['sysprime-extra']);
  assert.deepEqual(res.packages, [
    { name: 'sysprime-demo', from: '1', to: '2' },
    { name: 'sysprime-extra', from: null, to: '1' },
  ]);
  assert.equal(pkg(clone, 'sysprime-extra')?.state, 'installed');
  // Chosen by hand, as on the live system: not marked as an automatic dependency.
  assert.doesNotMatch(readFileSync(join(clone, 'var/lib/apt/extended_states'), 'utf8'), /Package: sysprime-extra\n(?:.+\n)*Auto-Installed: 1/);
  assert.equal(await listing(live), liveBefore);
  assert.deepEqual(await mountsBelow(clone), []);
});

test('a package the admin held stays held, and at its version, in the clone', async () => {
  const live = await cloneOf(pristine, 'live-hold');
  await inTree(live, [['apt-mark', 'hold', 'sysprime-demo']]);
  const clone = await cloneOf(pristine, 'clone-hold');

  const res = await apply({ root: clone, pristineRoot: pristine, liveRoot: live });
  assert.equal(res.changed, true);
  assert.deepEqual(res.selection.hold, ['sysprime-demo']);
  assert.deepEqual(res.packages, []);
  assert.match(res.summary, /held sysprime-demo/);
  assert.deepEqual(pkg(clone, 'sysprime-demo'), { name: 'sysprime-demo', architecture: 'all', version: '1', want: 'hold', flag: 'ok', state: 'installed' });

  const again = await apply({ root: clone, pristineRoot: pristine, liveRoot: live });
  assert.equal(again.changed, false);
});

test('a package the admin purged is purged in the clone', async () => {
  const live = await cloneOf(pristine, 'live-purge');
  await inTree(live, [['apt-get', 'purge', '-y', 'sysprime-demo']]);
  const clone = await cloneOf(pristine, 'clone-purge');

  const res = await apply({ root: clone, pristineRoot: pristine, liveRoot: live });
  assert.deepEqual(res.selection.purge, ['sysprime-demo']);
  assert.deepEqual(res.packages, [{ name: 'sysprime-demo', from: '1', to: null }]);
  assert.equal(pkg(clone, 'sysprime-demo'), undefined);
  assert.equal(existsSync(join(clone, 'etc/sysprime-demo.conf')), false);
});

test('a package the admin installed that no repository offers any more is reported, and the staging goes on', async () => {
  const live = await cloneOf(pristine, 'live-gone');
  const deb = await buildDeb({ name: 'sysprime-gone', version: '1', script: '#!/bin/sh\necho gone\n' }, live);
  await inTree(live, [['dpkg', '-i', `/${deb.slice(live.length + 1)}`]]);
  assert.equal(pkg(live, 'sysprime-gone')?.state, 'installed');
  const clone = await cloneOf(pristine, 'clone-gone');

  const res = await apply({ root: clone, pristineRoot: pristine, liveRoot: live });
  assert.deepEqual(res.unavailable, ['sysprime-gone']);
  assert.deepEqual(res.selection.install, []);
  assert.equal(res.changed, true);
  assert.deepEqual(res.packages, [{ name: 'sysprime-demo', from: '1', to: '2' }]);
  assert.match(res.summary, /no longer available: sysprime-gone/);
  assert.equal(pkg(clone, 'sysprime-gone'), undefined);
});

test('apt failing (a postinst that exits 1) is a clear error with apt\'s output, and the chroot is torn down', async () => {
  await repo.publish(demo('3', { postinst: '#!/bin/sh\necho "sysprime-demo: cannot configure version 3" >&2\nexit 1\n' }));
  try {
    const clone = await cloneOf(pristine, 'clone-broken');
    await assert.rejects(apply({ root: clone, pristineRoot: pristine, liveRoot: pristine }), (err: unknown) => {
      assert.ok(isSysprimeError(err, 'COMMAND_FAILED'), String(err));
      assert.match(err.message, /apt-get dist-upgrade failed in the new environment \(exit status 100\): .*packages that failed: sysprime-demo$/);
      assert.match(err.detail ?? '', /sysprime-demo: cannot configure version 3/);
      assert.match(err.detail ?? '', /post-installation script subprocess returned error exit status 1/);
      assert.match(err.hint ?? '', /running system was not changed/);
      return true;
    });
    assert.deepEqual(await mountsBelow(clone), []);
    assert.equal(existsSync(join(clone, 'usr/sbin/policy-rc.d')), false);
    assert.equal(pkg(pristine, 'sysprime-demo')?.version, '1');
  } finally {
    await repo.withdraw('sysprime-demo', '3');
  }
});

test('a repository that cannot be read fails the update instead of looking like "nothing to update"', async () => {
  const clone = await cloneOf(pristine, 'clone-unreadable');
  writeFileSync(join(clone, 'etc/apt/sources.list.d/missing.list'), 'deb [trusted=yes] file:/var/cache/sysprime-no-such-repo ./\n');
  await assert.rejects(apply({ root: clone, pristineRoot: pristine, liveRoot: pristine }), (err: unknown) => {
    assert.ok(isSysprimeError(err, 'COMMAND_FAILED'), String(err));
    assert.match(err.message, /apt-get update failed in the new environment/);
    assert.match(err.detail ?? '', /sysprime-no-such-repo/);
    return true;
  });
  assert.deepEqual(await mountsBelow(clone), []);
});

test('apt running past update.timeout is stopped, and nothing of it is left running in the tree', async () => {
  await repo.publish(demo('3', { postinst: '#!/bin/sh\nsleep 600\n' }));
  try {
    const clone = await cloneOf(pristine, 'clone-slow');
    await assert.rejects(apply({ root: clone, pristineRoot: pristine, liveRoot: pristine, timeout: 20 }), (err: unknown) => isSysprimeError(err, 'TIMEOUT'));
    assert.deepEqual(await mountsBelow(clone), []);
    assert.deepEqual(await processesRootedIn(clone), []);
    assert.equal(existsSync(join(clone, 'usr/sbin/policy-rc.d')), false);
  } finally {
    await repo.withdraw('sysprime-demo', '3');
  }
});

/** Pids whose root directory is the tree (what a chroot left running). */
async function processesRootedIn(tree: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const root = await readlink(join('/proc', name, 'root')).catch(() => '');
    if (root === tree || root.startsWith(`${tree}/`)) pids.push(Number(name));
  }
  return pids;
}
