import { test } from 'node:test';
import assert from 'node:assert/strict';
import { grubPath, grubQuote, grubWords, splitKernelArgs, menuBlocks, menuIds, menuTitle, parseGrubenv, renderCountingBlock, renderGrubMenu, renderMenuEntry } from '../../../src/bootloaders/grub/menu.js';
import { bootedFromCmdline, loadedFiles } from '../../../src/bootloaders/grub/index.js';
import { computeEntries } from '../../../src/bootloaders/entries.js';
import { rootArgsFor } from '../../../src/bootloaders/bls.js';
import type { BootEnvironment, KernelPair, RootLocation } from '../../../src/bootloaders/types.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';

const kernel = (): KernelPair => ({
  version: '6.1.0-13-amd64',
  kernel: '/x/boot/vmlinuz-6.1.0-13-amd64',
  initrd: '/x/boot/initrd.img-6.1.0-13-amd64',
  kernelInTree: '/boot/vmlinuz-6.1.0-13-amd64',
  initrdInTree: '/boot/initrd.img-6.1.0-13-amd64',
});

function entryFor(root: RootLocation, cmdline = 'quiet', description: string | null = null) {
  const env: BootEnvironment = { name: 'gen-4', generation: 4, created: new Date(Date.UTC(2026, 10, 22)), description, rootArgs: rootArgsFor(root), cmdline, root, tree: '/x' };
  return computeEntries([env], kernel).entries[0]!;
}

test('a Btrfs menu entry reads the kernel from the subvolume', () => {
  assert.equal(
    renderMenuEntry(entryFor({ fs: 'btrfs', uuid: '0a1b-22', subvolume: 'ROOT/gen-4' })),
    [
      "menuentry 'gen-4 (generation 4, 2026-11-22)' --class gnu-linux --class os --id sysprime-gen-4 {",
      '\t# sysprime generation 4',
      '\tinsmod btrfs',
      '\tsearch --no-floppy --fs-uuid --set=root 0a1b-22',
      "\techo 'Loading gen-4 (Linux 6.1.0-13-amd64) ...'",
      '\tlinux /ROOT/gen-4/boot/vmlinuz-6.1.0-13-amd64 root=UUID=0a1b-22 rootflags=subvol=ROOT/gen-4 quiet',
      '\tinitrd /ROOT/gen-4/boot/initrd.img-6.1.0-13-amd64',
      '}',
    ].join('\n'),
  );
});

test('a ZFS menu entry uses GRUB\'s dataset@/path form', () => {
  assert.equal(
    renderMenuEntry(entryFor({ fs: 'zfs', pool: 'rpool', dataset: 'rpool/ROOT/gen-4' }, 'quiet init_on_alloc="1 2"')),
    [
      "menuentry 'gen-4 (generation 4, 2026-11-22)' --class gnu-linux --class os --id sysprime-gen-4 {",
      '\t# sysprime generation 4',
      '\tinsmod zfs',
      '\tsearch --no-floppy --label --set=root rpool',
      "\techo 'Loading gen-4 (Linux 6.1.0-13-amd64) ...'",
      `\tlinux /ROOT/gen-4@/boot/vmlinuz-6.1.0-13-amd64 root=ZFS=rpool/ROOT/gen-4 quiet 'init_on_alloc="1 2"'`,
      '\tinitrd /ROOT/gen-4@/boot/initrd.img-6.1.0-13-amd64',
      '}',
    ].join('\n'),
  );
});

