import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bootedDataset,
  childSnapshotsOf,
  dependentsOf,
  environmentChildren,
  mountedChildren,
  environmentsFrom,
  leftoverSnapshots,
  metaOf,
  parseBootfs,
  parsePropertyTable,
  planPromote,
  pristinesFrom,
  prop,
  spaceUniqueOf,
  uniqueName,
  type DatasetRecord,
} from '../../../src/backends/zfs/parse.js';
import { parseMounts } from '../../../src/os/mounts.js';
import { assertInsideRoot, environmentNameOf, isTemporaryDataset, sweepableCopy } from '../../../src/backends/zfs/layout.js';
import { isSysprimeError } from '../../../src/errors.js';
import { mountHelperOptions } from '../../../src/backends/zfs/mount.js';
import { receiveArgs } from '../../../src/backends/zfs/commands.js';

// Captured from zfs-fuse 0.7 (pool version 23): `zfs get -rHp -o name,property,value,source all capt/ROOT`,
// keeping the properties the backend reads. `debian` is privately mounted (mountpoint changed, saved-mountpoint
// set), `staged` is a clone of its pristine, a temporary clone hangs off a copy snapshot.
const ALL = `capt/ROOT	type	filesystem	-
capt/ROOT	creation	1795316873	-
capt/ROOT	used	229376	-
capt/ROOT	mounted	no	-
capt/ROOT	mountpoint	none	local
capt/ROOT	canmount	off	local
capt/ROOT	usedbysnapshots	0	-
capt/ROOT	usedbydataset	114688	-
capt/ROOT	usedbychildren	114688	-
capt/ROOT/.sysprime-tmp-g1-99999-abcdef	type	filesystem	-
capt/ROOT/.sysprime-tmp-g1-99999-abcdef	creation	1795316873	-
capt/ROOT/.sysprime-tmp-g1-99999-abcdef	used	0	-
capt/ROOT/.sysprime-tmp-g1-99999-abcdef	mounted	no	-
capt/ROOT/.sysprime-tmp-g1-99999-abcdef	origin	capt/ROOT/debian@sysprime-copy-20261122T030102Z	-
capt/ROOT/.sysprime-tmp-g1-99999-abcdef	mountpoint	none	inherited from capt/ROOT
capt/ROOT/.sysprime-tmp-g1-99999-abcdef	canmount	noauto	local
capt/ROOT/.sysprime-tmp-g1-99999-abcdef	usedbysnapshots	0	-
capt/ROOT/.sysprime-tmp-g1-99999-abcdef	usedbydataset	0	-
capt/ROOT/.sysprime-tmp-g1-99999-abcdef	usedbychildren	0	-
capt/ROOT/debian	type	filesystem	-
capt/ROOT/debian	creation	1795316873	-
capt/ROOT/debian	used	114688	-
capt/ROOT/debian	mounted	yes	-
capt/ROOT/debian	mountpoint	/run/sysprime/mnt/debian	local
capt/ROOT/debian	canmount	noauto	local
capt/ROOT/debian	usedbysnapshots	0	-
capt/ROOT/debian	usedbydataset	114688	-
capt/ROOT/debian	usedbychildren	0	-
capt/ROOT/debian	org.sysprime:note	hello	tab world	local
capt/ROOT/debian	org.sysprime:saved-mountpoint	/	local
capt/ROOT/debian	org.sysprime:generation	1	local
capt/ROOT/debian@sysprime-pristine	type	snapshot	-
capt/ROOT/debian@sysprime-pristine	creation	1795316873	-
capt/ROOT/debian@sysprime-pristine	used	0	-
capt/ROOT/debian@sysprime-pristine	org.sysprime:note	hello	tab world	inherited from capt/ROOT/debian
capt/ROOT/debian@sysprime-pristine	org.sysprime:saved-mountpoint	/	inherited from capt/ROOT/debian
capt/ROOT/debian@sysprime-pristine	org.sysprime:generation	1	inherited from capt/ROOT/debian
capt/ROOT/debian@sysprime-pristine	org.sysprime:pristine-generation	1	local
capt/ROOT/debian@sysprime-copy-20261122T030102Z	type	snapshot	-
capt/ROOT/debian@sysprime-copy-20261122T030102Z	creation	1795316873	-
capt/ROOT/debian@sysprime-copy-20261122T030102Z	used	0	-
capt/ROOT/debian@sysprime-copy-20261122T030102Z	org.sysprime:note	hello	tab world	inherited from capt/ROOT/debian
capt/ROOT/debian@sysprime-copy-20261122T030102Z	org.sysprime:saved-mountpoint	/	inherited from capt/ROOT/debian
capt/ROOT/debian@sysprime-copy-20261122T030102Z	org.sysprime:generation	1	inherited from capt/ROOT/debian
capt/ROOT/staged	type	filesystem	-
capt/ROOT/staged	creation	1795316873	-
capt/ROOT/staged	used	0	-
capt/ROOT/staged	mounted	no	-
capt/ROOT/staged	origin	capt/ROOT/debian@sysprime-pristine	-
capt/ROOT/staged	mountpoint	/	local
capt/ROOT/staged	canmount	noauto	local
capt/ROOT/staged	usedbysnapshots	0	-
capt/ROOT/staged	usedbydataset	0	-
capt/ROOT/staged	usedbychildren	0	-
capt/ROOT/staged	org.sysprime:generation	2	local
capt/ROOT/staged@sysprime-pristine	type	snapshot	-
capt/ROOT/staged@sysprime-pristine	creation	1795316873	-
capt/ROOT/staged@sysprime-pristine	used	0	-
capt/ROOT/staged@sysprime-pristine	org.sysprime:generation	2	inherited from capt/ROOT/staged
capt/ROOT/staged@sysprime-pristine	org.sysprime:pristine-generation	2	local
`;

