/**
 * The first-boot install never writes through a link the new environment
 * holds: a link at the unit's name (the admin's drift carries it over) or at
 * a name beside the note (an update can ship one) may point at the host,
 * where staging runs as root. A unit masked with `systemctl mask` (a link to
 * /dev/null) is kept as the admin made it, and staging says the first boot
 * will not reintegrate.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { environmentMounter, sysprime } from '../../fixtures/cli.js';

const UNIT = 'etc/systemd/system/sysprime-reintegrate.service';

/** The update plants links at the names the note is written through, pointing at host files. */
function updateScript(dir: string): string {
  const script = join(dir, 'update.sh');
  writeFileSync(
    script,
    `#!/bin/sh
set -e
r="$SYSPRIME_ROOT"
mkdir -p "$r/var/lib/sysprime"
ln -sfn "${dir}/victim-note" "$r/var/lib/sysprime/first-boot.json.tmp"
ln -sfn "${dir}/victim-note" "$r/var/lib/sysprime/first-boot.json"
v=$(cat "$r/usr/share/doc/demo/VERSION" 2>/dev/null || echo 1)
echo $((v + 1)) > "$r/usr/share/doc/demo/VERSION"
`,
  );
  chmodSync(script, 0o755);
  return script;
}

for (const kind of KINDS) {
  describe(`first-boot install through links on ${kind}`, () => {
    let s: Scratch;
    let dir: string;
    let mnt: string;
    const sp = (...args: string[]) => sysprime(args, { config: s.config });
    const inEnv = environmentMounter(sp, () => mnt);
    const victim = () => join(dir, 'victim');
    const victimNote = () => join(dir, 'victim-note');

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sysprime-fb-links-'));
      mnt = join(dir, 'mnt');
      writeFileSync(victim(), 'host file\n');
      writeFileSync(victimNote(), 'host note\n');
      s = await makeScratch(kind, `[update]\nmethod = "command"\ncommand = "${updateScript(dir)}"\nchroot = false\n`);
      assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
    });
    after(async () => {
      await s?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    test('a link at the unit name pointing at a host file: the host file is untouched, the link is kept, staging warns', async () => {
      await inEnv('base', (root) => {
        mkdirSync(join(root, 'etc/systemd/system'), { recursive: true });
        symlinkSync(victim(), join(root, UNIT));
      });
      const r = await sp('--json', 'stage');
      assert.equal(r.code, 0, r.stderr);
      const { name } = r.json<{ name: string }>();
      assert.equal(readFileSync(victim(), 'utf8'), 'host file\n', 'the host file behind the unit link');
      assert.equal(readFileSync(victimNote(), 'utf8'), 'host note\n', 'the host file behind the note links');
      assert.ok(lstatSync(victim()).isFile() && lstatSync(victimNote()).isFile());
      assert.match(r.stderr, /warning: .*sysprime-reintegrate\.service is a symbolic link/);
      await inEnv(name, (root) => {
        assert.equal(readlinkSync(join(root, UNIT)), victim(), "the admin's link stays as it was");
        assert.ok(!existsSync(join(root, 'etc/systemd/system/sysinit.target.wants/sysprime-reintegrate.service')), 'no unit enabled');
        assert.ok(lstatSync(join(root, 'var/lib/sysprime/first-boot.json')).isSymbolicLink(), 'no note written through the link');
        const reports = readdirSync(join(root, 'var/lib/sysprime/reintegration'));
        assert.equal(reports.length, 1);
        const text = readFileSync(join(root, 'var/lib/sysprime/reintegration', reports[0]!), 'utf8');
        assert.match(text, /sysprime-reintegrate\.service is a symbolic link/);
      });
      assert.equal((await sp('destroy', name)).code, 0);
    });

    test('links beside the note: the note replaces them and writes nothing through them', async () => {
      await inEnv('base', (root) => unlinkSync(join(root, UNIT)));
      const r = await sp('--json', 'stage');
      assert.equal(r.code, 0, r.stderr);
      const { name } = r.json<{ name: string }>();
      assert.equal(readFileSync(victimNote(), 'utf8'), 'host note\n');
      await inEnv(name, (root) => {
        const note = join(root, 'var/lib/sysprime/first-boot.json');
        assert.ok(lstatSync(note).isFile(), 'the note is a file of its own');
        assert.equal((JSON.parse(readFileSync(note, 'utf8')) as { name: string }).name, name);
        assert.ok(lstatSync(join(root, UNIT)).isFile(), 'the unit is a file of its own');
        assert.ok(lstatSync(join(root, 'etc/systemd/system/sysinit.target.wants/sysprime-reintegrate.service')).isSymbolicLink(), 'enabled');
      });
      assert.equal((await sp('destroy', name)).code, 0);
    });

    test('a masked unit (a link to /dev/null) stays masked: no note, the report and stage say so', async () => {
      await inEnv('base', (root) => symlinkSync('/dev/null', join(root, UNIT)));
      const r = await sp('--json', 'stage');
      assert.equal(r.code, 0, r.stderr);
      const { name } = r.json<{ name: string }>();
      assert.ok(statSync('/dev/null').isCharacterDevice());
      assert.match(r.stderr, /warning: .*sysprime-reintegrate\.service is masked/);
      await inEnv(name, (root) => {
        assert.equal(readlinkSync(join(root, UNIT)), '/dev/null', 'still masked');
        assert.ok(!existsSync(join(root, 'etc/systemd/system/sysinit.target.wants/sysprime-reintegrate.service')));
        assert.ok(lstatSync(join(root, 'var/lib/sysprime/first-boot.json')).isSymbolicLink(), 'no first-boot note installed');
        const reports = readdirSync(join(root, 'var/lib/sysprime/reintegration'));
        const text = readFileSync(join(root, 'var/lib/sysprime/reintegration', reports[0]!), 'utf8');
        assert.match(text, /sysprime-reintegrate\.service is masked/);
      });
    });
  });
}
