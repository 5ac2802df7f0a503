// Output captured from btrfs-progs v6.2 and Linux 6.x on a loop-file filesystem.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  mountSubvolumeId,
  parseBtrfsTime,
  parseGetDefault,
  parseQgroupShow,
  parseSubvolumeList,
  parseSubvolumeShow,
} from '../../../src/backends/btrfs/parse.js';
import { parseMountinfo } from '../../../src/os/mounts.js';
import { driftSnapshotPath, exportNestedPath, exportSnapshotPath, partialOwner, receiveDirPath, roleOf } from '../../../src/backends/btrfs/layout.js';
import { isSysprimeError } from '../../../src/errors.js';

const LIST = `ID 256 gen 7 top level 5 path @
ID 257 gen 7 top level 256 path @/var/lib/machines
ID 258 gen 7 top level 5 path ROOT/a
ID 259 gen 7 top level 5 path ROOT/.pristine/a
ID 260 gen 8 top level 5 path ROOT/sp ace
`;

const LIST_ALL = `ID 256 gen 7 top level 5 path @
ID 257 gen 7 top level 256 path <FS_TREE>/@/var/lib/machines
`;

const LIST_WIDE = `ID 259 gen 7 cgen 7 parent 5 top level 5 parent_uuid ea75c88c-c683-aa4e-8323-6bbd31ab4f8b received_uuid -                                    uuid ee284d51-e591-b441-8d0a-9d19467ca458 path ROOT/.pristine/a
ID 256 gen 7 cgen 7 parent 5 top level 5 parent_uuid -                                    received_uuid -                                    uuid f580f2d3-44f6-4d47-a2a3-85f965ab0b04 path @
`;

const SHOW_PRISTINE = `ROOT/.pristine/a
\tName: \t\t\ta
\tUUID: \t\t\tee284d51-e591-b441-8d0a-9d19467ca458
\tParent UUID: \t\tea75c88c-c683-aa4e-8323-6bbd31ab4f8b
\tReceived UUID: \t\t-
\tCreation time: \t\t2026-11-22 03:03:25 +0000
\tSubvolume ID: \t\t259
\tGeneration: \t\t7
\tGen at creation: \t7
\tParent ID: \t\t5
\tTop level ID: \t\t5
\tFlags: \t\t\treadonly
\tSend transid: \t\t0
\tSend time: \t\t2026-11-22 03:03:25 +0000
\tReceive transid: \t0
\tReceive time: \t\t-
\tSnapshot(s):
`;

const SHOW_WITH_QUOTA = `ROOT/a
\tName: \t\t\ta
\tUUID: \t\t\tea75c88c-c683-aa4e-8323-6bbd31ab4f8b
\tParent UUID: \t\t-
\tReceived UUID: \t\t-
\tCreation time: \t\t2026-11-22 05:03:25 +0200
\tSubvolume ID: \t\t258
\tGeneration: \t\t7
\tGen at creation: \t7
\tParent ID: \t\t5
\tTop level ID: \t\t5
\tFlags: \t\t\t-
\tSend transid: \t\t0
\tSend time: \t\t2026-11-22 03:03:25 +0000
\tReceive transid: \t0
\tReceive time: \t\t-
\tSnapshot(s):
\t\t\t\tROOT/.pristine/a
\tQuota group:\t\t0/258
\t  Limit referenced:\t-
\t  Limit exclusive:\t-
\t  Usage referenced:\t16.00KiB
\t  Usage exclusive:\t16.00KiB
`;

const QGROUP_V62 = `Qgroupid    Referenced    Exclusive   Path 
--------    ----------    ---------   ---- 
0/5              16384        16384   <toplevel>
0/256            16384        16384   @
0/258          1638400        24576   ROOT/a
0/260            16384        16384   ROOT/sp ace
1/100            32768        32768   <0 member qgroups>
`;

const QGROUP_OLD = `qgroupid         rfer         excl 
--------         ----         ---- 
0/5              16384        16384 
0/258          1638400        24576 
`;