// `zfs get -rHp -o name,property,value,source type,origin,guid,createtxg,org.sysprime:pristine-generation,org.sysprime:generation capt`
const DESTROY = `capt	type	filesystem	-
capt	origin	-	-
capt	guid	4608716876367088277	-
capt	createtxg	1	-
capt	org.sysprime:pristine-generation	-	-
capt	org.sysprime:generation	-	-
capt/ROOT	type	filesystem	-
capt/ROOT	origin	-	-
capt/ROOT	guid	9085700373020701806	-
capt/ROOT	createtxg	7	-
capt/ROOT	org.sysprime:pristine-generation	-	-
capt/ROOT	org.sysprime:generation	-	-
capt/ROOT/.sysprime-tmp-g1-99999-abcdef	type	filesystem	-
capt/ROOT/.sysprime-tmp-g1-99999-abcdef	origin	capt/ROOT/debian@sysprime-copy-20261122T030102Z	-
capt/ROOT/.sysprime-tmp-g1-99999-abcdef	guid	13921072214716452966	-
capt/ROOT/.sysprime-tmp-g1-99999-abcdef	createtxg	41	-
capt/ROOT/.sysprime-tmp-g1-99999-abcdef	org.sysprime:pristine-generation	-	-
capt/ROOT/.sysprime-tmp-g1-99999-abcdef	org.sysprime:generation	-	-
capt/ROOT/debian	type	filesystem	-
capt/ROOT/debian	origin	-	-
capt/ROOT/debian	guid	6306417041304384784	-
capt/ROOT/debian	createtxg	10	-
capt/ROOT/debian	org.sysprime:pristine-generation	-	-
capt/ROOT/debian	org.sysprime:generation	1	local
capt/ROOT/debian@sysprime-pristine	type	snapshot	-
capt/ROOT/debian@sysprime-pristine	origin	-	-
capt/ROOT/debian@sysprime-pristine	guid	11346402305883686158	-
capt/ROOT/debian@sysprime-pristine	createtxg	22	-
capt/ROOT/debian@sysprime-pristine	org.sysprime:pristine-generation	1	local
capt/ROOT/debian@sysprime-pristine	org.sysprime:generation	1	inherited from capt/ROOT/debian
capt/ROOT/debian@sysprime-copy-20261122T030102Z	type	snapshot	-
capt/ROOT/debian@sysprime-copy-20261122T030102Z	origin	-	-
capt/ROOT/debian@sysprime-copy-20261122T030102Z	guid	12619035028087991813	-
capt/ROOT/debian@sysprime-copy-20261122T030102Z	createtxg	39	-
capt/ROOT/debian@sysprime-copy-20261122T030102Z	org.sysprime:pristine-generation	-	-
capt/ROOT/debian@sysprime-copy-20261122T030102Z	org.sysprime:generation	1	inherited from capt/ROOT/debian
capt/ROOT/staged	type	filesystem	-
capt/ROOT/staged	origin	capt/ROOT/debian@sysprime-pristine	-
capt/ROOT/staged	guid	14050121495809109669	-
capt/ROOT/staged	createtxg	24	-
capt/ROOT/staged	org.sysprime:pristine-generation	-	-
capt/ROOT/staged	org.sysprime:generation	2	local
capt/ROOT/staged@sysprime-pristine	type	snapshot	-
capt/ROOT/staged@sysprime-pristine	origin	-	-
capt/ROOT/staged@sysprime-pristine	guid	7791475607623770636	-
capt/ROOT/staged@sysprime-pristine	createtxg	32	-
capt/ROOT/staged@sysprime-pristine	org.sysprime:pristine-generation	2	local
capt/ROOT/staged@sysprime-pristine	org.sysprime:generation	2	inherited from capt/ROOT/staged
`;

