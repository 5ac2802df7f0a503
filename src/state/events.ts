/**
 * The history of environments: one row for each verb that changed one
 * (init, create, activate, staged, rename, destroy, prune, ...), with what
 * the verb says about it.
 */
import type { Db } from './db.js';

export function recordEvent(db: Db, environment: string, event: string, detail: Record<string, unknown> = {}): void {
  db.prepare('INSERT INTO events (at, environment, event, detail) VALUES (?, ?, ?, ?)').run(new Date().toISOString(), environment, event, JSON.stringify(detail));
}

export interface EventRow {
  at: string;
  environment: string;
  event: string;
  detail: Record<string, unknown>;
}

/** The history of one environment, oldest first. */
export function eventsOf(db: Db, environment: string): EventRow[] {
  const rows = db.prepare('SELECT at, environment, event, detail FROM events WHERE environment = ? ORDER BY at, id').all(environment) as { at: string; environment: string; event: string; detail: string }[];
  return rows.map((r) => ({ ...r, detail: JSON.parse(r.detail) as Record<string, unknown> }));
}
