/**
 * The apt hook with real apt: a Debian 12 tree (test/fixtures/debian-tree.ts)
 * adopted as the environment "base" of a real Btrfs filesystem and a real
 * zfs-fuse pool, mounted with `sysprime mount`, and `apt-get install` of
 * small local packages run chrooted in it. The tree holds the shipped apt
 * configuration (share/apt/80sysprime) as the package installs it, and at
 * /usr/bin/sysprime, where the package puts its launcher, one that runs this
 * checkout's sysprime against the scratch pool: it leaves the chroot through
 * /proc/<this test's pid>/root, so sysprime runs outside the tree while apt
 * runs inside, with apt's process still its grandparent.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { BIN, environmentMounter, sysprime, type EnvJson } from '../../fixtures/cli.js';
import { debianTreeTarball } from '../../fixtures/debian-tree.js';
import { run } from '../../../src/process/run.js';
import { openState } from '../../../src/state/db.js';
import { acquireLock, lockHolder } from '../../../src/state/lock.js';

const SHIPPED = fileURLToPath(new URL('../../../../share/apt/80sysprime', import.meta.url));
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A Debian tree without what apt and dpkg never read, so that it fits a small pool. */
async function debianInto(root: string): Promise<void> {
  const skip = ['usr/share/doc', 'usr/share/locale', 'usr/share/man', 'usr/share/info', 'usr/share/zoneinfo', 'usr/share/i18n', 'var/cache/apt', 'var/lib/apt/lists'];
  await run('tar', ['--extract', '--numeric-owner', '--preserve-permissions', '--file', await debianTreeTarball(), '--directory', root, ...skip.map((s) => `--exclude=${s}`)], {
    timeout: 10 * 60_000,
  });
  mkdirSync(join(root, 'var/cache/apt/archives/partial'), { recursive: true });
  mkdirSync(join(root, 'var/lib/apt/lists/partial'), { recursive: true });
}

/** The directories sysprime runs from (this checkout, its node_modules, its Node.js), by their real paths, none inside another. */
function hostPathsOfSysprime(): string[] {
  const checkout = realpathSync(fileURLToPath(new URL('../../../../', import.meta.url)));
  const all = [checkout, realpathSync(join(checkout, 'node_modules')), dirname(realpathSync(process.execPath))];
  return [...new Set(all)].filter((p, _, ps) => !ps.some((o) => o !== p && p.startsWith(`${o}/`)));
}

/** A package of one file, built the way vm-tests/packages.ts builds its own. */
async function buildDeb(work: string, name: string, out: string): Promise<void> {
  const tree = join(work, `pkg-${name}`);
  mkdirSync(join(tree, 'DEBIAN'), { recursive: true });
  mkdirSync(join(tree, 'usr/share', name), { recursive: true });
  writeFileSync(join(tree, 'usr/share', name, 'version'), '1\n');
  writeFileSync(
    join(tree, 'DEBIAN/control'),
    [`Package: ${name}`, 'Version: 1', 'Architecture: all', 'Maintainer: sysprime tests <root@localhost>', 'Priority: optional', 'Section: misc', `Description: ${name}, a package for the apt hook's test`, ''].join('\n'),
  );
  chmodSync(join(tree, 'DEBIAN'), 0o755);
  await run('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', tree, out]);
}

