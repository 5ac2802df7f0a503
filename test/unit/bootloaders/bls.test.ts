import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_PATTERN,
  blsNameProblem,
  entryFileName,
  globMatch,
  parseBlsEntry,
  parseEntryFileName,
  predictBoot,
  renderBlsEntry,
  rootArgsFor,
  withLoaderDefault,
  type SortableEntry,
} from '../../../src/bootloaders/bls.js';
import { computeEntries } from '../../../src/bootloaders/entries.js';
import type { BootEnvironment, KernelPair } from '../../../src/bootloaders/types.js';

const kernel = (tree: string): KernelPair => ({
  version: '6.1.0-13-amd64',
  kernel: `${tree}/boot/vmlinuz-6.1.0-13-amd64`,
  initrd: `${tree}/boot/initrd.img-6.1.0-13-amd64`,
  kernelInTree: '/boot/vmlinuz-6.1.0-13-amd64',
  initrdInTree: '/boot/initrd.img-6.1.0-13-amd64',
});

const env = (name: string, generation: number, fs: 'btrfs' | 'zfs' = 'btrfs'): BootEnvironment => {
  const root = fs === 'btrfs' ? { fs, uuid: '1234-abcd', subvolume: `ROOT/${name}` } as const : { fs, pool: 'tank', dataset: `tank/ROOT/${name}` } as const;
  return { name, generation, created: new Date(Date.UTC(2026, 10, 20 + generation)), rootArgs: rootArgsFor(root), cmdline: 'quiet', root, tree: `/trees/${name}` };
};

test('root arguments for Btrfs and ZFS', () => {
  assert.equal(rootArgsFor({ fs: 'btrfs', uuid: 'u-1', subvolume: 'ROOT/a' }), 'root=UUID=u-1 rootflags=subvol=ROOT/a');
  assert.equal(rootArgsFor({ fs: 'zfs', pool: 'tank', dataset: 'tank/ROOT/a' }), 'root=ZFS=tank/ROOT/a');
  // With a boot pool the entry names the environment's own boot dataset: sysprime-boot-generator mounts it at /boot.
  assert.equal(rootArgsFor({ fs: 'zfs', pool: 'rpool', dataset: 'rpool/ROOT/a', boot: { pool: 'bpool', dataset: 'bpool/BOOT/a' } }), 'root=ZFS=rpool/ROOT/a sysprime.boot=bpool/BOOT/a');
});

test('an entry renders to the expected text', () => {
  const { entries } = computeEntries([env('gen-2', 2)], kernel);
  const text = renderBlsEntry(entries[0]!, { linux: '/sysprime/gen-2/vmlinuz-6.1.0-13-amd64', initrd: '/sysprime/gen-2/initrd.img-6.1.0-13-amd64' }, 'default');
  assert.equal(
    text,
    [
      '# Written by sysprime; rewritten on every change of the environments. Edit sysprime.toml, not this file.',
      'title gen-2 (generation 2, 2026-11-22)',
      'sort-key sysprime-1-default',
      'version 2',
      'linux /sysprime/gen-2/vmlinuz-6.1.0-13-amd64',
      'initrd /sysprime/gen-2/initrd.img-6.1.0-13-amd64',
      'options root=UUID=1234-abcd rootflags=subvol=ROOT/gen-2 quiet',
      '',
    ].join('\n'),
  );
  const fields = parseBlsEntry(text);
  assert.deepEqual(fields.get('options'), ['root=UUID=1234-abcd rootflags=subvol=ROOT/gen-2 quiet']);
  assert.deepEqual(fields.get('version'), ['2']);
});

test('entries come newest first; an environment without a kernel gets a warning instead', () => {
  const { entries, warnings } = computeEntries([env('a', 1), env('b', 3), env('nok', 2)], (tree) => (tree.endsWith('nok') ? null : kernel(tree)));
  assert.deepEqual(entries.map((e) => e.name), ['b', 'a']);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /"nok" has no kernel/);
  assert.equal(entries[0]!.options, 'root=UUID=1234-abcd rootflags=subvol=ROOT/b quiet');
});