// /proc/self/mounts of the same moment.
const MOUNTS = `/dev/vda / ext4 rw,relatime,discard 0 0
kstat /zfs-kstat fuse rw,nosuid,nodev,relatime,user_id=0,group_id=0,allow_other 0 0
capt/ROOT/debian /run/sysprime/mnt/debian fuse.zfs rw,relatime,user_id=0,group_id=0,default_permissions,allow_other 0 0
`;

function find(records: DatasetRecord[], name: string): DatasetRecord {
  const r = records.find((x) => x.name === name);
  assert.ok(r, `${name} is in the table`);
  return r;
}

test('parsePropertyTable groups lines by dataset and keeps tabs inside a value', () => {
  const records = parsePropertyTable(ALL);
  assert.deepEqual(
    records.map((r) => r.name),
    [
      'capt/ROOT',
      'capt/ROOT/.sysprime-tmp-g1-99999-abcdef',
      'capt/ROOT/debian',
      'capt/ROOT/debian@sysprime-pristine',
      'capt/ROOT/debian@sysprime-copy-20261122T030102Z',
      'capt/ROOT/staged',
      'capt/ROOT/staged@sysprime-pristine',
    ],
  );
  const debian = find(records, 'capt/ROOT/debian');
  assert.deepEqual(debian.props.get('org.sysprime:note'), { value: 'hello\ttab world', source: 'local' });
  assert.equal(prop(debian, 'origin'), null);
  assert.equal(prop(find(records, 'capt/ROOT/staged'), 'origin'), 'capt/ROOT/debian@sysprime-pristine');
});

test('parsePropertyTable accepts output without a source column', () => {
  const [r] = parsePropertyTable('tank/ROOT/a\tcreation\t1795316873\ntank/ROOT/a\torigin\t-\n');
  assert.ok(r);
  assert.equal(prop(r, 'creation'), '1795316873');
  assert.equal(prop(r, 'origin'), null);
});

test('pristines are snapshots with a local pristine-generation, not those that inherit generation', () => {
  const pristines = pristinesFrom(parsePropertyTable(ALL), 'capt');
  assert.deepEqual(
    pristines.map((p) => [p.id, p.generation, p.holder]),
    [
      ['capt/ROOT/debian@sysprime-pristine', 1, 'capt/ROOT/debian'],
      ['capt/ROOT/staged@sysprime-pristine', 2, 'capt/ROOT/staged'],
    ],
  );
  assert.equal(pristines[0]?.created.getTime(), 1795316873 * 1000);
});