for (const kind of KINDS) {
  describe(`the apt hook with real apt on ${kind}`, () => {
    let s: Scratch;
    let dir: string;
    /** Where "base" is mounted, and apt runs chrooted. */
    let tree: string;
    let mountsInTree: string[] = [];
    const sp = (...args: string[]) => sysprime(args, { config: s.config });
    const ok = async (...args: string[]) => {
      const r = await sp(...args);
      assert.equal(r.code, 0, `sysprime ${args.join(' ')}: ${r.stderr}`);
      return r;
    };
    const list = async () => (await ok('--json', 'list')).json<EnvJson[]>();
    const names = async () => (await list()).map((e) => e.name);
    const mounted = environmentMounter(sp, () => join(dir, 'look'));
    const launcher = (config: string, path: string) =>
      `#!/bin/sh\n# This checkout's sysprime, run outside the chroot against the scratch pool.\nexec /usr/sbin/chroot /proc/${process.pid}/root /usr/bin/env PATH=${path} ${process.execPath} ${BIN} --config ${config} "$@"\n`;
    /** The launcher the hook runs, with the scratch configuration or another one, and the tools on `path`. */
    const installLauncher = (config = s.config, path = PATH) => {
      writeFileSync(join(tree, 'usr/bin/sysprime'), launcher(config, path));
      chmodSync(join(tree, 'usr/bin/sysprime'), 0o755);
    };
    /** apt-get as an admin runs it on that system: chrooted, its own environment only. */
    const aptGet = (args: string[], env: Record<string, string> = {}) =>
      run('chroot', [tree, '/usr/bin/env', '-i', `PATH=${PATH}`, 'DEBIAN_FRONTEND=noninteractive', 'LC_ALL=C.UTF-8', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), 'apt-get', ...args], {
        allowFailure: true,
        timeout: 5 * 60_000,
      });
    const installed = (name: string) => readFileSync(join(tree, 'var/lib/dpkg/status'), 'utf8').includes(`Package: ${name}\n`);
    /** Runs apt-get, which must succeed, and returns it with the environments it added. */
    const aptMaking = async (args: string[], env: Record<string, string> = {}) => {
      const before = new Set(await names());
      const r = await aptGet(args, env);
      assert.equal(r.exitCode, 0, `apt-get ${args.join(' ')}: ${r.stdout}\n${r.stderr}`);
      return { r, added: (await list()).filter((e) => !before.has(e.name)) };
    };

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sysprime-apthook-'));
      s = await makeScratch(kind, '[retention]\nkeep_auto = 2\n[apt_hook]\ntimeout = 120\n', { fill: debianInto, sizeMiB: 768 });
      await ok('init', '--adopt', s.adopt, '--name', 'base');
      tree = join(dir, 'tree');
      mkdirSync(tree);
      mkdirSync(join(dir, 'look'));
      await ok('mount', 'base', tree);
      await run('mount', ['-t', 'proc', 'proc', join(tree, 'proc')]);
      mountsInTree.push(join(tree, 'proc'));
      // A /dev of its own, not this machine's bound in: a run killed from outside leaves its mounts, and whoever
      // then deletes the leftover directory must not delete this machine's device nodes with it.
      await run('mount', ['-t', 'tmpfs', '-o', 'mode=755,size=1m,nosuid', 'sysprime-test-dev', join(tree, 'dev')]);
      mountsInTree.push(join(tree, 'dev'));
      for (const [node, minor] of [['null', 3], ['zero', 5], ['full', 7], ['random', 8], ['urandom', 9]] as const) {
        await run('mknod', ['-m', '666', join(tree, 'dev', node), 'c', '1', String(minor)]);
      }
      for (const [i, name] of ['stdin', 'stdout', 'stderr'].entries()) symlinkSync(`/proc/self/fd/${i}`, join(tree, 'dev', name));
      symlinkSync('/proc/self/fd', join(tree, 'dev/fd'));
      copyFileSync(SHIPPED, join(tree, 'etc/apt/apt.conf.d/80sysprime'));
      installLauncher();
      for (const p of ['sysprime-hook-a', 'sysprime-hook-b', 'sysprime-hook-c']) await buildDeb(dir, p, join(tree, 'root', `${p}.deb`));
    });
    after(async () => {
      for (const m of mountsInTree.reverse()) await run('umount', [m], { allowFailure: true });
      mountsInTree = [];
      if (s) {
        await sp('umount', 'base');
        await s.cleanup();
      }
      rmSync(dir, { recursive: true, force: true });
    });

    test('apt-get install makes an environment of the system before it, named and described after the command', async () => {
      // A proxy's password on the command line (never used: the package is local) stays out of what anyone may read.
      const { r, added } = await aptMaking(['-o', 'Acquire::http::Proxy=http://apt-user:hunter2@proxy.invalid:3128', 'install', '-y', '/root/sysprime-hook-a.deb']);
      assert.equal(added.length, 1, `one environment made: ${JSON.stringify(added)}\n${r.stdout}\n${r.stderr}`);
      const env = added[0]!;
      assert.match(env.name, /^apt-get-install-\d{8}-\d{6}$/);
      assert.equal(env.description, 'apt-get install /root/sysprime-hook-a.deb');
      assert.equal(env.auto, 'apt');
      assert.equal(env.pinned, false);
      assert.match(r.stdout, new RegExp(`sysprime: environment "${env.name}" holds the system as it was before: apt-get install /root/sysprime-hook-a\\.deb`));
      assert.ok(installed('sysprime-hook-a'), 'apt installed the package in the running system');
      // Made before dpkg ran: the environment does not have it.
      await mounted(env.name, (root) => {
        assert.ok(!readFileSync(join(root, 'var/lib/dpkg/status'), 'utf8').includes('Package: sysprime-hook-a\n'));
        assert.ok(readFileSync(join(root, 'var/lib/dpkg/status'), 'utf8').includes('Package: dpkg\n'));
      });
      const table = (await ok('list')).stdout;
      assert.match(table.split('\n')[0]!, /\bAUTO\s+PINNED\s+DESCRIPTION$/);
      assert.match(table, new RegExp(`^${env.name}\\s.*\\sapt\\s+-\\s+apt-get install /root/sysprime-hook-a\\.deb$`, 'm'));
      assert.doesNotMatch(table, /hunter2|apt-user|Proxy/);
    });

    test('nothing is made when the operation installs nothing', async () => {
      const { r, added } = await aptMaking(['install', '-y', '/root/sysprime-hook-a.deb']);
      assert.match(r.stdout, /already the newest version/);
      assert.deepEqual(added, []);
      // What apt hands the hook when dpkg has nothing to do: its configuration, no package line.
      const before = await names();
      const h = await sysprime(['apt-hook'], { config: s.config, input: 'VERSION 2\nDir=/\nAPT::Architecture=amd64\n\n' });
      assert.equal(h.code, 0, h.stderr);
      assert.equal(h.stdout + h.stderr, '');
      assert.deepEqual(await names(), before);
    });

    test('apt goes on, and nothing is made, when sysprime is busy, fails, is gone, is off, is slow, or is staging in a chroot', async () => {
      // Busy: another sysprime holds the lock (as a staging does).
      const db = openState(s.stateDir);
      const lock = acquireLock(db, 'staging');
      try {
        const { r, added } = await aptMaking(['install', '-y', '/root/sysprime-hook-b.deb']);
        assert.deepEqual(added, []);
        assert.match(r.stderr, new RegExp(`no environment before this package operation: another sysprime \\(pid ${process.pid}\\) is staging`));
        assert.match(r.stderr, /apt goes on without an environment/);
        assert.ok(installed('sysprime-hook-b'));
      } finally {
        lock.release();
        db.close();
      }

      // Failing: the hook's sysprime reads a configuration it refuses.
      const config = readFileSync(s.config, 'utf8');
      const broken = join(dir, 'broken.toml');
      writeFileSync(broken, `${config}no_such_key = 1\n`);
      installLauncher(broken);
      try {
        const { r, added } = await aptMaking(['remove', '-y', 'sysprime-hook-b']);
        assert.deepEqual(added, []);
        assert.match(r.stderr, /sysprime: .*unknown key 'apt_hook\.no_such_key'/);
        assert.ok(!installed('sysprime-hook-b'));
      } finally {
        installLauncher();
      }

      // Gone: the package removed, its configuration kept (a conffile).
      unlinkSync(join(tree, 'usr/bin/sysprime'));
      try {
        const { added } = await aptMaking(['install', '-y', '/root/sysprime-hook-b.deb']);
        assert.deepEqual(added, []);
        assert.ok(installed('sysprime-hook-b'));
      } finally {
        installLauncher();
      }

      // Off.
      writeFileSync(s.config, config.replace('timeout = 120\n', 'timeout = 120\nenabled = false\n'));
      try {
        const { r, added } = await aptMaking(['remove', '-y', 'sysprime-hook-b']);
        assert.deepEqual(added, [], r.stdout + r.stderr);
      } finally {
        writeFileSync(s.config, config);
      }

      // Slow: the filesystem's tool hangs (a pool stalled on a dying disk); after [apt_hook] timeout seconds apt goes on.
      const slow = join(dir, 'slow-tools');
      mkdirSync(slow, { recursive: true });
      const tool = kind === 'btrfs' ? 'btrfs' : 'zfs';
      const real = (await run('sh', ['-c', `command -v ${tool}`], { env: { PATH } })).stdout.trim();
      writeFileSync(join(slow, tool), `#!/bin/sh\nsleep 60\nexec ${real} "$@"\n`);
      chmodSync(join(slow, tool), 0o755);
      const hurried = join(dir, 'hurried.toml');
      writeFileSync(hurried, config.replace('timeout = 120\n', 'timeout = 2\n'));
      installLauncher(hurried, `${slow}:${PATH}`);
      try {
        const started = Date.now();
        const { r, added } = await aptMaking(['install', '-y', '/root/sysprime-hook-b.deb']);
        assert.ok(Date.now() - started < 30_000, `apt took ${Date.now() - started} ms`);
        assert.match(r.stderr, /sysprime: the environment before this package operation takes longer than 2 s \(\[apt_hook\] timeout\)/);
        assert.deepEqual(added, []);
        assert.ok(installed('sysprime-hook-b'));
      } finally {
        installLauncher();
      }
      // What it had started was stopped with it: nothing appears later.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.ok(!(await list()).some((e) => e.auto !== null && e.description?.includes('sysprime-hook-b.deb') === true));

      // Inside a chroot sysprime entered (staging's apt in a clone): the hook stands aside.
      const { r, added } = await aptMaking(['remove', '-y', 'sysprime-hook-b'], { SYSPRIME_CHROOT: '1' });
      assert.deepEqual(added, [], r.stdout + r.stderr);
      assert.ok(!installed('sysprime-hook-b'));

      // Inside a chroot with the variable gone (env -i, sudo -i, su -) or never set (an installer's): sysprime runs
      // in the tree itself, the checkout and its runtime bound there at their own paths, and its root is not init's.
      const bound: string[] = [];
      try {
        for (const host of hostPathsOfSysprime()) {
          mkdirSync(join(tree, host), { recursive: true });
          await run('mount', ['--bind', host, join(tree, host)]);
          bound.push(join(tree, host));
        }
        writeFileSync(join(tree, 'usr/bin/sysprime'), `#!/bin/sh\nexec /usr/bin/env PATH=${PATH} ${process.execPath} ${BIN} --config ${s.config} "$@"\n`);
        const inside = await aptMaking(['install', '-y', '/root/sysprime-hook-b.deb']);
        assert.deepEqual(inside.added, [], inside.r.stdout + inside.r.stderr);
        assert.match(inside.r.stderr, /sysprime: inside a chroot \(its root is not the running system's\): no environment before this package operation/);
        assert.ok(installed('sysprime-hook-b'));
      } finally {
        for (const m of bound.reverse()) await run('umount', [m], { allowFailure: true });
        installLauncher();
      }
    });

    test('[retention] keep_auto: prune keeps that many of the hook\'s environments, apart from keep', async () => {
      await aptMaking(['remove', '-y', 'sysprime-hook-a']);
      await aptMaking(['install', '-y', '/root/sysprime-hook-c.deb']);
      const autos = (await list()).filter((e) => e.auto === 'apt');
      assert.equal(autos.length, 3, JSON.stringify(autos));
      assert.ok(autos.some((e) => e.description === 'apt-get remove sysprime-hook-a'));
      const oldest = autos.sort((a, b) => a.created.localeCompare(b.created) || a.name.localeCompare(b.name))[0]!;
      assert.match(oldest.description ?? '', /sysprime-hook-a\.deb$/);

      const dry = (await ok('--json', 'prune', '--dry-run')).json<{ plan: { keep: { name: string; reasons: string[] }[]; destroy: { name: string; why: string }[] } }>();
      assert.deepEqual(dry.plan.destroy.map((d) => d.name), [oldest.name]);
      assert.match(dry.plan.destroy[0]!.why, /keep_auto/);
      assert.equal(dry.plan.keep.filter((k) => k.reasons.includes('newest-auto')).length, 2);
      const pruned = (await ok('--json', 'prune')).json<{ destroyed: string[] }>();
      assert.deepEqual(pruned.destroyed, [oldest.name]);
      const after = await list();
      assert.equal(after.filter((e) => e.auto === 'apt').length, 2);
      assert.ok(after.some((e) => e.name === 'base'));
    });

    test('a hook killed in its copy leaves nothing the next one does not undo; one killed after it, a whole marked environment; one past its time, a copy it finishes', async () => {
      /** What a clone cut short leaves: a temporary clone and its copy snapshot (ZFS), a `.partial-` subvolume (Btrfs). */
      const debris = async (): Promise<string[]> => {
        if (kind === 'btrfs') return readdirSync(join(s.where, 'ROOT')).filter((n) => n.startsWith('.partial-'));
        const all = (await run('zfs', ['list', '-H', '-r', '-t', 'all', '-o', 'name', `${s.where}/ROOT`])).stdout.split('\n');
        return all.filter((n) => n.includes('/ROOT/.sysprime-tmp-') || n.includes('@sysprime-copy-'));
      };
      const before = new Set(await debris());

      // Killed before the clone takes its name: apt goes on, nothing is listed, what it left is there.
      const killed = await aptMaking(['install', '-y', '/root/sysprime-hook-a.deb'], { SYSPRIME_FAULT_INJECT: `kill:backend:${kind}:clone-before-rename` });
      assert.deepEqual(killed.added, [], killed.r.stderr);
      assert.match(killed.r.stderr, /apt goes on without an environment/);
      assert.ok(installed('sysprime-hook-a'));
      const left = (await debris()).filter((d) => !before.has(d));
      assert.ok(left.length > 0, 'the killed clone left its temporary parts');

      // Killed after the clone, before the boot entries: the environment is whole, its mark and description with it;
      // and this create undid what the killed one left.
      const cut = await aptMaking(['remove', '-y', 'sysprime-hook-a'], { SYSPRIME_FAULT_INJECT: 'kill:create:cloned' });
      assert.equal(cut.added.length, 1, JSON.stringify(cut.added));
      assert.equal(cut.added[0]!.auto, 'apt');
      assert.equal(cut.added[0]!.description, 'apt-get remove sysprime-hook-a');
      assert.deepEqual((await debris()).filter((d) => left.includes(d)), []);
      assert.ok(!installed('sysprime-hook-a'));

      // Past its time in the middle of the copy (stopped there): apt goes on at the timeout, the copy is not killed
      // halfway but finished in the background once it runs again.
      const config = readFileSync(s.config, 'utf8');
      const hurried = join(dir, 'hurried-copy.toml');
      writeFileSync(hurried, config.replace('timeout = 120\n', 'timeout = 30\n'));
      installLauncher(hurried);
      const db = openState(s.stateDir);
      try {
        const started = Date.now();
        const late = await aptMaking(['install', '-y', '/root/sysprime-hook-a.deb'], { SYSPRIME_FAULT_INJECT: `stop:backend:${kind}:clone-before-rename` });
        assert.ok(Date.now() - started < 90_000, `apt took ${Date.now() - started} ms`);
        assert.match(late.r.stderr, /takes longer than 30 s \(\[apt_hook\] timeout\)/);
        assert.deepEqual(late.added, []);
        assert.ok(installed('sysprime-hook-a'));
        const worker = lockHolder(db);
        assert.ok(worker !== null, 'the worker, stopped in its copy, still holds the lock');
        process.kill(worker.pid, 'SIGCONT');
        for (let waited = 0; lockHolder(db) !== null && waited < 120_000; waited += 500) await new Promise((r) => setTimeout(r, 500));
        assert.equal(lockHolder(db), null, 'the worker finished');
        const finished = (await list()).filter((e) => e.description === 'apt-get install /root/sysprime-hook-a.deb' && e.auto === 'apt');
        assert.equal(finished.length, 1, JSON.stringify(await list()));
        assert.deepEqual((await debris()).filter((d) => !before.has(d) && d.includes('.sysprime-tmp-')), []);
      } finally {
        db.close();
        installLauncher();
      }
    });
  });
}
