/**
 * Mount points are the mounts' business, not drift: a directory with
 * another filesystem mounted on it keeps the pristine entry, and a mount
 * point only the pristine tree has (its boot dataset mounted at /boot, where
 * the live tree has nothing mounted and ZFS removed the directory on
 * unmount) is not read as deleted by the admin.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { settleMountPoints } from '../../../src/drift/compute.js';
import { compareManifests, makeHeader, type Manifest, type ManifestEntry } from '../../../src/bart/index.js';

function dir(path: string, mode = 0o40755, mtime = 1): ManifestEntry {
  return { path, type: 'D', size: 2, mode, acl: '-', mtime, uid: 0, gid: 0 };
}
function file(path: string, contents: string): ManifestEntry {
  return { path, type: 'F', size: 1, mode: 0o100644, acl: '-', mtime: 1, uid: 0, gid: 0, contents };
}
function manifest(entries: ManifestEntry[]): Manifest {
  return { header: makeHeader('xxh64'), entries };
}

describe('mount points in drift', () => {
  // A walk stays on one device: nothing below a mount point is listed.
  const pristine = manifest([dir('/boot'), dir('/etc'), file('/etc/hostname', 'bb'), dir('/root', 0o40700)]);

  test("a directory with a filesystem mounted on it keeps the pristine entry", () => {
    const live = manifest([dir('/boot'), dir('/etc'), file('/etc/hostname', 'bb'), dir('/root', 0o40755, 9)]);
    const settled = settleMountPoints(live, pristine, new Set(['/root']));
    assert.deepEqual(settled.entries.find((e) => e.path === '/root'), dir('/root', 0o40700));
  });

  test('a mount point only the pristine tree has is put back, in order, and compares equal', () => {
    const live = manifest([dir('/etc'), file('/etc/hostname', 'bb'), dir('/root', 0o40700)]);
    const settled = settleMountPoints(live, pristine, new Set(), new Set(['/boot']));
    assert.deepEqual(settled.entries.map((e) => e.path), ['/boot', '/etc', '/etc/hostname', '/root']);
    assert.deepEqual(compareManifests(pristine, settled), []);
  });

  test('without the pristine mount point the directory reads as deleted, as before', () => {
    const live = manifest([dir('/etc'), file('/etc/hostname', 'bb'), dir('/root', 0o40700)]);
    const settled = settleMountPoints(live, pristine, new Set());
    assert.ok(compareManifests(pristine, settled).some((d) => d.kind === 'delete' && d.path === '/boot'));
  });

  test('an ordinary directory the admin deleted stays deleted', () => {
    const live = manifest([dir('/boot'), dir('/root', 0o40700)]);
    const settled = settleMountPoints(live, pristine, new Set(), new Set(['/boot']));
    assert.ok(compareManifests(pristine, settled).some((d) => d.kind === 'delete' && d.path === '/etc'));
  });
});
