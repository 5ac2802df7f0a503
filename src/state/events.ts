/**
 * The history of environments: one row for each verb that changed one
 * (init, create, activate, staged, rename, destroy, prune, ...), with what
 * the verb says about it.
 */
import type { Db } from './db.js';

export function recordEvent(db: Db, environment: string, event: string, detail: Record<string, unknown> = {}): void {
  db.prepare('INSERT INTO events (at, environment, event, detail) VALUES (?, ?, ?, ?)').run(new Date().toISOString(), environment, event, JSON.stringify(detail));
}
