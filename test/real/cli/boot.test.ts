/**
 * Boot entries follow every verb on real pools: a systemd-boot ESP (a plain
 * directory here: nothing of this machine's own boot is touched) gets an
 * entry and the kernel of each environment; stage adds a counting entry;
 * rename, destroy and prune keep entries and environments in step; doctor
 * finds and repairs drift between them.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { sysprime } from '../../fixtures/cli.js';

for (const kind of KINDS) {
  describe(`boot entries on ${kind} with systemd-boot`, () => {
    let s: Scratch;
    let dir: string;
    let esp: string;
    const sp = (...args: string[]) => sysprime(args, { config: s.config });
    const entries = () => readdirSync(join(esp, 'loader/entries')).sort();
    const kernels = () => (existsSync(join(esp, 'sysprime')) ? readdirSync(join(esp, 'sysprime')).sort() : []);

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sysprime-boot-'));
      esp = join(dir, 'esp');
      mkdirSync(join(esp, 'loader/entries'), { recursive: true });
      writeFileSync(join(esp, 'loader/entries/admin-own.conf'), 'title Admin\nlinux /vmlinuz\n');
      const script = join(dir, 'update.sh');
      writeFileSync(script, '#!/bin/sh\necho 2 > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"\n');
      chmodSync(script, 0o755);
      s = await makeScratch(kind, `[update]\nmethod = "command"\ncommand = "${script}"\nchroot = false\n`);
      // A kernel in the tree to adopt, as an installed system has.
      const cfg = readFileSync(s.config, 'utf8').replace('loader = "none"', `loader = "systemd-boot"\nesp = "${esp}"`);
      writeFileSync(s.config, cfg);
      const tree = await sysprime(['--json', 'list'], { config: s.config });
      assert.equal(tree.code, 0, tree.stderr);
    });
    after(async () => {
      await s?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    test('init writes an entry and copies the kernel', async () => {
      // Put a kernel into the tree before adoption.
      const src = s.kind === 'btrfs' ? join(s.where, '@') : null;
      if (src) {
        writeFileSync(join(src, 'boot/vmlinuz-6.1.0-28-amd64'), 'kernel 6.1.0-28\n');
        writeFileSync(join(src, 'boot/initrd.img-6.1.0-28-amd64'), 'initrd 6.1.0-28\n');
      }
      const r = await sp('init', '--adopt', s.adopt, '--name', 'base');
      assert.equal(r.code, 0, r.stderr);
      if (!src) {
        // ZFS: the dataset is adopted first; add the kernel through a mount and sync with doctor --fix.
        const mnt = join(dir, 'mnt');
        assert.equal((await sp('mount', 'base', mnt)).code, 0);
        writeFileSync(join(mnt, 'boot/vmlinuz-6.1.0-28-amd64'), 'kernel 6.1.0-28\n');
        writeFileSync(join(mnt, 'boot/initrd.img-6.1.0-28-amd64'), 'initrd 6.1.0-28\n');
        assert.equal((await sp('umount', 'base')).code, 0);
        assert.equal((await sp('doctor', '--fix')).code, 0);
      }
      assert.deepEqual(entries(), ['admin-own.conf', 'sysprime-base.conf']);
      const entry = readFileSync(join(esp, 'loader/entries/sysprime-base.conf'), 'utf8');
      assert.match(entry, /^linux \/sysprime\/base\//m);
      assert.match(entry, kind === 'btrfs' ? /rootflags=subvol=ROOT\/base/ : /root=ZFS=\S+\/ROOT\/base/);
      assert.deepEqual(kernels(), ['base']);
      assert.match(readFileSync(join(esp, 'loader/loader.conf'), 'utf8'), /^default sysprime-\*/m);
    });

    test('create and stage add entries; the staged one counts its tries', async () => {
      assert.equal((await sp('create', 'copy')).code, 0);
      const r = await sp('stage');
      assert.equal(r.code, 0, r.stderr);
      const list = entries();
      assert.ok(list.includes('sysprime-copy.conf'), list.join(' '));
      assert.ok(list.includes('sysprime-gen-1+3.conf'), list.join(' '));
      assert.deepEqual(kernels(), ['base', 'copy', 'gen-1']);
    });

    test('activate ranks the new default first', async () => {
      assert.equal((await sp('activate', 'gen-1')).code, 0);
      const text = readFileSync(join(esp, 'loader/entries/sysprime-gen-1+3.conf'), 'utf8');
      assert.match(text, /^sort-key sysprime-1-default/m);
      assert.equal((await sp('activate', 'base')).code, 0);
    });

    test('activate --once is refused clearly on a machine not started by systemd-boot', async () => {
      const r = await sp('activate', '--once', 'copy');
      assert.equal(r.code, 5);
      assert.match(r.stderr, /not started by systemd-boot/);
    });

    test('rename and destroy move and remove the entry and the kernels', async () => {
      assert.equal((await sp('rename', 'copy', 'renamed')).code, 0);
      assert.ok(entries().includes('sysprime-renamed.conf'));
      assert.ok(!entries().includes('sysprime-copy.conf'));
      assert.deepEqual(kernels(), ['base', 'gen-1', 'renamed']);
      assert.equal((await sp('destroy', 'renamed')).code, 0);
      assert.ok(!entries().includes('sysprime-renamed.conf'));
      assert.deepEqual(kernels(), ['base', 'gen-1']);
      assert.ok(entries().includes('admin-own.conf'), "the admin's own entry is never touched");
    });

    test('doctor finds a missing and an orphaned entry and --fix repairs both', async () => {
      rmSync(join(esp, 'loader/entries/sysprime-base.conf'));
      writeFileSync(join(esp, 'loader/entries/sysprime-ghost.conf'), 'title ghost\nlinux /sysprime/ghost/vmlinuz\n');
      const r = await sp('--json', 'doctor');
      assert.equal(r.code, 1, r.stderr);
      const kinds = r.json<{ problems: { kind: string }[] }>().problems.map((p) => p.kind).sort();
      assert.deepEqual(kinds, ['entry-missing', 'entry-orphaned']);
      const fix = await sp('doctor', '--fix');
      assert.equal(fix.code, 0, fix.stderr);
      assert.ok(entries().includes('sysprime-base.conf'));
      assert.ok(!entries().includes('sysprime-ghost.conf'));
      const again = await sp('doctor');
      assert.equal(again.code, 0, again.stdout);
      assert.match(again.stdout, /no problems found/);
    });

    test('prune keeps the newest N and the default (beyond N), and their entries; removes the rest with theirs', async () => {
      assert.equal((await sp('create', 'old1')).code, 0);
      assert.equal((await sp('create', 'old2')).code, 0);
      const dry = await sp('--json', 'prune', '--keep', '2', '--dry-run');
      assert.equal(dry.code, 0, dry.stderr);
      const plan = dry.json<{ plan: { destroy: { name: string }[] } }>().plan;
      assert.deepEqual(plan.destroy.map((d) => d.name).sort(), ['gen-1']);
      assert.equal(entries().length, 5, 'dry run changes nothing');
      const r = await sp('prune', '--keep', '2');
      assert.equal(r.code, 0, r.stderr);
      const names = (await sp('--json', 'list')).json<{ name: string }[]>().map((e) => e.name).sort();
      assert.deepEqual(names, ['base', 'old1', 'old2']);
      assert.deepEqual(entries(), ['admin-own.conf', 'sysprime-base.conf', 'sysprime-old1.conf', 'sysprime-old2.conf']);
      assert.deepEqual(kernels(), ['base', 'old1', 'old2']);
      const one = await sp('prune', '--keep', '1');
      assert.equal(one.code, 0, one.stderr);
      assert.deepEqual((await sp('--json', 'list')).json<{ name: string }[]>().map((e) => e.name).sort(), ['base', 'old2']);
      assert.deepEqual(entries(), ['admin-own.conf', 'sysprime-base.conf', 'sysprime-old2.conf']);
    });
  });
}
