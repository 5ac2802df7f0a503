import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isSelfBind, mountsAtOrBelow, parseMountinfo, unmountOrder } from '../../../src/updaters/mountinfo.js';

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
