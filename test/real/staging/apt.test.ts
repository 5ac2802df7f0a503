/**
 * Staging with apt on real pools: a minimal Debian (cached mmdebstrap tree)
 * adopted as generation 0 with sysprime-demo 1 installed from a local
 * mirror (a repository served on 127.0.0.1); version 2 is published and
 * `sysprime stage` upgrades it inside the new environment only, carrying
 * the admin's edit of the package's conffile over by a 3-way merge.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, normalize } from 'node:path';
import { run } from '../../../src/process/run.js';
import { withChroot } from '../../../src/updaters/chroot.js';
import { parseDpkgStatus } from '../../../src/updaters/apt/dpkg-status.js';
import { makeBtrfsPool, type BtrfsPool } from '../../fixtures/btrfs-pool.js';
import { makeZfsPool, type ZfsPool } from '../../fixtures/zfs-pool.js';
import { makeDebianTree } from '../../fixtures/debian-tree.js';
import { disableOtherSources, makeDebRepo, type DebRepo, type DebSpec } from '../../fixtures/deb-repo.js';
import { sysprime } from '../../fixtures/cli.js';
import type { Kind } from '../../fixtures/scratch.js';

function demo(version: string): DebSpec {
  return {
    name: 'sysprime-demo',
    version,
    conffile: `# sysprime-demo configuration\ngreeting = hello ${version}\n\n# the admin's part\ncolour = blue\n`,
    script: `#!/bin/sh\necho "sysprime-demo version ${version}"\n`,
  };
}

/** A local mirror: the repository directory served over HTTP on loopback. */
async function serve(dir: string): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const path = normalize(join(dir, decodeURIComponent((req.url ?? '/').split('?')[0]!)));
    if (!path.startsWith(dir) || !existsSync(path) || !statSync(path).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200);
    createReadStream(path).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no address');
  return { url: `http://127.0.0.1:${addr.port}/`, server };
}

for (const kind of ['btrfs', 'zfs'] as Kind[]) {
  describe(`staging with apt on ${kind}`, () => {
    let dir: string;
    let config: string;
    let repo: DebRepo;
    let mirror: { url: string; server: Server };
    let btrfsPool: BtrfsPool | undefined;
    let zfsPool: ZfsPool | undefined;
    let adopt: string;
    const sp = (...args: string[]) => sysprime(args, { config });
    const mnt = () => join(dir, 'mnt');

    before(async () => {
      dir = mkdtempSync('/var/tmp/sysprime-apt-stage-');
      repo = await makeDebRepo(join(dir, 'repo'));
      await repo.publish(demo('1'));
      mirror = await serve(repo.dir);
      let tree: string;
      if (kind === 'btrfs') {
        btrfsPool = await makeBtrfsPool({ sizeMiB: 2048 });
        await run('btrfs', ['-q', 'subvolume', 'create', join(btrfsPool.top, '@')]);
        tree = join(btrfsPool.top, '@');
        adopt = '@';
        config = join(dir, 'sysprime.toml');
        writeFileSync(config, `backend = "btrfs"\n[btrfs]\ntop = "${btrfsPool.top}"\n[state]\ndir = "${dir}/state"\n[boot]\nloader = "none"\n[update]\nmethod = "apt"\n`);
      } else {
        zfsPool = await makeZfsPool({ sizeMiB: 2048 });
        tree = join(zfsPool.dir, 'os');
        mkdirSync(tree);
        await run('zfs', ['create', '-o', `mountpoint=${tree}`, `${zfsPool.name}/os`]);
        adopt = `${zfsPool.name}/os`;
        config = join(dir, 'sysprime.toml');
        writeFileSync(config, `backend = "zfs"\n[zfs]\npool = "${zfsPool.name}"\n[state]\ndir = "${dir}/state"\n[boot]\nloader = "none"\n[update]\nmethod = "apt"\n`);
      }
      await makeDebianTree(tree);
      disableOtherSources(tree);
      writeFileSync(join(tree, 'etc/apt/sources.list.d/local-mirror.list'), `deb [trusted=yes] ${mirror.url} ./\n`);
      await withChroot(tree, { network: true, timeout: 600 }, async (s) => {
        for (const argv of [['apt-get', 'update'], ['apt-get', 'install', '-y', 'sysprime-demo'], ['apt-get', 'clean']]) {
          await s.run(argv, { env: { DEBIAN_FRONTEND: 'noninteractive' } });
        }
      });
      if (zfsPool) await run('zfs', ['unmount', `${zfsPool.name}/os`]);
      const r = await sp('init', '--adopt', adopt, '--name', 'base');
      assert.equal(r.code, 0, r.stderr);
    });

    after(async () => {
      mirror?.server.close();
      await btrfsPool?.cleanup();
      await zfsPool?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    test('nothing new in the mirror: no environment', async () => {
      const r = await sp('stage');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /up to date/);
    });

    test('version 2 is staged in the new environment only, and the admin\'s conffile edit is merged in', async () => {
      assert.equal((await sp('mount', 'base', mnt())).code, 0);
      const conf = join(mnt(), 'etc/sysprime-demo.conf');
      writeFileSync(conf, readFileSync(conf, 'utf8').replace('colour = blue', 'colour = green'));
      assert.equal((await sp('umount', 'base')).code, 0);

      // The running environment's manifest, to compare after staging: not one byte of it may change.
      const manifestOf = async (env: string) => {
        assert.equal((await sp('mount', env, mnt())).code, 0);
        try {
          const m = await sysprime(['bart', 'create', '-R', mnt()]);
          assert.equal(m.code, 0, m.stderr);
          return m.stdout.split('\n').filter((l) => !l.startsWith('!') && !l.startsWith('#')).join('\n');
        } finally {
          assert.equal((await sp('umount', env)).code, 0);
        }
      };
      const baseBefore = await manifestOf('base');

      await repo.publish(demo('2'));
      const r = await sp('--json', 'stage');
      assert.equal(r.code, 0, r.stderr);
      const out = r.json<{ name: string; update: { packages: { name: string; from: string; to: string }[] } }>();
      assert.deepEqual(out.update.packages, [{ name: 'sysprime-demo', from: '1', to: '2' }]);

      const version = async (env: string) => {
        assert.equal((await sp('mount', env, mnt())).code, 0);
        try {
          const status = parseDpkgStatus(readFileSync(join(mnt(), 'var/lib/dpkg/status'), 'utf8'));
          return { version: status.find((p) => p.name === 'sysprime-demo')?.version, conf: readFileSync(join(mnt(), 'etc/sysprime-demo.conf'), 'utf8') };
        } finally {
          assert.equal((await sp('umount', env)).code, 0);
        }
      };
      const base = await version('base');
      assert.equal(base.version, '1', 'the running environment keeps version 1');
      assert.equal(await manifestOf('base'), baseBefore, 'the running environment is byte for byte what it was');
      const next = await version(out.name);
      assert.equal(next.version, '2');
      assert.match(next.conf, /greeting = hello 2/, "the update's change");
      assert.match(next.conf, /colour = green/, "the admin's change");
    });
  });
}