test('file names carry the boot counter and parse back', () => {
  assert.equal(entryFileName('gen-2', { state: 'blessed' }), 'sysprime-gen-2.conf');
  assert.equal(entryFileName('gen-2', { state: 'counting', left: 3, done: 0 }), 'sysprime-gen-2+3.conf');
  assert.equal(entryFileName('gen-2', { state: 'counting', left: 2, done: 1 }), 'sysprime-gen-2+2-1.conf');
  assert.equal(entryFileName('gen-2', { state: 'bad', done: 3 }), 'sysprime-gen-2+0-3.conf');
  assert.deepEqual(parseEntryFileName('sysprime-gen-2+2-1.conf'), { name: 'gen-2', counting: { state: 'counting', left: 2, done: 1 } });
  assert.deepEqual(parseEntryFileName('sysprime-gen-2+0-3.conf'), { name: 'gen-2', counting: { state: 'bad', done: 3 } });
  assert.deepEqual(parseEntryFileName('sysprime-a+b.conf'), { name: 'a+b', counting: { state: 'blessed' } });
  assert.equal(parseEntryFileName('debian.conf'), null);
  assert.equal(parseEntryFileName('sysprime-x.conf.sysprime-tmp'), null);
  assert.notEqual(blsNameProblem('x+3'), null);
  assert.equal(blsNameProblem('a+b'), null);
});

test("loader.conf: the default line is replaced, the admin's other lines kept", () => {
  const before = '# my settings\ntimeout 5\ndefault debian-*\nconsole-mode max\ndefault other\n';
  assert.equal(withLoaderDefault(before, DEFAULT_PATTERN), '# my settings\ntimeout 5\ndefault sysprime-*\nconsole-mode max\n');
  assert.equal(withLoaderDefault('timeout 3', DEFAULT_PATTERN), 'timeout 3\ndefault sysprime-*\n');
  assert.equal(withLoaderDefault('', DEFAULT_PATTERN), 'default sysprime-*\n');
});

test('glob matching as systemd-boot does it, case-insensitive', () => {
  assert.ok(globMatch('sysprime-*', 'sysprime-gen-2+3.conf'));
  assert.ok(globMatch('SYSPRIME-*', 'sysprime-a.conf'));
  assert.ok(globMatch('sysprime-gen-?.conf', 'sysprime-gen-2.conf'));
  assert.ok(globMatch('sysprime-gen-[0-9].conf', 'sysprime-gen-7.conf'));
  assert.ok(!globMatch('sysprime-*', 'debian.conf'));
  assert.ok(!globMatch('sysprime-gen-?.conf', 'sysprime-gen-10.conf'));
});

test('the default boots while it has tries; when they run out the fallback does', () => {
  const e = (id: string, sortKey: string, version: string, counting: SortableEntry['counting']): SortableEntry => ({ id, sortKey, version, counting });
  const admin = e('debian.conf', 'debian', '6.1', { state: 'blessed' });
  const fallback = e('sysprime-gen-1.conf', 'sysprime-2-fallback', '1', { state: 'blessed' });
  const newer = e('sysprime-gen-3.conf', 'sysprime-3', '3', { state: 'blessed' });
  const trying = e('sysprime-gen-2+1-2.conf', 'sysprime-1-default', '2', { state: 'counting', left: 1, done: 2 });
  assert.equal(predictBoot([admin, newer, fallback, trying], { defaultPattern: DEFAULT_PATTERN })?.id, 'sysprime-gen-2+1-2.conf');
  const failed = e('sysprime-gen-2+0-3.conf', 'sysprime-1-default', '2', { state: 'bad', done: 3 });
  assert.equal(predictBoot([admin, newer, fallback, failed], { defaultPattern: DEFAULT_PATTERN })?.id, 'sysprime-gen-1.conf');
  assert.equal(predictBoot([admin, newer, fallback, failed], { defaultPattern: DEFAULT_PATTERN, oneShot: 'sysprime-gen-3.conf' })?.id, 'sysprime-gen-3.conf');
});

test('a description goes into the BLS title as written, on its one line', () => {
  const described: BootEnvironment = { ...env('gen-2', 2), description: `"quoted" it's $x # not a comment` };
  const { entries } = computeEntries([described], kernel);
  const text = renderBlsEntry(entries[0]!, { linux: '/l', initrd: null }, 'other');
  assert.match(text, /^title gen-2: "quoted" it's \$x # not a comment \(generation 2, 2026-11-22\)$/m);
  assert.deepEqual(parseBlsEntry(text).get('title'), [`gen-2: "quoted" it's $x # not a comment (generation 2, 2026-11-22)`]);
  assert.equal(text.split('\n').filter((l) => l.startsWith('title')).length, 1);
});