test('environmentsFrom lists direct children of ROOT, hides temporary ones, and reads mounts and bootfs', () => {
  const envs = environmentsFrom(parsePropertyTable(ALL), {
    pool: 'capt',
    mounts: parseMounts(MOUNTS),
    bootfs: parseBootfs('capt\tcapt/ROOT/staged\n').get('capt') ?? null,
  });
  assert.deepEqual(
    envs.map((e) => e.name),
    ['debian', 'staged'],
  );
  const [debian, staged] = envs;
  assert.ok(debian && staged);
  assert.equal(debian.id, 'capt/ROOT/debian');
  assert.equal(debian.generation, 1);
  assert.equal(debian.mounted, '/run/sysprime/mnt/debian');
  assert.equal(debian.booted, false);
  assert.equal(debian.isDefault, false);
  assert.equal(debian.spaceUnique, 114688);
  assert.equal(debian.pristine, 'capt/ROOT/debian@sysprime-pristine');
  assert.deepEqual(debian.meta, { note: 'hello\ttab world' });
  assert.equal(staged.generation, 2);
  assert.equal(staged.mounted, null);
  assert.equal(staged.isDefault, true);
  assert.equal(staged.pristine, 'capt/ROOT/staged@sysprime-pristine');
  assert.equal(staged.created.getTime(), 1795316873 * 1000);
});

test('an environment mounted at / is the booted one and says so', () => {
  const mounts = parseMounts('capt/ROOT/staged / zfs rw,relatime,xattr,posixacl 0 0\n');
  assert.equal(bootedDataset(mounts), 'capt/ROOT/staged');
  const envs = environmentsFrom(parsePropertyTable(ALL), { pool: 'capt', mounts, bootfs: null });
  const staged = envs.find((e) => e.name === 'staged');
  assert.equal(staged?.booted, true);
  assert.equal(staged?.mounted, '/');
});

test('bootedDataset: the last mount on / wins, and a non-ZFS root gives null', () => {
  assert.equal(bootedDataset(parseMounts(MOUNTS)), null);
  assert.equal(bootedDataset(parseMounts('rpool/ROOT/a / zfs rw 0 0\n/dev/sda1 / ext4 rw 0 0\n')), null);
  assert.equal(bootedDataset(parseMounts('/dev/sda1 / ext4 rw 0 0\nrpool/ROOT/a / zfs rw 0 0\n')), 'rpool/ROOT/a');
});

test('parseBootfs reads "-" as no bootfs', () => {
  assert.deepEqual([...parseBootfs('zxp\t-\ntank\ttank/ROOT/a\n')], [
    ['zxp', null],
    ['tank', 'tank/ROOT/a'],
  ]);
});

test('spaceUniqueOf falls back to used minus snapshots and children', () => {
  const [r] = parsePropertyTable('p/ROOT/a\tused\t1000\t-\np/ROOT/a\tusedbysnapshots\t300\t-\np/ROOT/a\tusedbychildren\t100\t-\n');
  assert.ok(r);
  assert.equal(spaceUniqueOf(r), 600);
  const [bare] = parsePropertyTable('p/ROOT/a\tused\t1000\t-\n');
  assert.ok(bare);
  assert.equal(spaceUniqueOf(bare), null);
});

test('metaOf keeps local sysprime properties other than the internal ones', () => {
  const records = parsePropertyTable(ALL);
  assert.deepEqual(metaOf(find(records, 'capt/ROOT/debian@sysprime-pristine')), {});
  assert.deepEqual(metaOf(find(records, 'capt/ROOT/staged')), {});
});

test('planPromote promotes an environment before a temporary clone and renames the pristine that would collide', () => {
  const records = parsePropertyTable(DESTROY);
  assert.deepEqual(dependentsOf(records, 'capt/ROOT/debian@sysprime-pristine'), ['capt/ROOT/staged']);
  const step = planPromote(records, 'capt', 'capt/ROOT/debian');
  assert.deepEqual(step, {
    clone: 'capt/ROOT/staged',
    renames: [{ from: 'capt/ROOT/debian@sysprime-pristine', to: 'capt/ROOT/debian@sysprime-pristine-g1' }],
  });
  assert.equal(planPromote(records, 'capt', 'capt/ROOT/staged'), null);
});