test('with a boot pool, a ZFS entry reads its kernel from its own boot dataset in the boot pool, and the root from its root', () => {
  const root: RootLocation = { fs: 'zfs', pool: 'rpool', dataset: 'rpool/ROOT/gen-4', boot: { pool: 'bpool', dataset: 'bpool/BOOT/gen-4' } };
  const block = renderMenuEntry(entryFor(root));
  assert.equal(
    block,
    [
      "menuentry 'gen-4 (generation 4, 2026-11-22)' --class gnu-linux --class os --id sysprime-gen-4 {",
      '\t# sysprime generation 4',
      '\tinsmod zfs',
      '\tsearch --no-floppy --label --set=root bpool',
      "\techo 'Loading gen-4 (Linux 6.1.0-13-amd64) ...'",
      '\tlinux /BOOT/gen-4@/vmlinuz-6.1.0-13-amd64 root=ZFS=rpool/ROOT/gen-4 sysprime.boot=bpool/BOOT/gen-4 quiet',
      '\tinitrd /BOOT/gen-4@/initrd.img-6.1.0-13-amd64',
      '}',
    ].join('\n'),
  );
  // Read back as the environment's own /boot files, and the booted environment found from BOOT_IMAGE.
  assert.deepEqual(loadedFiles(block), ['/boot/vmlinuz-6.1.0-13-amd64', '/boot/initrd.img-6.1.0-13-amd64']);
  assert.equal(bootedFromCmdline('BOOT_IMAGE=/BOOT/gen-4@/vmlinuz-6.1.0-13-amd64 root=ZFS=rpool/ROOT/gen-4 ro'), 'gen-4');
  // A kernel outside /boot (none in the boot dataset) is read from the root, in the root pool.
  assert.equal(grubPath({ root }, '/vmlinuz'), '/ROOT/gen-4@/vmlinuz');
});

test('quoting keeps GRUB from expanding variables; quoted kernel arguments stay whole', () => {
  assert.deepEqual(splitKernelArgs('a  b="c d" e'), ['a', 'b="c d"', 'e']);
  assert.equal(grubQuote('plain-word_1.2'), 'plain-word_1.2');
  assert.equal(grubQuote('a$b'), "'a$b'");
  assert.equal(grubQuote("it's"), `'it'\\''s'`);
});

test('the counting block steps the counter down and falls back at zero', () => {
  const block = renderCountingBlock(3);
  assert.equal(
    block,
    [
      '# Boot counting for a freshly staged environment (see docs/boot.md).',
      'if [ -n "${sysprime_fallback}" -a -n "${boot_counter}" -a "${boot_success}" = "0" ]; then',
      '  if [ "${boot_counter}" = "0" -o "${boot_counter}" = "-1" ]; then',
      '    set default="${sysprime_fallback}"',
      '    set boot_counter=-1',
      '  elif [ "${boot_counter}" = "1" ]; then set boot_counter=0',
      '  elif [ "${boot_counter}" = "2" ]; then set boot_counter=1',
      '  elif [ "${boot_counter}" = "3" ]; then set boot_counter=2',
      '  fi',
      '  save_env boot_counter',
      'fi',
      'set boot_success=0',
      'save_env boot_success',
    ].join('\n'),
  );
});

test('a whole menu lists its ids and blocks back', () => {
  const e = entryFor({ fs: 'btrfs', uuid: 'u', subvolume: 'ROOT/gen-4' });
  const text = renderGrubMenu([e, { ...e, id: 'sysprime-gen-3', name: 'gen-3' }]);
  assert.deepEqual(menuIds(text), ['sysprime-gen-4', 'sysprime-gen-3']);
  assert.deepEqual([...menuBlocks(text).keys()], ['sysprime-gen-4', 'sysprime-gen-3']);
  assert.match(text, /elif \[ "\$\{boot_counter\}" = "99" \]; then set boot_counter=98/);
});

test('grubenv and BOOT_IMAGE are read', () => {
  const env = parseGrubenv('# GRUB Environment Block\nsaved_entry=sysprime-a\nboot_counter=2\n##########\n');
  assert.equal(env.get('saved_entry'), 'sysprime-a');
  assert.equal(env.get('boot_counter'), '2');
  assert.equal(bootedFromCmdline('BOOT_IMAGE=/ROOT/gen-4/boot/vmlinuz-6.1 root=UUID=x'), 'gen-4');
  assert.equal(bootedFromCmdline('BOOT_IMAGE=/ROOT/gen-4@/boot/vmlinuz-6.1 root=ZFS=p/ROOT/gen-4'), 'gen-4');
  assert.equal(bootedFromCmdline('root=/dev/sda1'), null);
});

