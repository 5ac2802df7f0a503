/**
 * The one place that opens the state database: SQLite in WAL mode, schema
 * migrations applied in order inside transactions, a busy timeout so the CLI
 * and the daemon can share it.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SysprimeError, messageOf } from '../errors.js';
import { MIGRATIONS } from './migrations.js';

export type Db = Database.Database;

export const DB_FILE = 'sysprime.db';

export function openState(dir: string): Db {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new SysprimeError('STATE', `cannot create the state directory ${dir}: ${messageOf(err)}`, {
      hint: 'set [state] dir in sysprime.toml to a writable directory outside the environments',
      cause: err,
    });
  }
  const path = join(dir, DB_FILE);
  let db: Db;
  try {
    db = new Database(path, { timeout: 15000 });
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new Error(`integrity check says: ${String(check)}`);
    migrate(db);
    // Readers are never blocked in WAL mode, so a process holding the database for writing would only show
    // at sysprime's first write, maybe after it changed a pool: find out now, before anything is done.
    db.exec('BEGIN IMMEDIATE');
    db.exec('COMMIT');
  } catch (err) {
    if (err instanceof SysprimeError) throw err;
    const msg = messageOf(err);
    if (/locked|busy/i.test(msg)) {
      throw new SysprimeError('BUSY', `the state database ${path} is locked by another process`, {
        hint: 'wait for the other sysprime to finish, or find it with `fuser ' + path + '`',
        cause: err,
      });
    }
    throw new SysprimeError('STATE', `the state database ${path} is unusable: ${msg}`, {
      hint: 'sysprime never deletes it; move it aside (its history is in it) and run again to start a new one',
      cause: err,
    });
  }
  return db;
}

function migrate(db: Db): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
  const row = db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined;
  let version = row?.version ?? 0;
  if (version > MIGRATIONS.length) {
    throw new SysprimeError('STATE', `the state database has schema version ${version}, newer than this sysprime knows (${MIGRATIONS.length})`, {
      hint: 'upgrade sysprime; it will not downgrade a database',
    });
  }
  while (version < MIGRATIONS.length) {
    const next = version + 1;
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      if (version === 0 && !row) db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(next);
      else db.prepare('UPDATE schema_version SET version = ?').run(next);
    })();
    version = next;
  }
}