test('planPromote picks the clone of the newest snapshot among environments', () => {
  const text = [
    'p/ROOT/a\ttype\tfilesystem\t-',
    'p/ROOT/a@sysprime-pristine\ttype\tsnapshot\t-',
    'p/ROOT/a@sysprime-pristine\tcreatetxg\t10\t-',
    'p/ROOT/a@sysprime-pristine\torg.sysprime:pristine-generation\t1\tlocal',
    'p/ROOT/a@sysprime-copy-x\ttype\tsnapshot\t-',
    'p/ROOT/a@sysprime-copy-x\tcreatetxg\t20\t-',
    'p/ROOT/b\ttype\tfilesystem\t-',
    'p/ROOT/b\torigin\tp/ROOT/a@sysprime-pristine\t-',
    'p/ROOT/b@sysprime-copy-x\ttype\tsnapshot\t-',
    'p/ROOT/b@sysprime-copy-x-2\ttype\tsnapshot\t-',
    'p/ROOT/c\ttype\tfilesystem\t-',
    'p/ROOT/c\torigin\tp/ROOT/a@sysprime-copy-x\t-',
    'p/ROOT/c@sysprime-copy-x\ttype\tsnapshot\t-',
    'p/ROOT/c@sysprime-pristine-g1\ttype\tsnapshot\t-',
  ].join('\n');
  const step = planPromote(parsePropertyTable(text), 'p', 'p/ROOT/a');
  assert.deepEqual(step, {
    clone: 'p/ROOT/c',
    renames: [
      { from: 'p/ROOT/a@sysprime-pristine', to: 'p/ROOT/a@sysprime-pristine-g1-2' },
      { from: 'p/ROOT/a@sysprime-copy-x', to: 'p/ROOT/a@sysprime-copy-x-2' },
    ],
  });
});

test('leftoverSnapshots drops moved snapshots nobody needs, keeps pristines of generations in use', () => {
  const text = [
    'p/ROOT/b\ttype\tfilesystem\t-',
    'p/ROOT/b\torg.sysprime:generation\t2\tlocal',
    'p/ROOT/b@sysprime-pristine-g1\ttype\tsnapshot\t-',
    'p/ROOT/b@sysprime-pristine-g1\tguid\t111\t-',
    'p/ROOT/b@sysprime-pristine-g1\torg.sysprime:pristine-generation\t1\tlocal',
    'p/ROOT/b@sysprime-pristine-g2\ttype\tsnapshot\t-',
    'p/ROOT/b@sysprime-pristine-g2\tguid\t222\t-',
    'p/ROOT/b@sysprime-pristine-g2\torg.sysprime:pristine-generation\t2\tlocal',
    'p/ROOT/b@sysprime-pristine-g3\ttype\tsnapshot\t-',
    'p/ROOT/b@sysprime-pristine-g3\tguid\t333\t-',
    'p/ROOT/b@sysprime-pristine-g3\torg.sysprime:pristine-generation\t3\tlocal',
    'p/ROOT/b@sysprime-copy-x\ttype\tsnapshot\t-',
    'p/ROOT/b@sysprime-copy-x\tguid\t444\t-',
    'p/ROOT/b@mine\ttype\tsnapshot\t-',
    'p/ROOT/b@mine\tguid\t555\t-',
    'p/ROOT/d\ttype\tfilesystem\t-',
    'p/ROOT/d\torigin\tp/ROOT/b@sysprime-pristine-g3\t-',
    'p/ROOT/d\torg.sysprime:generation\t3\tlocal',
  ].join('\n');
  const records = parsePropertyTable(text);
  // 555 was not the destroyed environment's: it stays whatever it is.
  assert.deepEqual(leftoverSnapshots(records, 'p', new Set(['111', '222', '333', '444'])), [
    'p/ROOT/b@sysprime-pristine-g1',
    'p/ROOT/b@sysprime-copy-x',
  ]);
});

test('leftoverSnapshots drops a copy snapshot nothing is cloned from, even when it was not the destroyed one\'s', () => {
  const text = [
    'p/ROOT/b\ttype\tfilesystem\t-',
    'p/ROOT/b@sysprime-copy-unused\ttype\tsnapshot\t-',
    'p/ROOT/b@sysprime-copy-unused\tguid\t777\t-',
    'p/ROOT/b@sysprime-copy-used\ttype\tsnapshot\t-',
    'p/ROOT/b@sysprime-copy-used\tguid\t888\t-',
    'p/ROOT/b@admin\ttype\tsnapshot\t-',
    'p/ROOT/b@admin\tguid\t999\t-',
    'p/ROOT/c\ttype\tfilesystem\t-',
    'p/ROOT/c\torigin\tp/ROOT/b@sysprime-copy-used\t-',
  ].join('\n');
  assert.deepEqual(leftoverSnapshots(parsePropertyTable(text), 'p', new Set()), ['p/ROOT/b@sysprime-copy-unused']);
});

