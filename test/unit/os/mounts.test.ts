import { test } from 'node:test';
import assert from 'node:assert/strict';
// The mount tables (src/os/mounts.ts): mountinfo, /proc/self/mounts and fstab.
import {
  isAtOrBelow,
  isSelfBind,
  mountAt,
  mountHolding,
  mountsAtOrBelow,
  parseFstab,
  parseMountinfo,
  parseMounts,
  splitFstabLine,
  unmountOrder,
} from '../../../src/os/mounts.js';

const SAMPLE = [
  '22 27 0:21 / /proc rw,relatime shared:5 - proc proc rw',
  '27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '24 27 0:6 / /dev rw,relatime shared:2 - devtmpfs devtmpfs rw,mode=755',
  // a plain directory bound onto itself, then kernel filesystems under it
  '90 27 254:0 /tmp/t\\040x /tmp/t\\040x rw,relatime - ext4 /dev/vda rw',
  '91 90 0:6 / /tmp/t\\040x/dev rw,relatime - devtmpfs devtmpfs rw,mode=755',
  '92 91 0:24 / /tmp/t\\040x/dev/pts rw,relatime - devpts devpts rw',
  '93 90 0:21 / /tmp/t\\040x/proc rw,relatime - proc proc rw',
  // an environment mounted from a btrfs subvolume, and our self-bind on top of it
  '100 27 0:50 /ROOT/next /mnt/env rw - btrfs /dev/loop0 rw,subvol=/ROOT/next',
  '101 100 0:50 /ROOT/next /mnt/env rw - btrfs /dev/loop0 rw,subvol=/ROOT/next',
  // a tmpfs mounted somewhere else
  '110 27 0:60 / /mnt/other rw - tmpfs sysprime-run rw',
].join('\n');

test('mountinfo lines are parsed, escapes undone', () => {
  const m = parseMountinfo(SAMPLE);
  assert.equal(m.length, 10);
  const t = m.find((e) => e.id === 90);
  assert.equal(t?.mountPoint, '/tmp/t x');
  assert.equal(t?.root, '/tmp/t x');
  assert.equal(t?.fsType, 'ext4');
  assert.deepEqual(m.find((e) => e.id === 22)?.propagation, ['shared:5']);
  assert.equal(m.find((e) => e.id === 110)?.source, 'sysprime-run');
});

test('mounts at or below a directory, not beside it', () => {
  const m = parseMountinfo(SAMPLE);
  assert.deepEqual(mountsAtOrBelow(m, '/tmp/t x').map((e) => e.id), [90, 91, 92, 93]);
  assert.deepEqual(mountsAtOrBelow(m, '/tmp/t').map((e) => e.id), []);
  assert.deepEqual(mountsAtOrBelow(m, '/mnt/env').map((e) => e.id), [100, 101]);
});

test('a self-bind is told apart from the mount it covers', () => {
  const m = parseMountinfo(SAMPLE);
  const byId = (id: number) => m.find((e) => e.id === id)!;
  assert.equal(isSelfBind(byId(90), m), true, 'directory bound onto itself');
  assert.equal(isSelfBind(byId(101), m), true, 'bind stacked on the environment mount');
  assert.equal(isSelfBind(byId(100), m), false, 'the environment mount itself');
  assert.equal(isSelfBind(byId(91), m), false, '/dev bound inside');
  assert.equal(isSelfBind(byId(110), m), false);
});

test('unmount order is deepest first, later mounts first at equal depth', () => {
  const m = parseMountinfo(SAMPLE);
  const order = unmountOrder(mountsAtOrBelow(m, '/tmp/t x')).map((e) => e.id);
  assert.deepEqual(order, [92, 93, 91, 90]);
  assert.deepEqual(unmountOrder(mountsAtOrBelow(m, '/mnt/env')).map((e) => e.id), [101, 100]);
});

test('mountinfo: per-filesystem options, and a mount point named "-" is not the separator', () => {
  const m = parseMountinfo('40 27 0:50 /ROOT/a /- rw,relatime shared:9 - btrfs /dev/loop0 rw,subvolid=256,subvol=/ROOT/a\n\nnot a mount line\n');
  assert.equal(m.length, 1);
  assert.equal(m[0]!.mountPoint, '/-');
  assert.equal(m[0]!.options, 'rw,relatime');
  assert.deepEqual(m[0]!.superOptions, ['rw', 'subvolid=256', 'subvol=/ROOT/a']);
  const dash = parseMountinfo('41 27 0:50 / - rw - btrfs /dev/loop0 rw\n');
  assert.equal(dash[0]?.mountPoint, '-');
  assert.equal(dash[0]?.fsType, 'btrfs');
});

