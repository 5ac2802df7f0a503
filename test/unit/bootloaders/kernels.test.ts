import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareVersions, findKernel, pickNewestKernel } from '../../../src/bootloaders/kernels.js';

test('versions compare the way dpkg compares them', () => {
  const ascending = ['6.1.0-9-amd64', '6.1.0-13-amd64', '6.2~rc1', '6.2', '6.2.1', '6.10', '1:0.1'];
  for (let i = 0; i + 1 < ascending.length; i++) {
    assert.ok(compareVersions(ascending[i]!, ascending[i + 1]!) < 0, `${ascending[i]} < ${ascending[i + 1]}`);
    assert.ok(compareVersions(ascending[i + 1]!, ascending[i]!) > 0, `${ascending[i + 1]} > ${ascending[i]}`);
  }
  assert.equal(compareVersions('6.1.0-13-amd64', '6.1.0-13-amd64'), 0);
  assert.equal(compareVersions('1.0', '1.00'), 0);
  assert.ok(compareVersions('1.0a', '1.0') > 0);
  assert.ok(compareVersions('1.0+b1', '1.0') > 0);
});

test('the newest kernel wins, with the initramfs of its own version', () => {
  const files = ['vmlinuz-6.1.0-9-amd64', 'initrd.img-6.1.0-9-amd64', 'vmlinuz-6.1.0-13-amd64', 'initrd.img-6.1.0-13-amd64', 'config-6.1.0-13-amd64', 'System.map-6.1.0-13-amd64'];
  assert.deepEqual(pickNewestKernel(files), { version: '6.1.0-13-amd64', kernel: 'vmlinuz-6.1.0-13-amd64', initrd: 'initrd.img-6.1.0-13-amd64' });
});

test('a kernel without initramfs has none; other initramfs names are found; no kernel is null', () => {
  assert.deepEqual(pickNewestKernel(['vmlinuz-6.5', 'initrd.img-6.4']), { version: '6.5', kernel: 'vmlinuz-6.5', initrd: null });
  assert.deepEqual(pickNewestKernel(['vmlinuz-6.5', 'initramfs-6.5.img']), { version: '6.5', kernel: 'vmlinuz-6.5', initrd: 'initramfs-6.5.img' });
  assert.equal(pickNewestKernel(['config-6.5', 'grub']), null);
  assert.equal(pickNewestKernel(['vmlinuz-6.5.old']), null);
});

test('findKernel reads /boot of a tree and ignores symlinks', () => {
  const tree = mkdtempSync(join(tmpdir(), 'sysprime-kernels-'));
  try {
    assert.equal(findKernel(tree), null);
    mkdirSync(join(tree, 'boot'));
    writeFileSync(join(tree, 'boot', 'vmlinuz-6.1.0-9-amd64'), 'k9');
    writeFileSync(join(tree, 'boot', 'initrd.img-6.1.0-9-amd64'), 'i9');
    // A symlink could point outside the tree (an absolute target resolves on the running system).
    symlinkSync('/etc/hostname', join(tree, 'boot', 'vmlinuz-9.9.9'));
    const k = findKernel(tree);
    assert.equal(k?.version, '6.1.0-9-amd64');
    assert.equal(k?.kernel, join(tree, 'boot', 'vmlinuz-6.1.0-9-amd64'));
    assert.equal(k?.kernelInTree, '/boot/vmlinuz-6.1.0-9-amd64');
    assert.equal(k?.initrdInTree, '/boot/initrd.img-6.1.0-9-amd64');
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
});

test('findKernel does not follow a /boot that is a link, nor look into a tree that is missing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-kernels-'));
  try {
    const host = join(dir, 'host-boot');
    mkdirSync(host);
    writeFileSync(join(host, 'vmlinuz-6.9.0'), 'host kernel');
    const tree = join(dir, 'tree');
    mkdirSync(tree);
    // An absolute link in an environment resolves on the running system.
    symlinkSync(host, join(tree, 'boot'));
    assert.equal(findKernel(tree), null);
    assert.equal(findKernel(join(dir, 'absent')), null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a kernel dpkg has unpacked but not yet renamed is never booted', () => {
  const picked = pickNewestKernel(['vmlinuz-6.1.0-28-amd64', 'initrd.img-6.1.0-28-amd64', 'vmlinuz-6.1.0-30-amd64.dpkg-new', 'vmlinuz-6.1.0-31-amd64.dpkg-tmp']);
  assert.equal(picked?.version, '6.1.0-28-amd64');
});
