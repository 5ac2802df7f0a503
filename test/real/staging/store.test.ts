/**
 * Staging with sysprime's own package store on real pools: the new pristine
 * state holds exactly the updated packages (its manifest against the old
 * one lists the package's files and nothing else), the running environment
 * is unchanged, and publishing nothing new stages nothing.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { sysprime } from '../../fixtures/cli.js';
import { publishVersion, type PackageFiles, ALLOW_UNSIGNED } from '../../fixtures/store-repo.js';
import { OS_FILES } from '../../fixtures/os-tree.js';

/** The OS tree's /usr and /etc/demo.conf as a store package, at a version. */
function osPackage(version: string): PackageFiles {
  const files: PackageFiles = {};
  for (const [path, text] of Object.entries(OS_FILES)) if (path.startsWith('usr/')) files[path] = text;
  files['usr/bin/demo'] = { content: `#!/bin/sh\necho "demo ${version}"\n`, mode: 0o755 };
  files['usr/lib/os-release'] = `PRETTY_NAME="Demo Linux ${version}"\nID=demo\nVERSION_ID=${version}\n`;
  if (version !== '1') files[`usr/share/doc/demo/NEWS-${version}`] = `what is new in ${version}\n`;
  return files;
}

for (const kind of KINDS) {
  describe(`staging with the store updater on ${kind}`, () => {
    let s: Scratch;
    let dir: string;
    let repo: string;
    let mnt: string;
    const sp = (...args: string[]) => sysprime(args, { config: s.config });
    const manifest = async (name: string) => {
      assert.equal((await sp('mount', name, mnt)).code, 0);
      try {
        const r = await sysprime(['bart', 'create', '-R', mnt, '-o', join(dir, `${name}.manifest`)]);
        assert.equal(r.code, 0, r.stderr);
        return join(dir, `${name}.manifest`);
      } finally {
        assert.equal((await sp('umount', name)).code, 0);
      }
    };

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sysprime-store-stage-'));
      repo = join(dir, 'repo');
      mnt = join(dir, 'mnt');
      s = await makeScratch(kind, `[update]\nmethod = "store"\nrepository = "${repo}"\n${ALLOW_UNSIGNED}`);
      await publishVersion(repo, 'demo-os', '1', osPackage('1'));
      assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
    });
    after(async () => {
      await s?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    test('the first staging installs the published /usr; the next one only what changed', async () => {
      // The adopted tree was not made by the store: the first staging brings /usr under it.
      const first = await sp('--json', 'stage');
      assert.equal(first.code, 0, first.stderr);
      assert.equal(first.json<{ name: string }>().name, 'gen-1');
      const nothing = await sp('stage');
      assert.equal(nothing.code, 0, nothing.stderr);
      assert.match(nothing.stdout, /up to date/);

      const before = await manifest('base');
      await publishVersion(repo, 'demo-os', '2', osPackage('2'));
      const r = await sp('--json', 'stage');
      assert.equal(r.code, 0, r.stderr);
      const out = r.json<{ name: string; generation: number; update: { packages: { name: string; from: string | null; to: string | null }[] } }>();
      assert.equal(out.generation, 2);
      assert.deepEqual(out.update.packages, [{ name: 'demo-os', from: '1', to: '2' }]);

      // The new pristine state against the previous one: exactly the package's changes.
      const g1 = await manifest('gen-1');
      const g2 = await manifest('gen-2');
      const cmp = await sysprime(['bart', 'compare', '-p', '-i', 'mtime,dirmtime,lnmtime', g1, g2]);
      assert.equal(cmp.code, 1, cmp.stderr);
      const changed = cmp.stdout
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => l.split(' ')[0]!)
        .filter((p) => !p.startsWith('/var/lib/sysprime/'))
        .sort();
      assert.deepEqual(changed, ['/usr/bin/demo', '/usr/lib/os-release', '/usr/share/doc/demo', '/usr/share/doc/demo/NEWS-2']);
      assert.equal(await manifest('base').then((m) => readFileSync(m, 'latin1').split('\n').slice(3).join('\n')), readFileSync(before, 'latin1').split('\n').slice(3).join('\n'), 'the running environment is unchanged');

      assert.equal((await sp('mount', 'gen-2', mnt)).code, 0);
      try {
        assert.equal(readFileSync(join(mnt, 'usr/bin/demo'), 'utf8'), '#!/bin/sh\necho "demo 2"\n');
        assert.equal(statSync(join(mnt, 'usr/bin/demo')).mode & 0o777, 0o755);
      } finally {
        await sp('umount', 'gen-2');
      }
    });
  });
}
