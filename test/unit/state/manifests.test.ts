/**
 * A manifest kept again unchanged under another subject (staging keeps the
 * admin's as the environment's and as the first boot's baseline) is linked
 * to the files written the first time, not formatted and written again,
 * and only while those files are still the ones written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openState } from '../../../src/state/db.js';
import { loadManifest, manifestSubject, saveManifest } from '../../../src/state/manifests.js';
import { isDurableTemp } from '../../../src/os/durable.js';
import { parseManifest } from '../../../src/bart/parse.js';
import type { Manifest } from '../../../src/bart/types.js';

function manifest(lines: string[]): Manifest {
  const m = parseManifest(`! Version 1.1\n! HASH XXH64\n! Monday\n${lines.join('\n')}\n`);
  for (const [i, e] of m.entries.entries()) e.stat = { dev: 40, ino: 100 + i, mtimeMs: 1.5, ctimeMs: 2.5 };
  return m;
}

const fileOf = (db: ReturnType<typeof openState>, subject: string): string => (db.prepare('SELECT file FROM manifests WHERE subject = ?').get(subject) as { file: string }).file;

test('kept again under another subject: the same files, linked; changed since: written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-state-'));
  const db = openState(dir);
  try {
    const ours = manifest(['/ D 4096 40755 - 6568a2b0 0 0', `/etc/a F 3 100644 - 6568a2b0 0 0 ${'a'.repeat(16)}`]);
    const env = manifestSubject.environment('base');
    const staged = manifestSubject.stagedOurs('s-1');
    saveManifest(db, dir, env, 'rules|xxh64', ours);
    saveManifest(db, dir, staged, 'rules|xxh64', ours);
    for (const ext of ['bart', 'index']) assert.equal(statSync(`${fileOf(db, staged)}.${ext}`).ino, statSync(`${fileOf(db, env)}.${ext}`).ino, ext);
    assert.deepEqual(loadManifest(db, staged, 'rules|xxh64'), loadManifest(db, env, 'rules|xxh64'));
    assert.deepEqual(loadManifest(db, staged)?.entries, ours.entries);

    // The environment's manifest replaced by another: a later save of the first one writes its own text.
    const other = manifest(['/ D 4096 40755 - 6568a2b0 0 0', `/etc/b F 3 100644 - 6568a2b0 0 0 ${'b'.repeat(16)}`]);
    saveManifest(db, dir, env, 'rules|xxh64', other);
    const again = manifestSubject.stagedOurs('s-2');
    saveManifest(db, dir, again, 'rules|xxh64', ours);
    assert.notEqual(statSync(`${fileOf(db, again)}.bart`).ino, statSync(`${fileOf(db, env)}.bart`).ino);
    assert.deepEqual(loadManifest(db, again)?.entries, ours.entries);
    assert.deepEqual(loadManifest(db, env)?.entries, other.entries);
    // The first baseline still holds what it was saved with.
    assert.deepEqual(loadManifest(db, staged)?.entries, ours.entries);
    assert.match(readFileSync(`${fileOf(db, staged)}.bart`, 'latin1'), /\/etc\/a F/);
    assert.deepEqual(readdirSync(join(dir, 'manifests')).filter(isDurableTemp), []);
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