test('leftoverSnapshots takes the pristine of the destroyed generation wherever it is held, when unneeded', () => {
  const text = [
    'p/ROOT/b\ttype\tfilesystem\t-',
    'p/ROOT/b\torg.sysprime:generation\t2\tlocal',
    'p/ROOT/b@sysprime-pristine-g1\ttype\tsnapshot\t-',
    'p/ROOT/b@sysprime-pristine-g1\tguid\t111\t-',
    'p/ROOT/b@sysprime-pristine-g1\torg.sysprime:pristine-generation\t1\tlocal',
    'p/ROOT/b@sysprime-pristine\ttype\tsnapshot\t-',
    'p/ROOT/b@sysprime-pristine\tguid\t222\t-',
    'p/ROOT/b@sysprime-pristine\torg.sysprime:pristine-generation\t2\tlocal',
  ].join('\n');
  const records = parsePropertyTable(text);
  assert.deepEqual(leftoverSnapshots(records, 'p', new Set(), 1), ['p/ROOT/b@sysprime-pristine-g1']);
  assert.deepEqual(leftoverSnapshots(records, 'p', new Set(), 2), []);
  assert.deepEqual(leftoverSnapshots(records, 'p', new Set()), []);
});

test('uniqueName counts up from 2', () => {
  assert.equal(uniqueName('a', new Set()), 'a');
  assert.equal(uniqueName('a', new Set(['a', 'a-2'])), 'a-3');
});

test('layout: environment names, temporary clones, and the destroy guard', () => {
  assert.equal(environmentNameOf('capt', 'capt/ROOT/debian'), 'debian');
  assert.equal(environmentNameOf('capt', 'capt/ROOT/.sysprime-tmp-g1-1-aa'), null);
  assert.equal(environmentNameOf('capt', 'capt/ROOT/debian/var'), null);
  assert.equal(environmentNameOf('capt', 'capt/ROOT'), null);
  assert.equal(environmentNameOf('capt', 'capt/other/x'), null);
  assert.equal(isTemporaryDataset('capt', 'capt/ROOT/.sysprime-tmp-g1-1-aa'), true);
  assert.equal(isTemporaryDataset('capt', 'capt/ROOT/debian'), false);

  assert.equal(assertInsideRoot('capt', 'capt/ROOT/debian'), 'capt/ROOT/debian');
  assert.equal(assertInsideRoot('capt', 'capt/ROOT/debian@sysprime-pristine'), 'capt/ROOT/debian@sysprime-pristine');
  for (const bad of ['capt', 'capt/ROOT', 'capt/ROOT/', 'capt/ROOT@snap', 'capt/data', 'other/ROOT/x', 'capt/ROOT/../data', 'capt/ROOTX/a']) {
    assert.throws(() => assertInsideRoot('capt', bad), (e) => isSysprimeError(e, 'REFUSED'), bad);
  }
});

