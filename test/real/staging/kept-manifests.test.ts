/**
 * The manifests sysprime keeps in its state directory go with what they
 * describe: an environment's when it is destroyed, renamed or pruned, a
 * pristine state's with the last snapshot of its generation, a staging's
 * baseline once no environment holds a first-boot note naming that staging
 * (its first boot, and the first boot of every rename and copy of it,
 * compares against it). Before, every generation left its manifests behind
 * (tens of MB each on a large root), and a baseline was keyed by the staged
 * name, which a later staging under that name took over.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { environmentMounter, sysprime } from '../../fixtures/cli.js';

for (const kind of KINDS) {
  describe(`kept manifests on ${kind}`, () => {
    let s: Scratch;
    let dir: string;
    const sp = (...args: string[]) => sysprime(args, { config: s.config });
    const ok = async (...args: string[]) => {
      const r = await sp(...args);
      assert.ok(r.code === 0 || (args.includes('drift') && r.code === 1), `sysprime ${args.join(' ')} (exit ${r.code}): ${r.stderr}`);
      return r;
    };
    const inEnv = environmentMounter(sp, () => join(dir, 'mnt'));
    /** The kept manifests as the database lists them, and whether each one's files are there. */
    const kept = (): Map<string, boolean> => {
      const db = new Database(join(s.stateDir, 'sysprime.db'), { readonly: true });
      try {
        const rows = db.prepare('SELECT subject, file FROM manifests').all() as { subject: string; file: string }[];
        return new Map(rows.map((r) => [r.subject, existsSync(`${r.file}.bart`) && existsSync(`${r.file}.index`)]));
      } finally {
        db.close();
      }
    };
    const files = () => readdirSync(join(s.stateDir, 'manifests')).length;
    /** The staging id the first-boot note in an environment names. */
    const stagingOf = (name: string) =>
      inEnv(name, (root) => (JSON.parse(readFileSync(join(root, 'var/lib/sysprime/first-boot.json'), 'utf8')) as { staging?: string }).staging);

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sysprime-kept-'));
      const update = join(dir, 'update.sh');
      writeFileSync(update, '#!/bin/sh\nset -e\necho 2 > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"\n');
      chmodSync(update, 0o755);
      s = await makeScratch(kind, `[update]\nmethod = "command"\ncommand = "${update}"\nchroot = false\n`);
      await ok('init', '--adopt', s.adopt, '--name', 'base');
      await inEnv('base', (root) => writeFileSync(join(root, 'etc/motd'), 'an admin was here\n'));
    });
    after(async () => {
      await s?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    test('destroy and rename forget the manifests of the environment that is gone; those of the others stay', async () => {
      await ok('create', 'scratch');
      await ok('drift', 'scratch', '--no-record');
      await ok('drift', 'base', '--no-record');
      assert.equal(kept().get('env:scratch'), true, 'drift keeps the live manifest, the seed of its next walk');
      assert.equal(kept().get('env:base'), true);
      assert.equal(kept().get('pristine:0'), true);
      await ok('rename', 'scratch', 'renamed');
      assert.ok(!kept().has('env:scratch'), 'the old name\'s manifest goes with the name');
      await ok('drift', 'renamed', '--no-record');
      assert.equal(kept().get('env:renamed'), true);
      const before = files();
      await ok('destroy', 'renamed');
      assert.ok(!kept().has('env:renamed'));
      assert.equal(files(), before - 2, 'its .bart and .index files are removed');
      assert.equal(kept().get('env:base'), true, 'another environment\'s is kept');
      assert.equal(kept().get('pristine:0'), true, 'base still has generation 0');
    });

    test('the baseline kept at staging serves the first boot of the environment and of its copies, and goes after the last of them; pristine manifests go with their generation', async () => {
      await ok('stage', '--name', 'gen-1');
      const id = await stagingOf('gen-1');
      assert.equal(kept().get(`staged-ours:${id}`), true, 'staging keeps the running system\'s manifest for the first boot, under its staging id');
      assert.ok(!kept().has('staged-ours:gen-1'), 'not under the staged name');
      await ok('create', 'gen-1-copy', '--from', 'gen-1');
      assert.equal(await stagingOf('gen-1-copy'), id, 'the copy\'s note names the same staging');
      await inEnv('base', (root) => writeFileSync(join(root, 'etc/motd'), 'changed after staging\n'));
      const fb = await sp('reintegrate', '--first-boot', '--to', 'gen-1');
      assert.equal(fb.code, 0, fb.stderr);
      assert.equal(kept().get(`staged-ours:${id}`), true, 'a copy made before the first boot still needs it');
      const copy = await sp('reintegrate', '--first-boot', '--to', 'gen-1-copy');
      assert.equal(copy.code, 0, copy.stderr);
      await inEnv('gen-1-copy', (root) => assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'changed after staging\n'));
      assert.ok(!kept().has(`staged-ours:${id}`), 'the last note naming it is gone with the copy\'s first boot: so is the baseline');
      await ok('destroy', 'gen-1-copy');
      await ok('drift', 'gen-1', '--no-record');
      assert.equal(kept().get('pristine:1'), true);
      assert.equal(kept().get('env:gen-1'), true);
      await ok('destroy', 'gen-1');
      assert.ok(!kept().has('env:gen-1'));
      assert.ok(!kept().has('pristine:1'), 'no environment of generation 1 is left: its pristine manifest goes too');
      assert.equal(kept().get('pristine:0'), true);
      for (const [subject, whole] of kept()) assert.ok(whole, `${subject}: its files are there`);
    });

    test('staged, renamed, staged again under the same name: the renamed one\'s first boot compares against its own staging\'s baseline', async () => {
      await ok('stage', '--name', 'gen-2');
      const first = await stagingOf('gen-2');
      await ok('rename', 'gen-2', 'tuesday');
      await inEnv('base', (root) => writeFileSync(join(root, 'etc/motd'), 'changed after staging gen-2\n'));
      // Staged again under the name the first one had: its baseline already holds the edit above.
      await ok('stage', '--name', 'gen-2');
      const second = await stagingOf('gen-2');
      const fb = await sp('reintegrate', '--first-boot', '--to', 'tuesday');
      assert.equal(fb.code, 0, fb.stderr);
      await inEnv('tuesday', (root) => assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'changed after staging gen-2\n', 'the edit made after its staging was carried at its first boot'));
      assert.ok(first !== undefined && second !== undefined && second !== first, 'each staging has its own id');
      assert.ok(!kept().has(`staged-ours:${first}`), 'its only holder has booted: forgotten');
      assert.equal(kept().get(`staged-ours:${second}`), true, 'the new gen-2 has not booted yet');
      await ok('destroy', 'gen-2');
      assert.ok(!kept().has(`staged-ours:${second}`), 'its only holder is destroyed: forgotten');
      await ok('destroy', 'tuesday');
    });

    test('a note written before stagings had ids finds its baseline by the staged name, which stays while the note does', async () => {
      await ok('stage', '--name', 'gen-4');
      const id = await stagingOf('gen-4');
      // What an older sysprime left: a note without an id, its baseline kept under the staged name.
      await inEnv('gen-4', (root) => {
        const path = join(root, 'var/lib/sysprime/first-boot.json');
        const { staging: _id, ...old } = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
        writeFileSync(path, JSON.stringify(old, null, 2) + '\n');
      });
      const db = new Database(join(s.stateDir, 'sysprime.db'));
      try {
        db.prepare('UPDATE manifests SET subject = ? WHERE subject = ?').run('staged-ours:gen-4', `staged-ours:${id}`);
      } finally {
        db.close();
      }
      await ok('create', 'scratch-2');
      await ok('destroy', 'scratch-2');
      assert.equal(kept().get('staged-ours:gen-4'), true, 'a sweep keeps it: the note names it by the staged name');
      await inEnv('base', (root) => writeFileSync(join(root, 'etc/motd'), 'changed after staging gen-4\n'));
      const fb = await sp('reintegrate', '--first-boot', '--to', 'gen-4');
      assert.equal(fb.code, 0, fb.stderr);
      await inEnv('gen-4', (root) => assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'changed after staging gen-4\n'));
      assert.ok(!kept().has('staged-ours:gen-4'), 'used by the first boot and named by no note: forgotten');
    });
  });
}
