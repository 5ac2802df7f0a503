/**
 * The Btrfs layouts installers make, adopted with the real CLI: Debian 12
 * (`@rootfs`, with /boot inside the root or on its own ext4), Ubuntu
 * (`@`, `@home`) and Fedora (`root`, `home`). init, stage, create, activate,
 * destroy and prune; the new environments' fstab; shared /home; refusals
 * that change nothing.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sysprime } from '../../fixtures/cli.js';
import { bootInsideRoot, installerFstab, makeBtrfsLayout, readText, subvolumePaths, type BtrfsLayout, type BtrfsLayoutKind } from '../../fixtures/btrfs-layouts.js';
import { makeBtrfsPool } from '../../fixtures/btrfs-pool.js';
import { writeOsTree } from '../../fixtures/os-tree.js';
import { createBtrfsBackend } from '../../../src/backends/btrfs/index.js';
import { isSysprimeError } from '../../../src/errors.js';
import { parseFstab } from '../../../src/os/mounts.js';
import { run } from '../../../src/process/run.js';

interface EnvJson {
  name: string;
  generation: number;
  default: boolean;
}

/** An update script: bumps a version file in the tree it is given. */
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

/** The installer's fstab with only the subvolume option of `/` gone. */
function withoutRootSubvol(fstab: string, option: string): string {
  const lines = fstab.split('\n');
  const i = lines.findIndex((l) => /^\S+\s+\/\s+btrfs\s/.test(l));
  assert.ok(i >= 0);
  const replaced = lines[i]!.includes(`,${option}`) ? lines[i]!.replace(`,${option}`, '') : lines[i]!.replace(`${option},`, '');
  assert.notEqual(replaced, lines[i], `the / line holds ${option}`);
  lines[i] = replaced;
  return lines.join('\n');
}

const ROOT_OPTION: Record<BtrfsLayoutKind, string> = {
  debian: 'subvol=@rootfs',
  'debian-boot': 'subvol=@rootfs',
  ubuntu: 'subvol=@',
  fedora: 'subvol=root',
};

