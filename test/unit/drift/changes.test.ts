import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pathsToReadAgain } from '../../../src/drift/changes.js';
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