test('the files a menu entry loads are found as paths inside the environment', () => {
  const block = [
    "menuentry 'a' --id sysprime-a {",
    '\tlinux /ROOT/a/boot/vmlinuz-6.1 root=UUID=u',
    "\tinitrd '/ROOT/a@/boot/initrd.img-6.1'",
    '}',
  ].join('\n');
  assert.deepEqual(loadedFiles(block), ['/boot/vmlinuz-6.1', '/boot/initrd.img-6.1']);
  assert.deepEqual(loadedFiles("menuentry 'x' --id sysprime-x {\n}"), []);
});

/** Descriptions an admin may write that mean something to GRUB's script: quotes, variables, separators, braces, comments, escapes. */
const HOSTILE = [
  "it's known good",
  "'; reboot; echo '",
  '$root ${prefix} $(x)',
  '"double" and \\ backslash \\\' odd',
  'a; b && c | d',
  '} menuentry evil { linux /x',
  '# not a comment',
  "--id 'sysprime-other' {",
  'Übergang — vor 6.12 ✓',
  "''",
  "\\'",
];

test('a description goes into the GRUB title quoted: GRUB reads back exactly the title, and nothing else changes', () => {
  for (const d of HOSTILE) {
    const e = entryFor({ fs: 'btrfs', uuid: 'u', subvolume: 'ROOT/gen-4' }, 'quiet', d);
    assert.equal(e.title, `gen-4: ${d} (generation 4, 2026-11-22)`);
    const block = renderMenuEntry(e);
    const [first, ...rest] = block.split('\n');
    assert.deepEqual(grubWords(first!), ['menuentry', e.title, '--class', 'gnu-linux', '--class', 'os', '--id', 'sysprime-gen-4', '{'], d);
    assert.equal(menuTitle(block), e.title, d);
    // Only the first line carries it; ids and blocks are found as before.
    assert.ok(rest.every((l) => !l.includes(d)), d);
    const menu = renderGrubMenu([e]);
    assert.deepEqual(menuIds(menu), ['sysprime-gen-4'], d);
    assert.deepEqual([...menuBlocks(menu).keys()], ['sysprime-gen-4'], d);
  }
  assert.equal(entryFor({ fs: 'btrfs', uuid: 'u', subvolume: 'ROOT/gen-4' }).title, 'gen-4 (generation 4, 2026-11-22)', 'no description, no colon');
});

test('GRUB words: single quotes keep everything, backslashes escape outside them, double quotes escape only $ " \\', () => {
  assert.deepEqual(grubWords(`menuentry 'a b' c\\ d "e \\$f \\x" 'g'\\''h'`), ['menuentry', 'a b', 'c d', 'e $f \\x', "g'h"]);
  for (const w of HOSTILE) assert.deepEqual(grubWords(grubQuote(w)), [w], w);
});

test('grub-script-check accepts a menu whose titles hold every hostile description', async (t) => {
  if ((await run('sh', ['-c', 'command -v grub-script-check'], { allowFailure: true })).exitCode !== 0) return t.skip('grub-script-check is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-grub-title-'));
  try {
    const entries = HOSTILE.map((d, i) => ({ ...entryFor({ fs: 'zfs', pool: 'rpool', dataset: `rpool/ROOT/e${i}` }, 'quiet', d), id: `sysprime-e${i}`, name: `e${i}` }));
    const file = join(dir, 'sysprime.cfg');
    writeFileSync(file, renderGrubMenu(entries));
    const res = await run('grub-script-check', [file], { allowFailure: true });
    assert.equal(res.exitCode, 0, res.stderr || res.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
