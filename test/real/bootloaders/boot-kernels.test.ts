/**
 * Kernels mirrored from a /boot partition into an environment's own /boot
 * (src/environments/boot-kernels.ts): what differs is copied, what the
 * partition no longer has goes, nothing else is touched, links are not
 * followed.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OWNER_FILE, isKernelFile, mirrorKernels, separateBoot, syncKernels } from '../../../src/environments/boot-kernels.js';

const scratch = mkdtempSync(join(tmpdir(), 'sysprime-kernels-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test('kernel files are told from the rest of /boot', () => {
  for (const n of ['vmlinuz-6.1.0-28-amd64', 'initrd.img-6.1.0-28-amd64', 'config-6.1.0-28-amd64', 'System.map-6.1.0-28-amd64', 'initramfs-6.8.9-300.fc40.x86_64.img']) assert.ok(isKernelFile(n), n);
  for (const n of ['grub', 'efi', 'vmlinuz', 'initrd.img-6.1.0-28-amd64.dpkg-tmp', 'vmlinuz-6.1.0-30-amd64.dpkg-new', 'lost+found']) assert.ok(!isKernelFile(n), n);
});

test('a mount at /boot on another device than / is a partition of its own; a /boot inside the root is not', () => {
  const line = (id: number, dev: string, point: string, fs: string) => `${id} 1 ${dev} / ${point} rw,relatime shared:${id} - ${fs} /dev/x rw`;
  assert.equal(separateBoot([line(21, '0:30', '/', 'btrfs'), line(22, '254:1', '/boot', 'ext4'), line(23, '254:2', '/boot/efi', 'vfat')].join('\n')), '/boot');
  assert.equal(separateBoot([line(21, '0:30', '/', 'btrfs'), line(23, '254:2', '/boot/efi', 'vfat')].join('\n')), null);
});

test('the mirror copies what differs, removes kernels the partition lost, and leaves the rest', async () => {
  const from = join(scratch, 'partition');
  const tree = join(scratch, 'env');
  mkdirSync(join(from, 'grub'), { recursive: true });
  mkdirSync(join(tree, 'boot'), { recursive: true });
  writeFileSync(join(from, 'vmlinuz-6.1.0-28-amd64'), 'kernel 28\n');
  writeFileSync(join(from, 'initrd.img-6.1.0-28-amd64'), 'initrd 28 regenerated\n');
  writeFileSync(join(from, 'grub', 'grub.cfg'), 'menu\n');
  writeFileSync(join(tree, 'boot', 'vmlinuz-6.1.0-28-amd64'), 'kernel 28\n');
  writeFileSync(join(tree, 'boot', 'initrd.img-6.1.0-28-amd64'), 'initrd 28 old one!!\n');
  writeFileSync(join(tree, 'boot', 'vmlinuz-6.1.0-26-amd64'), 'kernel 26\n');
  writeFileSync(join(tree, 'boot', 'notes.txt'), 'the admin\'s\n');
  const r = await mirrorKernels(from, tree);
  assert.deepEqual(r, { copied: ['initrd.img-6.1.0-28-amd64'], removed: ['vmlinuz-6.1.0-26-amd64'] });
  assert.equal(readFileSync(join(tree, 'boot', 'initrd.img-6.1.0-28-amd64'), 'utf8'), 'initrd 28 regenerated\n', 'same size, other bytes: copied');
  assert.equal(readFileSync(join(tree, 'boot', 'notes.txt'), 'utf8'), 'the admin\'s\n');
  assert.ok(!existsSync(join(tree, 'boot', 'grub')));
  assert.deepEqual(await mirrorKernels(from, tree), { copied: [], removed: [] }, 'nothing to do the second time');
});

test('a link in the environment is replaced, never written through', async () => {
  const from = join(scratch, 'p2');
  const tree = join(scratch, 'e2');
  const victim = join(scratch, 'victim');
  mkdirSync(from);
  mkdirSync(join(tree, 'boot'), { recursive: true });
  writeFileSync(victim, 'host file\n');
  writeFileSync(join(from, 'vmlinuz-6.1.0-28-amd64'), 'kernel 28\n');
  symlinkSync(victim, join(tree, 'boot', 'vmlinuz-6.1.0-28-amd64'));
  await mirrorKernels(from, tree);
  assert.equal(readFileSync(victim, 'utf8'), 'host file\n');
  assert.equal(readFileSync(join(tree, 'boot', 'vmlinuz-6.1.0-28-amd64'), 'utf8'), 'kernel 28\n');
});

test('the partition follows the environment that runs: a staged one\'s first boot puts its kernels there, never the other way round', async () => {
  const partition = join(scratch, 'p3');
  const a = join(scratch, 'a3');
  const b = join(scratch, 'b3');
  for (const d of [partition, join(a, 'boot'), join(b, 'boot')]) mkdirSync(d, { recursive: true });
  writeFileSync(join(partition, 'vmlinuz-6.1.0-28-amd64'), 'kernel 28\n');
  writeFileSync(join(partition, 'initrd.img-6.1.0-28-amd64'), 'initrd 28 of a\n');
  // init: the partition is the adopted root's.
  assert.equal(await syncKernels(partition, a, { name: 'a' }, true), 'into-environment');
  assert.equal(readFileSync(join(partition, OWNER_FILE), 'utf8'), 'a\n');
  // Staged "b" got kernel 30 in its own /boot (apt ran in the clone, where the partition is not mounted).
  writeFileSync(join(b, 'boot', 'vmlinuz-6.1.0-30-amd64'), 'kernel 30\n');
  writeFileSync(join(b, 'boot', 'initrd.img-6.1.0-30-amd64'), 'initrd 30 of b\n');
  // b's first boot: the partition takes b's kernels; b's own stay as they are.
  assert.equal(await syncKernels(partition, b, { name: 'b' }), 'onto-partition');
  assert.equal(readFileSync(join(b, 'boot', 'vmlinuz-6.1.0-30-amd64'), 'utf8'), 'kernel 30\n', 'the staged kernel is not removed');
  assert.ok(!existsSync(join(b, 'boot', 'vmlinuz-6.1.0-28-amd64')));
  assert.equal(readFileSync(join(partition, 'vmlinuz-6.1.0-30-amd64'), 'utf8'), 'kernel 30\n');
  assert.ok(!existsSync(join(partition, 'vmlinuz-6.1.0-28-amd64')), 'the partition matches what b booted');
  assert.equal(readFileSync(join(a, 'boot', 'initrd.img-6.1.0-28-amd64'), 'utf8'), 'initrd 28 of a\n', 'a keeps its own');
  // apt in the running "b" regenerates its initramfs on the partition: b's tree follows.
  writeFileSync(join(partition, 'initrd.img-6.1.0-30-amd64'), 'initrd 30 of b, again\n');
  assert.equal(await syncKernels(partition, b, { name: 'b' }), 'into-environment');
  assert.equal(readFileSync(join(b, 'boot', 'initrd.img-6.1.0-30-amd64'), 'utf8'), 'initrd 30 of b, again\n');
  // Back to "a" (yesterday's): the partition holds a's kernels again.
  assert.equal(await syncKernels(partition, a, { name: 'a' }), 'onto-partition');
  assert.equal(readFileSync(join(partition, 'initrd.img-6.1.0-28-amd64'), 'utf8'), 'initrd 28 of a\n');
  assert.ok(!existsSync(join(partition, 'vmlinuz-6.1.0-30-amd64')));
});
