import { test } from 'node:test';
import assert from 'node:assert/strict';
import { btrfsOptions, rootMount } from '../../../src/backends/registry.js';
import { parseConfigText } from '../../../src/config/load.js';
import { isSysprimeError } from '../../../src/errors.js';

const MOUNTS_BTRFS = [
  'sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0',
  '/dev/vda2 / btrfs rw,relatime,ssd,space_cache=v2,subvolid=257,subvol=/ROOT/gen-3 0 0',
  '/dev/vda1 /boot/efi vfat rw,relatime 0 0',
].join('\n');

test('rootMount reads the mount at / from the kernel table; the last one mounted over / wins', () => {
  assert.deepEqual(rootMount(MOUNTS_BTRFS), { fstype: 'btrfs', source: '/dev/vda2' });
  assert.deepEqual(rootMount('/dev/vda2 / btrfs rw 0 0\noverlay / overlay rw 0 0\n'), { fstype: 'overlay', source: 'overlay' });
  assert.equal(rootMount('proc /proc proc rw 0 0\n'), null);
});

test('with no configuration, a Btrfs root lends its device for mounting the top-level subvolume', () => {
  const config = parseConfigText('', 'none');
  assert.deepEqual(btrfsOptions(config, rootMount(MOUNTS_BTRFS)), { top: '/run/sysprime/top', device: '/dev/vda2' });
});

test('a configured device wins, and a root on another filesystem lends none', () => {
  assert.deepEqual(btrfsOptions(parseConfigText('[btrfs]\ndevice = "/dev/sdb1"\ntop = "/mnt/top"\n', 'x'), rootMount(MOUNTS_BTRFS)), { top: '/mnt/top', device: '/dev/sdb1' });
  assert.deepEqual(btrfsOptions(parseConfigText('', 'none'), { fstype: 'ext4', source: '/dev/vda1' }), { top: '/run/sysprime/top' });
  assert.deepEqual(btrfsOptions(parseConfigText('', 'none'), null), { top: '/run/sysprime/top' });
});

test('[btrfs] shared_subvolumes adds to the built-in shared nested subvolumes; anything but absolute paths is refused', () => {
  assert.deepEqual(btrfsOptions(parseConfigText('[btrfs]\nshared_subvolumes = ["/srv/data", "/var/lib/libvirt/images"]\n', 'x'), null), {
    top: '/run/sysprime/top',
    sharedSubvolumes: ['/var/lib/docker', '/var/lib/machines', '/var/lib/portables', '/srv/data', '/var/lib/libvirt/images'],
  });
  for (const bad of ['"/srv/data"', '["srv/data"]', '["/srv/../etc"]', '[1]']) {
    assert.throws(() => parseConfigText(`[btrfs]\nshared_subvolumes = ${bad}\n`, 'x'), (e) => isSysprimeError(e, 'CONFIG') && /shared_subvolumes/.test(e.message));
  }
});