const MOUNTINFO = `27 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
45 27 0:41 / /tmp/bt/top rw,relatime shared:60 - btrfs /dev/loop0 rw,discard=async,space_cache=v2,subvolid=5,subvol=/
46 27 0:41 /ROOT/a /tmp/bt/m1 rw,relatime - btrfs /dev/loop0 rw,discard=async,space_cache=v2,subvolid=258,subvol=/ROOT/a
47 27 0:41 /ROOT/sp\\040ace /tmp/bt/m\\0402 rw,relatime - btrfs /dev/loop0 rw,discard=async,space_cache=v2,subvolid=260,subvol=/ROOT/sp\\040ace
44 46 0:21 / /tmp/bt/m1/proc rw,relatime - proc proc rw
`;

test('subvolume list: plain form, paths relative to the top level, spaces kept', () => {
  const l = parseSubvolumeList(LIST);
  assert.equal(l.length, 5);
  assert.deepEqual(l[1], { id: 257, gen: 7, topLevel: 256, path: '@/var/lib/machines' });
  assert.equal(l[4]!.path, 'ROOT/sp ace');
});

test('subvolume list: -a prefix and wide columns are understood', () => {
  assert.equal(parseSubvolumeList(LIST_ALL)[1]!.path, '@/var/lib/machines');
  const wide = parseSubvolumeList(LIST_WIDE);
  assert.deepEqual(wide.map((s) => [s.id, s.path]), [
    [259, 'ROOT/.pristine/a'],
    [256, '@'],
  ]);
});

test('subvolume list: an unknown line is an error, not a guess', () => {
  assert.throws(() => parseSubvolumeList('Subvolume 256 is @\n'), (e) => isSysprimeError(e, 'BACKEND'));
});

test('subvolume show: read-only snapshot', () => {
  const s = parseSubvolumeShow(SHOW_PRISTINE);
  assert.equal(s.path, 'ROOT/.pristine/a');
  assert.equal(s.name, 'a');
  assert.equal(s.id, 259);
  assert.equal(s.readonly, true);
  assert.equal(s.parentUuid, 'ea75c88c-c683-aa4e-8323-6bbd31ab4f8b');
  assert.equal(s.created?.toISOString(), '2026-11-22T03:03:25.000Z');
});

test('subvolume show: writable, snapshots and quota lines, time zone offset', () => {
  const s = parseSubvolumeShow(SHOW_WITH_QUOTA);
  assert.equal(s.readonly, false);
  assert.equal(s.parentUuid, null);
  assert.equal(s.id, 258);
  assert.equal(s.created?.toISOString(), '2026-11-22T03:03:25.000Z');
});

test('subvolume show: no creation time is null; a missing field is an error', () => {
  assert.equal(parseSubvolumeShow(SHOW_PRISTINE.replace('2026-11-22 03:03:25 +0000\n\tSubvolume', '-\n\tSubvolume')).created, null);
  assert.throws(() => parseSubvolumeShow('ROOT/a\n\tName: \t\ta\n'), (e) => isSysprimeError(e, 'BACKEND'));
});

test('btrfs time: negative offsets', () => {
  assert.equal(parseBtrfsTime('2024-01-31 19:30:00 -0530').toISOString(), '2024-02-01T01:00:00.000Z');
  assert.throws(() => parseBtrfsTime('Wed Jan 31 19:30:00 2024'));
});

test('get-default: top level and a subvolume', () => {
  assert.equal(parseGetDefault('ID 5 (FS_TREE)\n'), 5);
  assert.equal(parseGetDefault('ID 258 gen 7 top level 5 path ROOT/a\n'), 258);
  assert.throws(() => parseGetDefault(''), (e) => isSysprimeError(e, 'BACKEND'));
});

