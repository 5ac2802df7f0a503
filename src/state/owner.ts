/**
 * Which filesystem or pool the state database belongs to. What it keeps
 * (manifests keyed by environment name and generation, the journal, drift
 * history, generations' updates) is one filesystem's: two configurations
 * sharing one `[state] dir` would overwrite each other's manifests and take
 * one's pristine manifest for the other's drift baseline.
 */
import type { Db } from './db.js';

export interface StateOwner {
  /** The backend's identity() of the filesystem or pool. */
  identity: string;
  /** How it was described when recorded (`btrfs at /mnt/top`, `zfs pool rpool`), for messages. */
  described: string;
  at: string;
}

export function stateOwner(db: Db): StateOwner | undefined {
  return db.prepare('SELECT identity, described, at FROM owner').get() as StateOwner | undefined;
}

/** Record the owner, replacing any recorded before (one row). */
export function recordStateOwner(db: Db, identity: string, described: string): void {
  db.transaction(() => {
    db.prepare('DELETE FROM owner').run();
    db.prepare('INSERT INTO owner (identity, described, at) VALUES (?, ?, ?)').run(identity, described, new Date().toISOString());
  })();
}