for (const kind of ['debian', 'debian-boot', 'ubuntu', 'fedora'] as const) {
  describe(`the ${kind} installer's Btrfs layout`, () => {
    let l: BtrfsLayout;
    const sp = (...args: string[]) => sysprime(args, { config: l.config });
    const list = async () => (await sp('--json', 'list')).json<EnvJson[]>();
    const envFstab = (name: string) => readText(join(l.pool.top, 'ROOT', name, 'etc/fstab'));
    let expected: string;

    before(async () => {
      l = await makeBtrfsLayout(kind);
      writeFileSync(l.config, `${readText(l.config)}[update]\nmethod = "command"\ncommand = "${updateScript(l.pool.dir)}"\nchroot = false\n[retention]\nkeep = 2\n`);
      expected = withoutRootSubvol(l.fstab, ROOT_OPTION[kind]);
      // Another tool's snapshots beside the root (Timeshift, snapper-style @snapshots).
      await run('btrfs', ['-q', 'subvolume', 'create', join(l.pool.top, '@snapshots')]);
      await run('btrfs', ['-q', 'subvolume', 'snapshot', '-r', join(l.pool.top, l.root), join(l.pool.top, '@snapshots/1')]);
    });
    after(async () => {
      await l?.cleanup();
    });

    test('what cannot be adopted is refused in one line, and nothing changes', async () => {
      const subvols = await subvolumePaths(l.pool.top);
      const topEntries = readdirSync(l.pool.top).sort();
      for (const [source, code, message] of [
        [`${l.root}/etc`, 5, /is a plain directory, not a subvolume/],
        ['nosuch', 4, /no subvolume nosuch/],
        ['../x', 2, /not a subvolume path/],
      ] as const) {
        const r = await sp('init', '--adopt', source, '--name', 'x');
        assert.equal(r.code, code, `${source}: ${r.stderr}`);
        assert.match(r.stderr, message);
        assert.equal(r.stderr.trim().split('\n').filter((x) => !/^\s*hint:/.test(x)).length, 1, r.stderr);
      }
      assert.deepEqual(await subvolumePaths(l.pool.top), subvols);
      assert.deepEqual(readdirSync(l.pool.top).sort(), topEntries, 'not even ROOT/ was made');
      assert.equal(readText(join(l.sysroot, 'etc/fstab')), l.fstab);
    });

    test(`init adopts ${kindRoot(kind)} in use as a snapshot; its fstab stays, the environment's / line drops the subvolume`, async () => {
      const r = await sp('init', '--adopt', kindRoot(kind), '--name', 'main');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readText(join(l.sysroot, 'etc/fstab')), l.fstab, 'the running root is untouched');
      assert.equal(envFstab('main'), expected);
      if (bootInsideRoot(kind)) assert.ok(existsSync(join(l.pool.top, 'ROOT/main/boot/vmlinuz-6.1.0-28-amd64')), '/boot is inside the environment');
      else assert.deepEqual(readdirSync(join(l.pool.top, 'ROOT/main/boot')), [], 'the mount point of the separate /boot');
      assert.equal(parseFstab(envFstab('main')).find((e) => e.mountPoint === '/boot')?.fsType, bootInsideRoot(kind) ? undefined : 'ext4');
      const paths = await subvolumePaths(l.pool.top);
      assert.ok(paths.includes(l.root), 'the installer subvolume stays until the admin deletes it');
      if (l.home !== null) assert.ok(paths.includes(l.home));
      assert.deepEqual((await list()).map((e) => [e.name, e.generation, e.default]), [['main', 0, true]]);
      assert.match(r.stdout + r.stderr, /not sysprime's, left as they are and never destroyed: .*@snapshots/);
      // A manifest of the running root stays on its own subvolume: other tools' snapshots are not walked.
      const m = await sysprime(['bart', 'create', '-R', l.sysroot]);
      assert.equal(m.code, 0, m.stderr);
      assert.ok(!m.stdout.split('\n').some((line) => line.startsWith('/home/')), 'a mounted /home is listed, not entered');
    });

    test('stage: the new environment carries the update and the same fstab, which differs from the running one only in the subvolume option', async () => {
      if (l.home !== null) writeFileSync(join(l.sysroot, 'home/alice/notes.txt'), 'written after init\n');
      const r = await sp('--json', 'stage');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readText(join(l.pool.top, 'ROOT/gen-1/usr/share/doc/demo/VERSION')), '2\n');
      assert.equal(envFstab('gen-1'), expected);
      assert.equal(readText(join(l.sysroot, 'etc/fstab')), l.fstab);
      assert.equal(envFstab('gen-1'), withoutRootSubvol(readText(join(l.sysroot, 'etc/fstab')), ROOT_OPTION[kind]));
      const root = parseFstab(envFstab('gen-1')).find((e) => e.mountPoint === '/');
      assert.ok(root && !root.options.some((o) => o.startsWith('subvol')));
    });

    if (kind === 'ubuntu' || kind === 'fedora') {
      test('/home is shared: not in any environment, mounted by the same fstab line, the file written after init is there', async () => {
        assert.deepEqual(readdirSync(join(l.pool.top, 'ROOT/gen-1/home')), [], 'the environment holds no copy of /home');
        const line = parseFstab(envFstab('gen-1')).find((e) => e.mountPoint === '/home');
        assert.ok(line, 'the staged fstab mounts /home');
        const homeOpt = line.options.find((o) => o.startsWith('subvol='));
        assert.equal(homeOpt, `subvol=${l.home}`);
        // Mount it as the booted environment would, from its own fstab line.
        const mnt = join(l.pool.dir, 'gen-1-home');
        mkdirSync(mnt);
        await run('mount', ['-t', 'btrfs', '-o', line.options.join(','), l.pool.device, mnt]);
        try {
          assert.equal(readText(join(mnt, 'alice/notes.txt')), 'written after init\n');
        } finally {
          await run('umount', [mnt]);
        }
      });
    }

    test('create, activate, destroy and prune; the installer subvolumes are never touched', async () => {
      assert.equal((await sp('create', 'copy')).code, 0);
      assert.equal(envFstab('copy'), expected);
      const a = await sp('activate', 'gen-1');
      assert.equal(a.code, 0, a.stderr);
      assert.equal((await sp('destroy', 'copy')).code, 0);
      assert.equal((await sp('--json', 'stage')).code, 0);
      assert.equal(envFstab('gen-2'), expected);
      const p = await sp('prune', '--keep', '1');
      assert.equal(p.code, 0, p.stderr);
      const names = (await list()).map((e) => e.name);
      assert.ok(names.includes('gen-1'), 'the default stays');
      assert.ok(!names.includes('main'), `prune took the old one: ${names.join(', ')}`);
      const paths = await subvolumePaths(l.pool.top);
      assert.ok(paths.includes(l.root), `${l.root} is not sysprime's: prune leaves it`);
      assert.ok(paths.includes('@snapshots') && paths.includes('@snapshots/1'), "another tool's snapshots stay");
      if (l.home !== null) {
        assert.ok(paths.includes(l.home));
        assert.equal(readText(join(l.pool.top, l.home, 'alice/notes.txt')), 'written after init\n');
      }
      assert.equal(readText(join(l.sysroot, 'etc/fstab')), l.fstab);
    });
  });
}

