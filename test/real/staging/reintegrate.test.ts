/**
 * Reintegration through the real CLI on real pools: what the admin changed
 * on the running environment arrives in the staged one (merged with the
 * update, conflicts kept side by side), and what the admin changes after
 * staging arrives at the new environment's first boot.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { environmentMounter, sysprime } from '../../fixtures/cli.js';

/** The update: changes one line of demo.conf, rewrites the host name, adds a system user. */
function updateScript(dir: string): string {
  const script = join(dir, 'update.sh');
  writeFileSync(
    script,
    `#!/bin/sh
set -e
r="$SYSPRIME_ROOT"
sed -i 's/^port = 8080$/port = 9090/' "$r/etc/demo.conf"
echo update-host > "$r/etc/hostname"
echo '_demo:x:998:998:demo service:/nonexistent:/usr/sbin/nologin' >> "$r/etc/passwd"
echo '_demo:x:998:' >> "$r/etc/group"
echo '_demo:!:19000::::::' >> "$r/etc/shadow"
echo 2 > "$r/usr/share/doc/demo/VERSION"
`,
  );
  chmodSync(script, 0o755);
  return script;
}

for (const kind of KINDS) {
  describe(`reintegration on ${kind}`, () => {
    let s: Scratch;
    let dir: string;
    let mnt: string;
    const sp = (...args: string[]) => sysprime(args, { config: s.config });
    const inEnv = environmentMounter(sp, () => mnt);

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sysprime-reint-'));
      mnt = join(dir, 'mnt');
      s = await makeScratch(kind, `[update]\nmethod = "command"\ncommand = "${updateScript(dir)}"\nchroot = false\n`);
      assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
      // The admin's changes on the running environment.
      await inEnv('base', (root) => {
        writeFileSync(join(root, 'etc/demo.conf'), readFileSync(join(root, 'etc/demo.conf'), 'utf8').replace('workers = 2', 'workers = 4'));
        writeFileSync(join(root, 'etc/hostname'), 'admin-host\n');
        writeFileSync(join(root, 'etc/motd'), 'welcome\n');
        unlinkSync(join(root, 'etc/default/demo'));
        chmodSync(join(root, 'etc/shadow'), 0o600);
        appendFileSync(join(root, 'etc/passwd'), 'alice:x:1000:1000:Alice:/home/alice:/bin/sh\n');
        appendFileSync(join(root, 'etc/group'), 'alice:x:1000:\n');
        appendFileSync(join(root, 'etc/shadow'), 'alice:$6$salt$hash:19000:0:99999:7:::\n');
      });
    });
    after(async () => {
      await s?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    test('--plan shows what staging would carry over, before anything is staged it names no target', async () => {
      const r = await sp('reintegrate', '--plan');
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, /no environment of a later generation/);
    });

    test('staging carries the admin changes over, merged with the update', async () => {
      const r = await sp('--json', 'stage');
      assert.equal(r.code, 0, r.stderr);
      await inEnv('gen-1', (root) => {
        assert.equal(readFileSync(join(root, 'etc/demo.conf'), 'utf8'), '# demo service\nlisten = 127.0.0.1\n\n# network\nport = 9090\n\n# capacity\nworkers = 4\n', 'clean 3-way merge');
        assert.equal(readFileSync(join(root, 'etc/hostname'), 'utf8'), 'admin-host\n', "conflict: the admin's version stays");
        assert.equal(readFileSync(join(root, 'etc/hostname.sysprime-new'), 'utf8'), 'update-host\n', "and the update's is beside it");
        assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'welcome\n');
        assert.ok(!existsSync(join(root, 'etc/default/demo')), 'the admin deleted it, the update left it alone');
        assert.equal(statSync(join(root, 'etc/shadow')).mode & 0o777, 0o600);
        const passwd = readFileSync(join(root, 'etc/passwd'), 'utf8');
        assert.match(passwd, /^alice:x:1000:/m, "the admin's user");
        assert.match(passwd, /^_demo:x:998:/m, "the update's system user");
        assert.match(readFileSync(join(root, 'etc/shadow'), 'utf8'), /^alice:\$6\$salt\$hash:/m);
        assert.equal(readFileSync(join(root, 'usr/share/doc/demo/VERSION'), 'utf8'), '2\n', 'the update itself');
        const reports = readdirSync(join(root, 'var/lib/sysprime/reintegration'));
        assert.equal(reports.length, 1);
        const text = readFileSync(join(root, 'var/lib/sysprime/reintegration', reports[0]!), 'utf8');
        assert.match(text, /Conflicts/);
        assert.match(text, /\/etc\/hostname/);
        assert.ok(existsSync(join(root, 'var/lib/sysprime/first-boot.json')), 'first-boot note');
        assert.ok(lstatSync(join(root, 'etc/systemd/system/sysinit.target.wants/sysprime-reintegrate.service')).isSymbolicLink(), 'first-boot unit enabled');
      });
      const st = await sp('status');
      assert.match(st.stdout, /"gen-1" has 1 conflict/);
    });

    test('--plan now shows the plan into the staged environment', async () => {
      const r = await sp('--json', 'reintegrate', '--plan');
      assert.equal(r.code, 0, r.stderr);
      const plan = r.json<{ to: string; actions: { path: string; action: string }[] }>();
      assert.equal(plan.to, 'gen-1');
      const by = Object.fromEntries(plan.actions.map((a) => [a.path, a.action]));
      assert.equal(by['/etc/demo.conf'], 'merge');
      assert.equal(by['/etc/motd'], 'copy');
      assert.equal(by['/etc/default/demo'], 'delete');
    });

    test('a first boot that fails: the unit removes itself (no loop), the failure is kept, status names it', async () => {
      assert.equal((await sp('create', 'fb-fail', '--from', 'gen-1')).code, 0);
      // What the first boot needs from staging is gone (a state database restored from an older backup, say).
      const db = new Database(join(s.stateDir, 'sysprime.db'));
      const note = await inEnv('gen-1', (root) => JSON.parse(readFileSync(join(root, 'var/lib/sysprime/first-boot.json'), 'utf8')) as { staging: string });
      const subject = `staged-ours:${note.staging}`;
      const row = db.prepare('SELECT * FROM manifests WHERE subject = ?').get(subject) as Record<string, unknown> | undefined;
      assert.ok(row, 'staging kept the admin manifest');
      db.prepare('DELETE FROM manifests WHERE subject = ?').run(subject);
      try {
        const fb = await sp('reintegrate', '--first-boot', '--to', 'fb-fail');
        assert.notEqual(fb.code, 0, fb.stdout);
        assert.match(fb.stderr, /the manifest kept at staging for "gen-1" is missing/);
        await inEnv('fb-fail', (root) => {
          assert.ok(!existsSync(join(root, 'var/lib/sysprime/first-boot.json')), 'the note is gone: the unit does not run again');
          assert.ok(!existsSync(join(root, 'etc/systemd/system/sysinit.target.wants/sysprime-reintegrate.service')));
          assert.ok(existsSync(join(root, 'var/lib/sysprime/first-boot.failed.json')), 'what happened is kept for the admin');
        });
        assert.match((await sp('status')).stdout, /first boot: {2}"fb-fail" failed to carry over changes/);
        const again = await sp('reintegrate', '--first-boot', '--to', 'fb-fail');
        assert.equal(again.code, 0, again.stderr);
        assert.match(again.stdout, /no first-boot reintegration waiting/);
      } finally {
        const keys = Object.keys(row);
        db.prepare(`INSERT INTO manifests (${keys.join(', ')}) VALUES (${keys.map(() => '?').join(', ')})`).run(...keys.map((k) => row[k]));
        db.close();
      }
      assert.equal((await sp('destroy', 'fb-fail')).code, 0);
    });

    test('the first boot replays what changed after staging, then removes itself', async () => {
      await inEnv('base', (root) => {
        writeFileSync(join(root, 'etc/motd'), 'welcome, changed after staging\n');
        writeFileSync(join(root, 'etc/after-staging.conf'), 'late = yes\n');
      });
      const r = await sp('reintegrate', '--first-boot', '--to', 'gen-1');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /carried over what changed on "base" since staging/);
      await inEnv('gen-1', (root) => {
        assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'welcome, changed after staging\n');
        assert.equal(readFileSync(join(root, 'etc/after-staging.conf'), 'utf8'), 'late = yes\n');
        assert.equal(readFileSync(join(root, 'etc/hostname'), 'utf8'), 'admin-host\n', 'the staging result stays');
        assert.ok(!existsSync(join(root, 'var/lib/sysprime/first-boot.json')));
        assert.ok(!existsSync(join(root, 'etc/systemd/system/sysinit.target.wants/sysprime-reintegrate.service')));
        assert.ok(!existsSync(join(root, 'etc/systemd/system/sysprime-reintegrate.service')));
        assert.equal(readdirSync(join(root, 'var/lib/sysprime/reintegration')).length, 2);
      });
      const again = await sp('reintegrate', '--first-boot', '--to', 'gen-1');
      assert.equal(again.code, 0);
      assert.match(again.stdout, /no first-boot reintegration waiting/);
    });

    test('reintegrating again by hand changes nothing (idempotent)', async () => {
      const r = await sp('--json', 'reintegrate', '--to', 'gen-1');
      assert.equal(r.code, 0, r.stderr);
      const counts = r.json<{ counts: Record<string, number> }>().counts;
      assert.equal(counts['applied'], 0, JSON.stringify(counts));
      assert.equal(counts['merged'], 0, JSON.stringify(counts));
      assert.equal(counts['failed'], 0);
    });
  });
}