test('zsys children: the pristine is the environment\'s own snapshot, and its children\'s are found by their transaction group after promotes', () => {
  const text = [
    'p/ROOT/a\ttype\tfilesystem\t-',
    'p/ROOT/a\tcanmount\tnoauto\tlocal',
    'p/ROOT/a\tmountpoint\t/\tlocal',
    'p/ROOT/a@sysprime-pristine\ttype\tsnapshot\t-',
    'p/ROOT/a@sysprime-pristine\tcreatetxg\t31\t-',
    'p/ROOT/a@sysprime-pristine\torg.sysprime:pristine-generation\t1\tlocal',
    'p/ROOT/a/var\ttype\tfilesystem\t-',
    'p/ROOT/a/var\tcanmount\toff\tlocal',
    'p/ROOT/a/var\tmountpoint\t/var\tinherited from p/ROOT/a',
    'p/ROOT/a/var@sysprime-pristine\ttype\tsnapshot\t-',
    'p/ROOT/a/var@sysprime-pristine\tcreatetxg\t31\t-',
    'p/ROOT/a/var@sysprime-pristine\torg.sysprime:pristine-generation\t1\tlocal',
    'p/ROOT/a/var/lib\ttype\tfilesystem\t-',
    'p/ROOT/a/var/lib\tcanmount\tnoauto\tlocal',
    'p/ROOT/a/var/lib\tmountpoint\t/var/lib\tinherited from p/ROOT/a',
    // Promoted to another environment since, and renamed there.
    'p/ROOT/b/var/lib@sysprime-pristine-g1\ttype\tsnapshot\t-',
    'p/ROOT/b/var/lib@sysprime-pristine-g1\tcreatetxg\t31\t-',
    'p/ROOT/b/var/lib@sysprime-pristine-g1\torg.sysprime:pristine-generation\t1\tlocal',
    // Another tool's snapshot of the same moment, with another name.
    'p/ROOT/c/var/lib@autosnap\ttype\tsnapshot\t-',
    'p/ROOT/c/var/lib@autosnap\tcreatetxg\t31\t-',
    'p/ROOT/a/var/lib@later\ttype\tsnapshot\t-',
    'p/ROOT/a/var/lib@later\tcreatetxg\t40\t-',
  ].join('\n');
  const records = parsePropertyTable(text);
  assert.deepEqual(pristinesFrom(records, 'p').map((x) => x.id), ['p/ROOT/a@sysprime-pristine']);
  assert.deepEqual([...childSnapshotsOf(records, 'p', 'p/ROOT/a@sysprime-pristine')].sort(), [
    ['var', 'p/ROOT/a/var@sysprime-pristine'],
    ['var/lib', 'p/ROOT/b/var/lib@sysprime-pristine-g1'],
  ]);
  const children = environmentChildren(records, 'p/ROOT/a');
  assert.deepEqual(children.map((c) => [c.rel, c.canmount, c.localMountpoint]), [
    ['var', 'off', null],
    ['var/lib', 'noauto', null],
  ]);
  assert.deepEqual(mountedChildren(children), [{ dataset: 'p/ROOT/a/var/lib', path: '/var/lib' }]);
});

test("a live export's copy snapshot is not swept; a dead one's, and other copies nothing is cloned from, are", () => {
  const alive = (pid: number) => pid === 4242;
  assert.equal(sweepableCopy('sysprime-copy-export-4242-20261205T190000Z', alive), false);
  assert.equal(sweepableCopy('sysprime-copy-export-999-20261205T190000Z', alive), true);
  assert.equal(sweepableCopy('sysprime-copy-export-20261205T190000Z', alive), true, 'an export snapshot of an older sysprime names no process');
  assert.equal(sweepableCopy('sysprime-copy-20261205T190000Z', alive), true);
  assert.equal(sweepableCopy('before-upgrade', alive), false, "an admin's snapshot is never a copy");
  const text = 'p/ROOT/b@sysprime-copy-export-4242-20261205T190000Z\ttype\tsnapshot\t-\n';
  assert.deepEqual(leftoverSnapshots(parsePropertyTable(text), 'p', new Set(), null, 'p/ROOT', alive), []);
});

test("mount.zfs options: zfsutil for a dataset whose mountpoint ZFS manages, none for a legacy one (mount.zfs refuses each the other way)", () => {
  assert.deepEqual(mountHelperOptions('/', false), ['-o', 'zfsutil']);
  assert.deepEqual(mountHelperOptions('/boot', true), ['-o', 'zfsutil,ro']);
  assert.deepEqual(mountHelperOptions(null, false), ['-o', 'zfsutil'], 'unknown: as ZFS manages it');
  assert.deepEqual(mountHelperOptions('legacy', false), []);
  assert.deepEqual(mountHelperOptions('legacy', true), ['-o', 'ro']);
});

test('zfs receive mounts nothing: on OpenZFS never (-u), the mountpoint inherited, canmount=noauto, whatever properties the stream carries', () => {
  assert.deepEqual(receiveArgs('rpool/ROOT/.sysprime-tmp-new-1-abc', 'openzfs'), ['receive', '-u', '-x', 'mountpoint', '-o', 'canmount=noauto', 'rpool/ROOT/.sysprime-tmp-new-1-abc']);
  // zfs-fuse knows none of them; its streams carry no properties.
  assert.deepEqual(receiveArgs('tank/ROOT/x', 'zfs-fuse'), ['receive', 'tank/ROOT/x']);
});