test('isAtOrBelow: component boundaries', () => {
  assert.equal(isAtOrBelow('/ROOT/a', '/ROOT/a'), true);
  assert.equal(isAtOrBelow('/ROOT/a/var', '/ROOT/a'), true);
  assert.equal(isAtOrBelow('/ROOT/ab', '/ROOT/a'), false);
  assert.equal(isAtOrBelow('/x', '/'), true);
});

test('mountAt: the last mount at a path is the visible one', () => {
  const mounts = parseMounts('/dev/sda1 / ext4 rw 0 0\nrpool/ROOT/a / zfs rw 0 0\nproc /proc proc rw 0 0\n');
  assert.equal(mountAt(mounts, '/')?.source, 'rpool/ROOT/a');
  assert.equal(mountAt(mounts, '/boot'), undefined);
  assert.equal(mountAt(parseMountinfo(SAMPLE), '/mnt/env')?.id, 101);
});

test('mountHolding: the deepest mount at or above a path, the last of them when stacked', () => {
  const mounts = parseMounts(
    [
      'rpool/ROOT/debian / zfs rw 0 0',
      'rpool/var/log /var/log zfs rw 0 0',
      'rpool/var/lib/nfs /var/lib/nfs zfs rw 0 0',
      'rpool/sysprime/state /var/lib/sysprime/state zfs rw 0 0',
      'tmpfs /var/lib/sysprime/state tmpfs rw 0 0',
    ].join('\n'),
  );
  assert.equal(mountHolding(mounts, '/var/lib/sysprime/state')?.source, 'tmpfs');
  assert.equal(mountHolding(mounts, '/var/lib/sysprime/state/x')?.source, 'tmpfs');
  assert.equal(mountHolding(mounts, '/var/lib/sysprime')?.source, 'rpool/ROOT/debian');
  assert.equal(mountHolding(mounts, '/var/lib/nfsd')?.source, 'rpool/ROOT/debian', 'component boundaries');
  assert.equal(mountHolding(mounts, '/var/log/apt')?.source, 'rpool/var/log');
  assert.equal(mountHolding([], '/x'), undefined);
});

test('/proc/self/mounts: fstab format, the kernel octal escapes decoded', () => {
  const [m] = parseMounts('tank/ROOT/a /run/my\\040dir\\134x fuse.zfs rw,xattr 0 0\n');
  assert.equal(m?.mountPoint, '/run/my dir\\x');
  assert.equal(m?.fsType, 'fuse.zfs');
  assert.deepEqual(m?.options, ['rw', 'xattr']);
});

test('fstab: a short line takes the defaults, CRLF files and leading blanks are read, a one-field line is not an entry', () => {
  const e = parseFstab('  /dev/sdb1 /srv\r\nUUID=a /data btrfs noatime 0 2\r\n/dev/sdc1\n\t# indented comment\n');
  assert.deepEqual(
    e.map((x) => [x.line, x.source, x.mountPoint, x.fsType, x.options]),
    [
      [0, '/dev/sdb1', '/srv', 'auto', ['defaults']],
      [1, 'UUID=a', '/data', 'btrfs', ['noatime']],
    ],
  );
});

test('splitFstabLine: fields and blanks put back together byte for byte', () => {
  for (const line of ['UUID=a / btrfs subvol=@ 0 0', '  LABEL=r\t/\tbtrfs  ssd \t', '/dev/x /mnt/a\\040b ext4']) {
    const s = splitFstabLine(line)!;
    assert.equal(s.parts.join(''), line);
    assert.deepEqual(s.at.map((i) => s.parts[i]), s.fields);
  }
  assert.deepEqual(splitFstabLine('  LABEL=r\t/\tbtrfs  ssd \t')!.fields, ['LABEL=r', '/', 'btrfs', 'ssd']);
  assert.equal(splitFstabLine('# UUID=a / btrfs subvol=@ 0 0'), null);
  assert.equal(splitFstabLine(' \t'), null);
});
