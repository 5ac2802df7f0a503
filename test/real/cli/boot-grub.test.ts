/**
 * GRUB through the verbs, on Btrfs and on ZFS: the generated menu
 * (sysprime.cfg) and grubenv (saved_entry, next_entry, greenboot's counting
 * variables) follow init, create, stage, activate, activate --once, rename,
 * destroy and prune, and doctor finds and repairs every kind of drift. GRUB's
 * directory is a scratch one: nothing of this machine's boot is touched, and
 * neither update-grub nor grub-install runs.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KINDS } from '../../fixtures/scratch.js';
import { run } from '../../../src/process/run.js';
import { menuBlocks, parseGrubenv } from '../../../src/bootloaders/grub/menu.js';
import { KERNEL, grubToml, makeBootScratch, removeKernels, replaceKernel, type BootScratch } from './boot-setup.js';

for (const kind of KINDS) {
  describe(`boot entries on ${kind} with GRUB`, () => {
    let b: BootScratch;
    const menuPath = () => join(b.dir, 'boot/grub/sysprime.cfg');
    const menu = () => readFileSync(menuPath(), 'utf8');
    const ids = () => [...menuBlocks(menu()).keys()].sort();
    const grubenv = () => parseGrubenv(readFileSync(join(b.dir, 'boot/grub/grubenv'), 'utf8'));
    const editenv = (...args: string[]) => run('grub-editenv', [join(b.dir, 'boot/grub/grubenv'), ...args]);
    const ok = async (...args: string[]) => {
      const r = await b.sp(...args);
      assert.equal(r.code, 0, `sysprime ${args.join(' ')}: ${r.stderr}`);
      return r;
    };

    before(async () => {
      b = await makeBootScratch(kind, grubToml);
    });
    after(async () => {
      await b?.cleanup();
    });

    test('init writes a menu entry that loads the kernel from the environment, and makes it the saved default', async () => {
      await ok('init', '--adopt', b.s.adopt, '--name', 'base');
      assert.deepEqual(ids(), ['sysprime-base']);
      const block = menuBlocks(menu()).get('sysprime-base')!;
      if (kind === 'btrfs') {
        assert.match(block, new RegExp(`^\\tlinux /ROOT/base/boot/vmlinuz-${KERNEL} root=UUID=\\S+ rootflags=subvol=ROOT/base$`, 'm'));
        assert.match(block, /search --no-floppy --fs-uuid --set=root/);
      } else {
        assert.match(block, new RegExp(`^\\tlinux /ROOT/base@/boot/vmlinuz-${KERNEL} root=ZFS=\\S+/ROOT/base$`, 'm'));
        assert.match(block, new RegExp(`search --no-floppy --label --set=root ${b.s.where}`));
      }
      assert.match(block, new RegExp(`^\\tinitrd \\S+/boot/initrd.img-${KERNEL}$`, 'm'));
      assert.equal(grubenv().get('saved_entry'), 'sysprime-base');
    });

    test('create adds an entry; stage adds one that counts its tries in grubenv, without becoming the default', async () => {
      await ok('create', 'copy');
      await ok('stage');
      assert.deepEqual(ids(), ['sysprime-base', 'sysprime-copy', 'sysprime-gen-1']);
      const env = grubenv();
      assert.equal(env.get('boot_counter'), '3');
      assert.equal(env.get('boot_success'), '0');
      assert.equal(env.get('sysprime_counting'), 'sysprime-gen-1');
      assert.equal(env.get('sysprime_tries'), '3');
      assert.equal(env.get('sysprime_fallback'), 'sysprime-base');
      assert.equal(env.get('saved_entry'), 'sysprime-base');
      // The menu's counting block is what lowers boot_counter at each boot.
      assert.match(menu(), /elif \[ "\$\{boot_counter\}" = "3" \]; then set boot_counter=2/);
    });

    test('activate sets the saved default; a later sync never restarts the counter', async () => {
      await ok('activate', 'gen-1');
      assert.equal(grubenv().get('saved_entry'), 'sysprime-gen-1');
      // GRUB used two tries; a verb that rewrites the menu must not give them back.
      await editenv('set', 'boot_counter=1');
      await ok('create', 'spare');
      assert.equal(grubenv().get('boot_counter'), '1');
      const status = (await ok('--json', 'status')).json<{ nextBoot: string }>();
      assert.equal(status.nextBoot, 'gen-1');
    });

    test('activate --once sets next_entry as grub-reboot does; the saved default stays', async () => {
      await ok('activate', '--once', 'copy');
      assert.equal(grubenv().get('next_entry'), 'sysprime-copy');
      assert.equal(grubenv().get('saved_entry'), 'sysprime-gen-1');
      assert.equal((await ok('--json', 'status')).json<{ nextBoot: string }>().nextBoot, 'copy');
    });

    test('rename moves the entry (and drops a one-shot that named the old one); destroy removes it', async () => {
      await ok('rename', 'copy', 'renamed');
      assert.deepEqual(ids(), ['sysprime-base', 'sysprime-gen-1', 'sysprime-renamed', 'sysprime-spare']);
      assert.match(menuBlocks(menu()).get('sysprime-renamed')!, /ROOT\/renamed/);
      assert.equal(grubenv().has('next_entry'), false, 'GRUB would look for an entry that is gone');
      await ok('destroy', 'renamed');
      await ok('destroy', 'spare');
      assert.deepEqual(ids(), ['sysprime-base', 'sysprime-gen-1']);
      assert.equal(grubenv().get('sysprime_counting'), 'sysprime-gen-1', 'the trial of gen-1 goes on');
    });

    test('doctor finds every kind of drift and --fix repairs what can be repaired', async () => {
      await ok('create', 'bare');
      const blocks = menuBlocks(menu());
      // An entry deleted by hand, one for an environment that does not exist, a saved default changed by hand.
      const text = menu()
        .replace(`${blocks.get('sysprime-base')!}\n`, '')
        .concat(`${blocks.get('sysprime-bare')!.replace(/sysprime-bare/g, 'sysprime-ghost').replace(/ROOT\/bare/g, 'ROOT/ghost')}\n`);
      writeFileSync(menuPath(), text);
      await editenv('set', 'saved_entry=sysprime-bare');
      // gen-1's kernel was upgraded: its entry loads a file that is gone.
      await b.inTree('gen-1', (root) => replaceKernel(root, '6.1.0-29-amd64'));
      const r = await b.sp('--json', 'doctor');
      assert.equal(r.code, 1, r.stderr);
      const kinds = r.json<{ problems: { kind: string }[] }>().problems.map((p) => p.kind).sort();
      assert.deepEqual(kinds, ['default', 'entry-missing', 'entry-orphaned', 'kernel-missing']);
      await ok('doctor', '--fix');
      assert.deepEqual(ids(), ['sysprime-bare', 'sysprime-base', 'sysprime-gen-1']);
      assert.match(menuBlocks(menu()).get('sysprime-gen-1')!, /vmlinuz-6\.1\.0-29-amd64/);
      assert.equal(grubenv().get('saved_entry'), 'sysprime-gen-1');
      const again = await b.sp('doctor');
      assert.equal(again.code, 0, again.stdout);
      assert.match(again.stdout, /no problems found/);
    });

    test('doctor reports an environment that lost its kernel; its entry goes until it has one again', async () => {
      await b.inTree('bare', (root) => removeKernels(root));
      const r = await b.sp('--json', 'doctor');
      assert.equal(r.code, 1, r.stderr);
      assert.deepEqual(r.json<{ problems: { kind: string }[] }>().problems.map((p) => p.kind).sort(), ['kernel-missing', 'no-kernel']);
      await ok('doctor', '--fix');
      assert.deepEqual(ids(), ['sysprime-base', 'sysprime-gen-1']);
      const still = await b.sp('--json', 'doctor');
      assert.deepEqual(still.json<{ problems: { kind: string }[] }>().problems.map((p) => p.kind), ['no-kernel']);
      await b.inTree('bare', (root) => replaceKernel(root, KERNEL));
      await ok('doctor', '--fix');
      assert.deepEqual(ids(), ['sysprime-bare', 'sysprime-base', 'sysprime-gen-1']);
      assert.match((await ok('doctor')).stdout, /no problems found/);
    });

    test('list shows what prune would free; prune removes environments and their entries together', async () => {
      for (const n of ['old1', 'old2', 'old3']) await ok('create', n);
      // Six environments, [retention] keep = 5: the oldest would go. Btrfs cannot say what a subvolume alone holds.
      const amount = kind === 'btrfs' ? 'an unknown amount' : '\\d+(\\.\\d)?[BKMG]';
      assert.match((await ok('list')).stdout, new RegExp(`^prune would free ${amount} \\(destroying 1 environment: base\\)$`, 'm'));
      const listed = (await ok('--json', 'list')).json<{ name: string; prune: boolean }[]>();
      assert.ok(Array.isArray(listed), 'list --json stays an array of environments');
      assert.deepEqual(listed.filter((e) => e.prune).map((e) => e.name), ['base']);
      await ok('prune', '--keep', '2');
      const left = (await ok('--json', 'list')).json<{ name: string }[]>().map((e) => e.name).sort();
      assert.deepEqual(ids(), left.map((n) => `sysprime-${n}`).sort());
      assert.ok(left.includes('gen-1'), 'the default is never pruned');
    });
  });
}
