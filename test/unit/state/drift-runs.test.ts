/**
 * The drift history never serves a content digest recorded before hidden
 * files' digests were left out of it: migration 4 scrubs them from a
 * database an older sysprime filled.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openState } from '../../../src/state/db.js';
import { MIGRATIONS } from '../../../src/state/migrations.js';
import { recordDriftRun, runsOfPath } from '../../../src/state/drift-runs.js';

const SHADOW_DIGEST = 'a3f1c2d4e5f60718293a4b5c6d7e8f90a3f1c2d4e5f60718293a4b5c6d7e8f90';

test('digests recorded by an older sysprime are scrubbed; later runs keep public ones', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-state-'));
  try {
    // A database at the schema before the scrub, with a run recorded as sysprime recorded it then: /etc/shadow with its digest.
    let db = openState(dir);
    db.prepare('UPDATE schema_version SET version = ?').run(MIGRATIONS.findIndex((m) => m.includes('UPDATE drift_paths SET contents = NULL')));
    recordDriftRun(db, { at: '2026-01-01T00:00:00Z', environment: 'base', generation: 1, counts: { added: 0, removed: 0, modified: 2 } }, [
      { path: '/etc/shadow', change: 'modified', attributes: ['size', 'contents'], contents: SHADOW_DIGEST },
      { path: '/etc/motd', change: 'modified', attributes: ['contents'], contents: 'b'.repeat(64) },
    ]);
    db.close();

    db = openState(dir);
    try {
      assert.equal((db.prepare('SELECT version FROM schema_version').get() as { version: number }).version, MIGRATIONS.length);
      const shadow = runsOfPath(db, '/etc/shadow');
      assert.equal(shadow.length, 1);
      assert.equal(shadow[0]!.change, 'modified', 'the change itself stays in the history');
      assert.deepEqual(shadow[0]!.attributes, ['size', 'contents']);
      assert.equal(shadow[0]!.contents, null);
      const leftover = db.prepare("SELECT count(*) AS n FROM drift_paths WHERE contents IS NOT NULL").get() as { n: number };
      assert.equal(leftover.n, 0);

      // Recorded after the migration, a world-readable file's digest is kept (recordDrift leaves hidden ones out).
      recordDriftRun(db, { at: '2026-01-02T00:00:00Z', environment: 'base', generation: 1, counts: { added: 0, removed: 0, modified: 1 } }, [
        { path: '/etc/motd', change: 'modified', attributes: ['contents'], contents: 'c'.repeat(64) },
      ]);
    } finally {
      db.close();
    }
    // Opening again runs no migration twice: the newer digest stays.
    db = openState(dir);
    try {
      assert.deepEqual(runsOfPath(db, '/etc/motd').map((r) => r.contents), [null, 'c'.repeat(64)]);
    } finally {
      db.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
