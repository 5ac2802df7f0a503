import { test } from 'node:test';
import assert from 'node:assert/strict';
// What the running system's /boot is, from the mount table: a partition every environment shares, or a ZFS boot pool's dataset.
import { bootMountIn, separateBoot, zfsBootPoolProblem } from '../../../src/environments/boot-kernels.js';
import { parseMountinfo } from '../../../src/os/mounts.js';

const line = (id: number, dev: string, point: string, fs: string, source: string) => `${id} 1 ${dev} / ${point} rw,relatime shared:${id} - ${fs} ${source} rw`;

/** The OpenZFS Root on ZFS layout, booted: rpool/ROOT/debian at /, bpool/BOOT/debian at /boot, the ESP below it. */
const GUIDE = [
  line(21, '0:30', '/', 'zfs', 'rpool/ROOT/debian'),
  line(22, '0:31', '/boot', 'zfs', 'bpool/BOOT/debian'),
  line(23, '259:1', '/boot/efi', 'vfat', '/dev/nvme0n1p2'),
  line(24, '0:32', '/home', 'zfs', 'rpool/home'),
].join('\n');

test('a ZFS dataset at /boot is a boot pool\'s, not a partition', () => {
  assert.deepEqual(bootMountIn(parseMountinfo(GUIDE)), { kind: 'zfs-boot-pool', path: '/boot', dataset: 'bpool/BOOT/debian' });
  assert.equal(separateBoot(GUIDE), null, 'never mirrored as a partition');
  // zfs-fuse says fuse.zfs.
  const fuse = [line(21, '0:30', '/', 'fuse.zfs', 'rpool/ROOT/debian'), line(22, '0:31', '/boot', 'fuse.zfs', 'bpool/BOOT/debian')].join('\n');
  assert.deepEqual(bootMountIn(parseMountinfo(fuse)), { kind: 'zfs-boot-pool', path: '/boot', dataset: 'bpool/BOOT/debian' });
});

test('an ext4 /boot is a partition; a /boot inside the root is nothing of its own', () => {
  const ext4 = [line(21, '0:30', '/', 'zfs', 'rpool/ROOT/debian'), line(22, '254:1', '/boot', 'ext4', '/dev/vda2')].join('\n');
  assert.deepEqual(bootMountIn(parseMountinfo(ext4)), { kind: 'partition', path: '/boot' });
  assert.equal(separateBoot(ext4), '/boot');
  assert.equal(bootMountIn(parseMountinfo(line(21, '0:30', '/', 'zfs', 'rpool/ROOT/debian'))), null);
});

test('a directory taken for /boot (tests) is what is mounted there: a boot pool\'s dataset, or a stand-in partition', () => {
  const table = parseMountinfo([line(21, '254:0', '/', 'ext4', '/dev/vda'), line(60, '0:70', '/tmp/t/target/boot', 'fuse.zfs', 'bpoolab12/BOOT/debian')].join('\n'));
  assert.deepEqual(bootMountIn(table, '/tmp/t/target/boot'), { kind: 'zfs-boot-pool', path: '/tmp/t/target/boot', dataset: 'bpoolab12/BOOT/debian' });
  assert.deepEqual(bootMountIn(table, '/tmp/t/boot-partition'), { kind: 'partition', path: '/tmp/t/boot-partition' });
});

test('a boot dataset named after its root is carried; one named otherwise, or not recorded as the root\'s, is refused in one line', () => {
  const boot = { kind: 'zfs-boot-pool', path: '/boot', dataset: 'bpool/BOOT/debian' } as const;
  assert.equal(zfsBootPoolProblem(boot, 'debian'), null);
  const other = zfsBootPoolProblem(boot, 'gen-1');
  assert.match(other ?? '', /^\/boot is the ZFS dataset bpool\/BOOT\/debian, a boot pool .*, not named after the root's environment "gen-1" \(<boot pool>\/BOOT\/gen-1\): sysprime cannot tell which environment it belongs to$/);
  assert.doesNotMatch(other ?? '', /\n/);
  assert.match(zfsBootPoolProblem(boot, 'debian', false) ?? '', /not recorded as "debian"'s own boot dataset/);
  // Deeper or elsewhere than <pool>/BOOT/<name>: not the guides' layout.
  assert.notEqual(zfsBootPoolProblem({ ...boot, dataset: 'bpool/BOOT/debian/extra' }, 'debian'), null);
  assert.notEqual(zfsBootPoolProblem({ ...boot, dataset: 'bpool/boot-debian' }, 'debian'), null);
});
