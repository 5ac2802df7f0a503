/**
 * Boot entries follow every verb on real pools: a systemd-boot ESP (a plain
 * directory here: nothing of this machine's own boot is touched) gets an
 * entry and the kernel of each environment; stage adds a counting entry;
 * rename, destroy and prune keep entries and environments in step; doctor
 * finds and repairs drift between them.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KINDS } from '../../fixtures/scratch.js';
import { KERNEL, makeBootScratch, removeKernels, replaceKernel, type BootScratch } from './boot-setup.js';

for (const kind of KINDS) {
  describe(`boot entries on ${kind} with systemd-boot`, () => {
    let b: BootScratch;
    let esp: string;
    const sp = (...args: string[]) => b.sp(...args);
    const entries = () => readdirSync(join(esp, 'loader/entries')).sort();
    const kernels = () => (existsSync(join(esp, 'sysprime')) ? readdirSync(join(esp, 'sysprime')).sort() : []);

    before(async () => {
      b = await makeBootScratch(kind, (dir) => {
        esp = join(dir, 'esp');
        mkdirSync(join(esp, 'loader/entries'), { recursive: true });
        writeFileSync(join(esp, 'loader/entries/admin-own.conf'), 'title Admin\nlinux /vmlinuz\n');
        return `loader = "systemd-boot"\nesp = "${esp}"\n`;
      });
    });
    after(async () => {
      await b?.cleanup();
    });

    test('init writes an entry and copies the kernel', async () => {
      const r = await sp('init', '--adopt', b.s.adopt, '--name', 'base');
      assert.equal(r.code, 0, r.stderr);
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

    test('doctor finds a kernel missing on the ESP and an environment that lost its kernel', async () => {
      rmSync(join(esp, 'sysprime/base'), { recursive: true });
      await b.inTree('gen-1', removeKernels);
      const r = await sp('--json', 'doctor');
      assert.equal(r.code, 1, r.stderr);
      assert.deepEqual(r.json<{ problems: { kind: string }[] }>().problems.map((p) => p.kind).sort(), ['kernel-missing', 'kernel-missing', 'no-kernel']);
      assert.equal((await sp('doctor', '--fix')).code, 0);
      assert.deepEqual(kernels(), ['base']);
      assert.ok(!entries().some((e) => e.startsWith('sysprime-gen-1')), 'no entry that cannot boot');
      await b.inTree('gen-1', (root) => replaceKernel(root, KERNEL));
      assert.equal((await sp('doctor', '--fix')).code, 0);
      assert.deepEqual(kernels(), ['base', 'gen-1']);
      assert.match((await sp('doctor')).stdout, /no problems found/);
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
