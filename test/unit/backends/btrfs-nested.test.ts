// What a clone does with each nested subvolume of its source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_SHARED_SUBVOLUMES, nestedKindOf } from '../../../src/backends/btrfs/layout.js';
import { planNested } from '../../../src/backends/btrfs/nested.js';
import { parseSubvolumeList } from '../../../src/backends/btrfs/parse.js';

test('nestedKindOf: content, shared (and below), snapper', () => {
  assert.equal(nestedKindOf('usr/local', DEFAULT_SHARED_SUBVOLUMES), 'content');
  assert.equal(nestedKindOf('var', DEFAULT_SHARED_SUBVOLUMES), 'content');
  assert.equal(nestedKindOf('var/lib/docker', DEFAULT_SHARED_SUBVOLUMES), 'shared');
  assert.equal(nestedKindOf('var/lib/docker/btrfs/subvolumes/abc', DEFAULT_SHARED_SUBVOLUMES), 'shared');
  assert.equal(nestedKindOf('var/lib/dockerish', DEFAULT_SHARED_SUBVOLUMES), 'content');
  assert.equal(nestedKindOf('var/lib/machines', DEFAULT_SHARED_SUBVOLUMES), 'shared');
  assert.equal(nestedKindOf('srv/data', ['/srv/data/']), 'shared');
  assert.equal(nestedKindOf('.snapshots', DEFAULT_SHARED_SUBVOLUMES), 'snapper');
  assert.equal(nestedKindOf('.snapshots/1/snapshot', DEFAULT_SHARED_SUBVOLUMES), 'snapper');
});

test('planNested: shallowest first; what is below a shared or snapper subvolume is not looked at on its own', () => {
  const list = parseSubvolumeList(`ID 256 gen 7 top level 5 path @rootfs
ID 257 gen 7 top level 256 path @rootfs/var
ID 258 gen 7 top level 257 path @rootfs/var/lib/docker
ID 259 gen 7 top level 258 path @rootfs/var/lib/docker/btrfs/subvolumes/abc
ID 260 gen 7 top level 256 path @rootfs/usr/local
ID 261 gen 7 top level 256 path @rootfs/.snapshots
ID 262 gen 7 top level 261 path @rootfs/.snapshots/1/snapshot
ID 263 gen 7 top level 257 path @rootfs/var/cache
ID 264 gen 7 top level 5 path @rootfs-old
ID 265 gen 7 top level 5 path @home
`);
  assert.deepEqual(planNested('@rootfs', list, DEFAULT_SHARED_SUBVOLUMES), {
    content: ['var', 'usr/local', 'var/cache'],
    shared: ['var/lib/docker'],
    snapper: ['.snapshots'],
  });
  assert.deepEqual(planNested('@home', list, DEFAULT_SHARED_SUBVOLUMES), { content: [], shared: [], snapper: [] });
});
