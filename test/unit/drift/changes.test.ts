import { test } from 'node:test';
import assert from 'node:assert/strict';
import { otherNamesOf, pathsToReadAgain } from '../../../src/drift/changes.js';
import type { Manifest, ManifestEntry } from '../../../src/bart/types.js';
import { shareLineage, type SubvolumeShow } from '../../../src/backends/btrfs/parse.js';

test('modified paths are read by themselves, with their directory', () => {
  const r = pathsToReadAgain([{ kind: 'modified', path: '/etc/hosts' }, { kind: 'modified', path: '/' }]);
  assert.deepEqual([...r.paths].sort(), ['/', '/etc', '/etc/hosts']);
  assert.deepEqual([...r.subtrees], []);
});

test('created, removed and both sides of a rename are read with what is below them', () => {
  const r = pathsToReadAgain([
    { kind: 'created', path: '/etc/new' },
    { kind: 'removed', path: '/srv/old' },
    { kind: 'renamed', path: '/opt/a', to: '/opt/b/c' },
  ]);
  assert.deepEqual([...r.subtrees].sort(), ['/etc/new', '/opt/a', '/opt/b/c', '/srv/old']);
  assert.deepEqual([...r.paths].sort(), ['/etc', '/opt', '/opt/b', '/srv']);
});

test('every other name of a listed file\'s inode is read again: an edit through one hard link changed them all', () => {
  const entry = (path: string, type: 'F' | 'D', ino: number): ManifestEntry => ({ path, type, size: 1, mode: 0o100644, acl: '-', mtime: 0, uid: 0, gid: 0, stat: { dev: 7, ino, mtimeMs: 0, ctimeMs: 0 } });
  const base: Manifest = {
    header: { version: '1.1', hash: 'sha256', root: '/', date: '' },
    entries: [
      entry('/usr', 'D', 2),
      entry('/usr/share/doc/COPYING', 'F', 40),
      entry('/usr/share/licenses/COPYING', 'F', 40),
      entry('/usr/bin/demo', 'F', 41),
      entry('/var/lib/sysprime/store/objects/ab/cd', 'F', 40),
    ],
  };
  // btrfs send names the changed inode once, by one of its paths.
  const again = pathsToReadAgain([{ kind: 'modified', path: '/var/lib/sysprime/store/objects/ab/cd' }]);
  assert.deepEqual(otherNamesOf(base, again).sort(), ['/usr/share/doc/COPYING', '/usr/share/licenses/COPYING']);
  assert.deepEqual(otherNamesOf(base, pathsToReadAgain([{ kind: 'modified', path: '/usr/bin/demo' }])), []);
});

const show = (uuid: string, parentUuid: string | null, receivedUuid: string | null = null): SubvolumeShow => ({
  path: 'x', name: 'x', uuid, parentUuid, receivedUuid, id: 256, created: null, readonly: false,
});

test('lineage: snapshots of one another, siblings and received copies share it; strangers do not', () => {
  assert.ok(shareLineage(show('env', null), show('pristine', 'env')), 'pristine taken from the environment');
  assert.ok(shareLineage(show('env', 'pristine'), show('pristine', 'old')), 'environment cloned from the pristine');
  assert.ok(shareLineage(show('env', 'src'), show('pristine', 'src')), 'both snapshots of one subvolume');
  assert.ok(shareLineage(show('env', null, 'remote'), show('pristine', null, 'remote')), 'both received from one source');
  assert.ok(!shareLineage(show('env', null), show('pristine', 'other')), 'strangers');
  assert.ok(!shareLineage(show('env', 'a'), show('pristine', 'b')), 'cousins are not followed');
});
