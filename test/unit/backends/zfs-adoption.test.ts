import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adoptionProblem, childrenProblem } from '../../../src/backends/zfs/adoption.js';
import { carriedBootProperties, childDatasetsOf, environmentsFrom, foreignRootsFrom, parsePropertyTable, withoutAltroot, type EnvironmentChild } from '../../../src/backends/zfs/parse.js';

// What OpenZFS 2.1 prints for an encrypted root whose key is not loaded (`zfs get -Hp all`, the properties read);
// zfs-fuse has no encryption, so this case cannot be built on a pool here.
const LOCKED = `rpool/ROOT/debian	type	filesystem	-
rpool/ROOT/debian	encryption	aes-256-gcm	-
rpool/ROOT/debian	keystatus	unavailable	-
rpool/ROOT/debian	encryptionroot	rpool	-
`;

test('an encrypted root whose key is not loaded cannot be adopted; the message names the key to load', () => {
  const problem = adoptionProblem(parsePropertyTable(LOCKED)[0]!);
  assert.ok(problem);
  assert.equal(problem.code, 'REFUSED');
  assert.match(problem.message, /encrypted and the key of rpool is not loaded/);
  assert.match(problem.hint ?? '', /zfs load-key rpool/);
});

test('an encrypted root with its key loaded, and an unencrypted one, can be adopted', () => {
  assert.equal(adoptionProblem(parsePropertyTable(LOCKED.replace('unavailable', 'available'))[0]!), null);
  assert.equal(adoptionProblem(parsePropertyTable('p/ROOT/a\ttype\tfilesystem\t-\np/ROOT/a\tencryption\toff\tdefault\n')[0]!), null);
  assert.equal(adoptionProblem(parsePropertyTable('p/ROOT/a\ttype\tfilesystem\t-\n')[0]!), null, 'zfs-fuse prints no encryption at all');
});

test('a volume is not a root', () => {
  assert.match(adoptionProblem(parsePropertyTable('p/swap\ttype\tvolume\t-\n')[0]!)?.message ?? '', /it is a volume/);
});

test('withoutAltroot gives back the value that was set', () => {
  assert.equal(withoutAltroot('/mnt', '/mnt'), '/');
  assert.equal(withoutAltroot('/mnt/home', '/mnt'), '/home');
  assert.equal(withoutAltroot('/mntx', '/mnt'), '/mntx');
  assert.equal(withoutAltroot('none', '/mnt'), 'none');
  assert.equal(withoutAltroot('/home', null), '/home');
});

const ROOTS = `z/ROOT/mine	type	filesystem	-
z/ROOT/mine	org.sysprime:generation	3	local
z/ROOT/mine	org.zfsbootmenu:commandline	quiet	local
z/ROOT/be1	type	filesystem	-
z/ROOT/be1	org.zectl:bootloader	systemdboot	local
z/ROOT/installer	type	filesystem	-
z/ROOT/installer	org.sysprime:generation	3	inherited from z/ROOT
z/ROOT/mine@snap	type	snapshot	-
z/ROOT/mine@snap	org.zfsbootmenu:commandline	quiet	inherited from z/ROOT/mine
z/ROOT/mine@snap	org.zfsbootmenu:keymap	de	inherited from z/ROOT
`;

test('only roots with their own generation are environments; the others are foreign, zectl ones named so', () => {
  const records = parsePropertyTable(ROOTS);
  const ctx = { pool: 'z', mounts: [], bootfs: 'z/ROOT/be1' };
  assert.deepEqual(environmentsFrom(records, ctx).map((e) => e.name), ['mine']);
  assert.deepEqual(
    foreignRootsFrom(records, ctx).map((f) => [f.name, f.madeBy, f.isDefault]),
    [
      ['be1', 'zectl', true],
      ['installer', null, false],
    ],
  );
});

test('a clone is given the ZFSBootMenu properties its source has for itself, not those it inherits from above', () => {
  const snap = parsePropertyTable(ROOTS).find((r) => r.name === 'z/ROOT/mine@snap')!;
  assert.deepEqual(carriedBootProperties(snap, 'z/ROOT/mine'), ['-o', 'org.zfsbootmenu:commandline=quiet']);
});

test('childDatasetsOf lists the file systems below a root, parents first, without snapshots or siblings', () => {
  const records = parsePropertyTable(
    [
      'r/ROOT/u\ttype\tfilesystem\t-',
      'r/ROOT/u/var/lib\ttype\tfilesystem\t-',
      'r/ROOT/u/var\ttype\tfilesystem\t-',
      'r/ROOT/u/var@s\ttype\tsnapshot\t-',
      'r/ROOT/u@s\ttype\tsnapshot\t-',
      'r/ROOT/u2\ttype\tfilesystem\t-',
      'r/ROOT/u/usr\ttype\tfilesystem\t-',
    ].join('\n'),
  );
  assert.deepEqual(childDatasetsOf(records, 'r/ROOT/u'), ['r/ROOT/u/usr', 'r/ROOT/u/var', 'r/ROOT/u/var/lib']);
  assert.deepEqual(childDatasetsOf(records, 'r/ROOT/u2'), []);
});

test('a child with a mountpoint of its own or a volume among the children is refused; inherited mountpoints are not', () => {
  const child = (rel: string, over: Partial<EnvironmentChild> = {}): EnvironmentChild => ({ name: `p/ROOT/a/${rel}`, rel, type: 'filesystem', canmount: 'noauto', localMountpoint: null, ...over });
  assert.equal(childrenProblem('p/ROOT/a', [child('var', { canmount: 'off' }), child('var/lib')]), null);
  assert.match(childrenProblem('p/ROOT/a', [child('srv', { localMountpoint: '/opt/srv' })])?.message ?? '', /p\/ROOT\/a\/srv has a mountpoint of its own \(\/opt\/srv\)/);
  assert.match(childrenProblem('p/ROOT/a', [child('swap', { type: 'volume' })])?.message ?? '', /is a volume/);
});