function kindRoot(kind: BtrfsLayoutKind): string {
  return { debian: '@rootfs', 'debian-boot': '@rootfs', ubuntu: '@', fedora: 'root' }[kind];
}

test('an unmounted @rootfs is moved and its fstab loses subvol= too; a symlinked fstab is refused and the subvolume moved back', async () => {
  const pool = await makeBtrfsPool();
  try {
    const backend = createBtrfsBackend({ top: pool.top });
    await backend.ensureLayout();
    await run('btrfs', ['-q', 'subvolume', 'create', join(pool.top, '@rootfs')]);
    writeOsTree(join(pool.top, '@rootfs'));
    const fstab = installerFstab('debian', '2f6b0a3c-53a5-4b8e-9a51-5c0f7c1c2d11');
    writeFileSync(join(pool.top, '@rootfs/etc/fstab'), fstab);
    await backend.adopt('@rootfs', 'debian', 0);
    assert.ok(!(await subvolumePaths(pool.top)).includes('@rootfs'), 'moved, not copied');
    assert.equal(readText(join(pool.top, 'ROOT/debian/etc/fstab')), withoutRootSubvol(fstab, 'subvol=@rootfs'));

    await run('btrfs', ['-q', 'subvolume', 'create', join(pool.top, '@linked')]);
    writeOsTree(join(pool.top, '@linked'));
    writeFileSync(join(pool.top, '@linked/etc/fstab.real'), fstab);
    symlinkSync('fstab.real', join(pool.top, '@linked/etc/fstab'));
    const before = await subvolumePaths(pool.top);
    await assert.rejects(backend.adopt('@linked', 'linked', 0), (e) => isSysprimeError(e, 'REFUSED') && /not a regular file/.test(e.message));
    assert.deepEqual(await subvolumePaths(pool.top), before, '@linked is back where it was');
    assert.ok(!existsSync(join(pool.top, 'ROOT/.sysprime/envs/linked.json')));
    assert.equal(readText(join(pool.top, '@linked/etc/fstab.real')), fstab);
    await assert.rejects(backend.adopt('@linked/etc', 'x', 0), (e) => isSysprimeError(e, 'REFUSED') && /plain directory/.test(e.message));
  } finally {
    await pool.cleanup();
  }
});