test('qgroup show --raw: new and old headers, level-0 only', () => {
  for (const text of [QGROUP_V62, QGROUP_OLD]) {
    const m = parseQgroupShow(text);
    assert.equal(m.get(258), 24576);
    assert.equal(m.get(5), 16384);
    assert.equal(m.has(100), false);
  }
  assert.equal(parseQgroupShow(QGROUP_V62).get(260), 16384);
  assert.throws(() => parseQgroupShow('Qgroupid Exclusive Referenced\n'), (e) => isSysprimeError(e, 'BACKEND'));
});

test('mountinfo: escapes, optional fields, subvolume ids', () => {
  const m = parseMountinfo(MOUNTINFO);
  assert.equal(m.length, 5);
  const top = m[1]!;
  assert.equal(top.root, '/');
  assert.equal(top.fsType, 'btrfs');
  assert.equal(top.source, '/dev/loop0');
  assert.equal(top.dev, '0:41');
  assert.equal(mountSubvolumeId(top), 5);
  assert.equal(m[3]!.root, '/ROOT/sp ace');
  assert.equal(m[3]!.mountPoint, '/tmp/bt/m 2');
  assert.equal(mountSubvolumeId(m[3]!), 260);
  assert.equal(m[4]!.fsType, 'proc');
  assert.equal(mountSubvolumeId(m[4]!), null);
});

test('layout roles of subvolume paths', () => {
  assert.deepEqual(roleOf('ROOT/a'), { role: 'environment', name: 'a' });
  assert.deepEqual(roleOf('ROOT/a/var/lib/machines'), { role: 'nested', environment: 'a' });
  assert.deepEqual(roleOf('ROOT/.pristine/a'), { role: 'pristine', base: 'a', holder: 'a' });
  assert.deepEqual(roleOf('ROOT/.pristine/a@3'), { role: 'pristine', base: 'a@3', holder: 'a' });
  assert.deepEqual(roleOf('ROOT/.snapshots/a@before-php'), { role: 'snapshot', environment: 'a', name: 'before-php' });
  assert.deepEqual(roleOf('ROOT/.snapshots/.partial-a@x'), { role: 'partial' });
  assert.deepEqual(roleOf('ROOT/.snapshots/a'), { role: 'foreign' }, 'a snapshot names its environment');
  assert.deepEqual(roleOf('ROOT/.partial-receive-12-abcdef/.partial-a@export-9'), { role: 'partial' }, 'what an import received');
  assert.deepEqual(roleOf('ROOT/.partial-a@export-9'), { role: 'partial' });
  assert.deepEqual(roleOf('ROOT/.partial-a'), { role: 'partial' });
  assert.deepEqual(roleOf('ROOT/.pristine/.partial-a'), { role: 'partial' });
  assert.deepEqual(roleOf('@'), { role: 'foreign' });
  assert.deepEqual(roleOf('ROOT/.sysprime'), { role: 'foreign' });
});

test('the process a partial subvolume belongs to, when its name carries one', () => {
  assert.equal(partialOwner('ROOT/.partial-a@export-91'), 91);
  assert.equal(partialOwner('ROOT/.partial-a@export-91-n3'), 91, "an export's copy of a nested subvolume");
  assert.equal(partialOwner('ROOT/.partial-a@drift-7'), 7);
  assert.equal(partialOwner('ROOT/.partial-receive-12-abcdef'), 12);
  assert.equal(partialOwner('ROOT/.partial-receive-12-abcdef/.partial-a@export-9'), 12, "what an import receives is its own, whoever sent it");
  assert.equal(partialOwner('ROOT/.partial-a'), null, 'made under a lock: what is left is a dead run\'s');
  assert.equal(partialOwner('ROOT/.pristine/.partial-a@drift-7'), null);
  assert.equal(partialOwner('ROOT/.partial-a@export-x'), null);
  assert.equal(partialOwner('ROOT/.partial-a@drift-7/inside'), null);
  // Whatever the builders make reads back to its process.
  for (const made of [exportSnapshotPath('web-1', 4242), exportNestedPath('web-1', 4242, 12), driftSnapshotPath('web-1', 4242), `${receiveDirPath(4242, 'a1b2c3')}/web-1`]) {
    assert.equal(partialOwner(made), 4242, made);
  }
});
