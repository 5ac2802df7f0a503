/**
 * `sysprime store verify` on real pools, as an admin meets it: an
 * environment staged with the store updater has a /usr of links into its
 * store and a mount unit making /usr read-only at run time; an edit in
 * place of one /usr file (possible wherever that unit is not in force, as
 * in a tree mounted with `sysprime mount`) damages the store object, and
 * verify names the object and every path sharing it, exit 1; drift names
 * them too; `--repair` fetches the object again and relinks the paths.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { environmentMounter, sysprime } from '../../fixtures/cli.js';
import { publishVersion, type PackageFiles, ALLOW_UNSIGNED } from '../../fixtures/store-repo.js';
import { OS_FILES } from '../../fixtures/os-tree.js';

const LICENSE = 'Permission is granted to anyone.\n';

function osPackage(): PackageFiles {
  const files: PackageFiles = {};
  for (const [path, text] of Object.entries(OS_FILES)) if (path.startsWith('usr/')) files[path] = text;
  files['usr/bin/demo'] = { content: '#!/bin/sh\necho demo\n', mode: 0o755 };
  // Same content and metadata: one store object, three paths.
  files['usr/share/doc/demo/COPYING'] = LICENSE;
  files['usr/share/licenses/demo/COPYING'] = LICENSE;
  files['usr/share/common-licenses/Demo'] = LICENSE;
  return files;
}

interface VerifyJson {
  environment: string;
  report: {
    damagedObjects: { key: string; problem: string; sharedBy: string[] }[];
    damagedFiles: { path: string; problem: string }[];
  };
  repair: { objectsFetched: number; pathsRelinked: string[] } | null;
}

for (const kind of KINDS) {
  describe(`sysprime store verify on ${kind}`, () => {
    let s: Scratch;
    let dir: string;
    const sp = (...args: string[]) => sysprime(args, { config: s.config });
    const inEnv = environmentMounter(sp, () => join(dir, 'mnt'));

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sysprime-store-verify-'));
      s = await makeScratch(kind, `[update]\nmethod = "store"\nrepository = "${join(dir, 'repo')}"\n${ALLOW_UNSIGNED}`);
      await publishVersion(join(dir, 'repo'), 'demo-os', '1', osPackage());
      assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
      const r = await sp('stage');
      assert.equal(r.code, 0, r.stderr);
    });
    after(async () => {
      await s?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    test('a freshly staged environment is intact, and a unit in it makes /usr read-only at boot', async () => {
      const r = await sp('store', 'verify', 'gen-1');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /store of "gen-1": \d+ objects and \d+ files of \/usr \(1 packages\) are intact/);
      await inEnv('gen-1', (root) => {
        assert.match(readFileSync(join(root, 'etc/systemd/system/usr.mount'), 'utf8'), /^Options=bind,ro$/m);
        assert.equal(readlinkSync(join(root, 'etc/systemd/system/local-fs.target.wants/usr.mount')), '/etc/systemd/system/usr.mount');
        const fstab = lstatSync(join(root, 'etc/fstab'), { throwIfNoEntry: false }) === undefined ? '' : readFileSync(join(root, 'etc/fstab'), 'utf8');
        assert.doesNotMatch(fstab, /\s\/usr\s/, 'no /usr line for the initrd to mount');
      });
      // The adopted environment was not built by the store: nothing to verify there.
      const base = await sp('store', 'verify', 'base');
      assert.equal(base.code, 4, base.stdout);
      assert.match(base.stderr, /no packages from a sysprime store/);
    });

    test('an edit in place is found with every path sharing the object, drift names them, --repair puts them back', async () => {
      await inEnv('gen-1', (root) => {
        // What `echo >> /usr/share/doc/demo/COPYING` does on a writable /usr: the same inode, so the store object too.
        appendFileSync(join(root, 'usr/share/doc/demo/COPYING'), 'and to me only\n');
        assert.equal(readFileSync(join(root, 'usr/share/licenses/demo/COPYING'), 'utf8'), `${LICENSE}and to me only\n`);
      });

      const text = await sp('store', 'verify', 'gen-1');
      assert.equal(text.code, 1, text.stderr);
      assert.match(text.stdout, /^object [0-9a-f]{64}: its content changed/m);
      for (const p of ['/usr/share/common-licenses/Demo', '/usr/share/doc/demo/COPYING', '/usr/share/licenses/demo/COPYING']) {
        assert.match(text.stdout, new RegExp(`^  shared by ${p}$`, 'm'));
      }
      assert.match(text.stdout, /1 damaged objects, 0 damaged files/);
      const json = await sp('--json', 'store', 'verify', 'gen-1');
      assert.equal(json.code, 1);
      const v = json.json<VerifyJson>();
      assert.equal(v.report.damagedObjects.length, 1);
      assert.equal(v.report.damagedObjects[0]!.problem, 'content');
      assert.deepEqual(v.report.damagedObjects[0]!.sharedBy, ['/usr/share/common-licenses/Demo', '/usr/share/doc/demo/COPYING', '/usr/share/licenses/demo/COPYING']);

      const drift = await sp('drift', 'gen-1', '--no-record', '--no-diff');
      assert.equal(drift.code, 1, drift.stderr);
      assert.match(drift.stdout, /modified\s+\/usr\/share\/doc\/demo\/COPYING\b.*\[demo-os\]/);
      assert.match(drift.stdout, /one store object with \/usr\/share\/common-licenses\/Demo, \/usr\/share\/licenses\/demo\/COPYING: changed with it/);

      const repair = await sp('--json', 'store', 'verify', '--repair', 'gen-1');
      assert.equal(repair.code, 0, repair.stderr);
      const r = repair.json<VerifyJson>();
      assert.equal(r.repair!.objectsFetched, 1);
      assert.deepEqual(r.repair!.pathsRelinked, ['/usr/share/common-licenses/Demo', '/usr/share/doc/demo/COPYING', '/usr/share/licenses/demo/COPYING']);
      assert.deepEqual(r.report.damagedObjects, []);
      await inEnv('gen-1', (root) => {
        const inodes = ['usr/share/doc/demo/COPYING', 'usr/share/licenses/demo/COPYING', 'usr/share/common-licenses/Demo'].map((p) => {
          assert.equal(readFileSync(join(root, p), 'utf8'), LICENSE);
          return lstatSync(join(root, p)).ino;
        });
        assert.equal(new Set(inodes).size, 1, 'one object again');
        assert.equal(lstatSync(join(root, 'usr/share/doc/demo/COPYING')).nlink, 4, 'three paths and the store object');
      });
      const again = await sp('store', 'verify', 'gen-1');
      assert.equal(again.code, 0, again.stdout);
    });

    test('a file replaced by other content (an editor\'s rename) is named, and repaired', async () => {
      await inEnv('gen-1', (root) => {
        rmSync(join(root, 'usr/bin/demo'));
        appendFileSync(join(root, 'usr/bin/demo'), '#!/bin/sh\necho mine\n');
      });
      const r = await sp('store', 'verify', 'gen-1');
      assert.equal(r.code, 1);
      assert.match(r.stdout, /^\/usr\/bin\/demo: replaced by other content/m);
      assert.match(r.stdout, /0 damaged objects, 1 damaged files/);
      const fix = await sp('store', 'verify', '--repair', 'gen-1');
      assert.equal(fix.code, 0, fix.stdout + fix.stderr);
      assert.match(fix.stdout, /relinked \/usr\/bin\/demo/);
      await inEnv('gen-1', (root) => assert.equal(readFileSync(join(root, 'usr/bin/demo'), 'utf8'), '#!/bin/sh\necho demo\n'));
    });
  });
}