describe('nested subvolumes under the root: /usr/local, /var/lib/docker, snapper .snapshots', () => {
  let l: BtrfsLayout;
  const sp = (...args: string[]) => sysprime(args, { config: l.config });
  const isSubvolume = async (rel: string) => (await subvolumePaths(l.pool.top)).includes(rel);

  before(async () => {
    l = await makeBtrfsLayout('debian');
    const config = readText(l.config).replace('[btrfs]\n', '[btrfs]\nshared_subvolumes = ["/srv/data"]\n');
    writeFileSync(l.config, `${config}[update]\nmethod = "command"\ncommand = "${updateScript(l.pool.dir)}"\nchroot = false\n`);
    const root = join(l.pool.top, '@rootfs');
    // One the admin declared shared in the configuration.
    await run('btrfs', ['-q', 'subvolume', 'create', join(root, 'srv/data')]);
    writeFileSync(join(root, 'srv/data/db'), 'rows\n');
    await run('rmdir', [join(root, 'usr/local')]);
    await run('btrfs', ['-q', 'subvolume', 'create', join(root, 'usr/local')]);
    mkdirSync(join(root, 'usr/local/bin'));
    writeFileSync(join(root, 'usr/local/bin/site-tool'), '#!/bin/sh\necho site\n');
    await run('btrfs', ['-q', 'subvolume', 'create', join(root, 'var/lib/docker')]);
    writeFileSync(join(root, 'var/lib/docker/image.json'), '{"image":1}\n');
    // snapper's layout: .snapshots/<N>/snapshot, read-only snapshots of the root, with info.xml beside.
    await run('btrfs', ['-q', 'subvolume', 'create', join(root, '.snapshots')]);
    mkdirSync(join(root, '.snapshots/1'));
    writeFileSync(join(root, '.snapshots/1/info.xml'), '<snapshot><num>1</num></snapshot>\n');
    await run('btrfs', ['-q', 'subvolume', 'snapshot', '-r', root, join(root, '.snapshots/1/snapshot')]);
  });
  after(async () => {
    await l?.cleanup();
  });

  test('init: /usr/local is snapshotted into the environment, /var/lib/docker stays shared with the fstab line to mount it, .snapshots is left alone', async () => {
    const r = await sp('init', '--adopt', '@rootfs', '--name', 'main');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(await isSubvolume('ROOT/main/usr/local'));
    assert.equal(readText(join(l.pool.top, 'ROOT/main/usr/local/bin/site-tool')), '#!/bin/sh\necho site\n');
    assert.deepEqual(readdirSync(join(l.pool.top, 'ROOT/main/var/lib/docker')), []);
    assert.ok(!(await isSubvolume('ROOT/main/var/lib/docker')));
    assert.match(r.stderr, new RegExp(`/var/lib/docker btrfs subvol=/@rootfs/var/lib/docker 0 0`));
    assert.deepEqual(readdirSync(join(l.pool.top, 'ROOT/main/srv/data')), [], 'configured as shared: not copied');
    assert.match(r.stderr, new RegExp(`/srv/data btrfs subvol=/@rootfs/srv/data 0 0`));
    assert.deepEqual(readdirSync(join(l.pool.top, 'ROOT/main/.snapshots')), [], 'no snapper snapshot is copied');
    assert.ok(await isSubvolume('@rootfs/.snapshots/1/snapshot'), "snapper's snapshots stay");
    const m = await sysprime(['bart', 'create', '-R', l.sysroot]);
    assert.equal(m.code, 0, m.stderr);
    assert.ok(m.stdout.split('\n').some((line) => line.startsWith('/usr/bin/demo ')), 'the manifest lists the root');
    assert.ok(m.stdout.split('\n').some((line) => line.startsWith('/.snapshots ')), '.snapshots itself is listed');
    assert.ok(!m.stdout.split('\n').some((line) => line.startsWith('/.snapshots/')), "manifests never walk into snapper's snapshots");
    assert.ok(await isSubvolume('@rootfs/var/lib/docker'));
    assert.equal(readText(join(l.pool.top, '@rootfs/var/lib/docker/image.json')), '{"image":1}\n');
  });

  test('stage: the new environment has its own /usr/local with what was written there after init; destroy takes it along', async () => {
    writeFileSync(join(l.pool.top, 'ROOT/main/usr/local/bin/after-init'), 'admin\n');
    const r = await sp('--json', 'stage');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(await isSubvolume('ROOT/gen-1/usr/local'));
    assert.equal(readText(join(l.pool.top, 'ROOT/gen-1/usr/local/bin/after-init')), 'admin\n');
    assert.equal(readText(join(l.pool.top, 'ROOT/gen-1/usr/local/bin/site-tool')), '#!/bin/sh\necho site\n');
    assert.equal((await sp('create', 'copy', '--from', 'gen-1')).code, 0);
    assert.ok(await isSubvolume('ROOT/copy/usr/local'));
    assert.equal((await sp('destroy', 'copy')).code, 0);
    assert.equal((await sp('destroy', 'gen-1')).code, 0);
    const paths = await subvolumePaths(l.pool.top);
    assert.ok(!paths.some((p) => p.startsWith('ROOT/gen-1') || p.startsWith('ROOT/copy')), paths.join(', '));
    assert.equal(readText(join(l.pool.top, 'ROOT/main/usr/local/bin/after-init')), 'admin\n');
  });
});

test('an environment holding shared data or snapper snapshots in nested subvolumes is not destroyed; nothing is deleted', async () => {
  const pool = await makeBtrfsPool();
  try {
    const backend = createBtrfsBackend({ top: pool.top });
    await backend.ensureLayout();
    const root = join(pool.top, '@');
    await run('btrfs', ['-q', 'subvolume', 'create', root]);
    writeOsTree(root);
    await run('btrfs', ['-q', 'subvolume', 'create', join(root, 'var/lib/docker')]);
    writeFileSync(join(root, 'var/lib/docker/image.json'), '{}\n');
    await run('btrfs', ['-q', 'subvolume', 'create', join(root, '.snapshots')]);
    mkdirSync(join(root, '.snapshots/1'));
    await run('btrfs', ['-q', 'subvolume', 'snapshot', '-r', root, join(root, '.snapshots/1/snapshot')]);
    // Nothing mounts @: it is moved, with its nested subvolumes.
    await backend.adopt('@', 'old', 0);
    await backend.createEmpty('other', 0);
    const before = await subvolumePaths(pool.top);
    await assert.rejects(backend.destroyEnvironment('old'), (e) => isSysprimeError(e, 'REFUSED') && /\/var\/lib\/docker, \/\.snapshots$/.test(e.message));
    await run('rm', [join(pool.top, 'ROOT/old/var/lib/docker/image.json')]);
    await assert.rejects(backend.destroyEnvironment('old'), (e) => isSysprimeError(e, 'REFUSED') && /: \/\.snapshots$/.test(e.message) && /snapper/.test(e.hint ?? ''));
    assert.deepEqual(await subvolumePaths(pool.top), before, 'nothing was deleted');
    assert.ok(existsSync(join(pool.top, 'ROOT/old/etc/hostname')));
  } finally {
    await pool.cleanup();
  }
});
