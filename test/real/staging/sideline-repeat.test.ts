/**
 * A conflict on the same path at two stagings in a row: the update's
 * version the first staging saved beside the admin's (`.sysprime-new`) is
 * sysprime's own, so at the second staging it does not count as a file the
 * admin added, and the second update's version is what ends up beside the
 * admin's.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { environmentMounter, sysprime } from '../../fixtures/cli.js';

/** Each update writes its own host name, numbered by the version it installs. */
function updateScript(dir: string): string {
  const script = join(dir, 'update.sh');
  writeFileSync(
    script,
    `#!/bin/sh
set -e
r="$SYSPRIME_ROOT"
v=$(cat "$r/usr/share/doc/demo/VERSION" 2>/dev/null || echo 1)
echo $((v + 1)) > "$r/usr/share/doc/demo/VERSION"
echo "update-host-$((v + 1))" > "$r/etc/hostname"
`,
  );
  chmodSync(script, 0o755);
  return script;
}

for (const kind of KINDS) {
  describe(`a repeated conflict on ${kind}`, () => {
    let s: Scratch;
    let dir: string;
    let mnt: string;
    const sp = (...args: string[]) => sysprime(args, { config: s.config });
    const inEnv = environmentMounter(sp, () => mnt);
    const stage = async (from: string): Promise<string> => {
      const r = await sp('--json', 'stage', '--from', from);
      assert.equal(r.code, 0, r.stderr);
      return r.json<{ name: string }>().name;
    };

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sysprime-sideline-'));
      mnt = join(dir, 'mnt');
      s = await makeScratch(kind, `[update]\nmethod = "command"\ncommand = "${updateScript(dir)}"\nchroot = false\n`);
      assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
      await inEnv('base', (root) => writeFileSync(join(root, 'etc/hostname'), 'admin-host\n'));
    });
    after(async () => {
      await s?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    let second = '';
    test("the second update's version is saved beside the admin's, not the first one's left over", async () => {
      const first = await stage('base');
      await inEnv(first, (root) => {
        assert.equal(readFileSync(join(root, 'etc/hostname'), 'utf8'), 'admin-host\n');
        assert.equal(readFileSync(join(root, 'etc/hostname.sysprime-new'), 'utf8'), 'update-host-2\n');
      });
      second = await stage(first);
      await inEnv(second, (root) => {
        assert.equal(readFileSync(join(root, 'etc/hostname'), 'utf8'), 'admin-host\n', "the admin's version stays");
        assert.equal(readFileSync(join(root, 'etc/hostname.sysprime-new'), 'utf8'), 'update-host-3\n', "this update's version beside it");
        const reports = readdirSync(join(root, 'var/lib/sysprime/reintegration'));
        const text = readFileSync(join(root, 'var/lib/sysprime/reintegration', reports.sort().at(-1)!), 'utf8');
        assert.match(text, /\/etc\/hostname\.sysprime-new\n.*not carried over/);
      });
    });

    test("one the admin edited is the admin's: carried over, and the next update's version goes to the next free name", async () => {
      await inEnv(second, (root) => writeFileSync(join(root, 'etc/hostname.sysprime-new'), 'merged by hand\n'));
      const third = await stage(second);
      await inEnv(third, (root) => {
        assert.equal(readFileSync(join(root, 'etc/hostname'), 'utf8'), 'admin-host\n');
        assert.equal(readFileSync(join(root, 'etc/hostname.sysprime-new'), 'utf8'), 'merged by hand\n', "the admin's edit is kept");
        assert.equal(readFileSync(join(root, 'etc/hostname.sysprime-new.1'), 'utf8'), 'update-host-4\n', "this update's version beside it");
        const reports = readdirSync(join(root, 'var/lib/sysprime/reintegration'));
        const text = readFileSync(join(root, 'var/lib/sysprime/reintegration', reports.sort().at(-1)!), 'utf8');
        assert.match(text, /update's version: \/etc\/hostname\.sysprime-new\.1/);
      });
    });
  });
}
