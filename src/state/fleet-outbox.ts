/**
 * Halts this machine owes the fleet: a health check failed while etcd did
 * not answer. A halt must not be lost (other machines would reboot into the
 * update that failed here), so it is kept until it is sent: at the next
 * fleet call this machine makes (a boot's report, a reboot, `fleet` verbs
 * that run with the state database).
 */
import type { Db } from './db.js';

export interface OwedHalt {
  generation: number;
  update: string | null;
  lineage: string[];
  reason: string;
  /** When the check failed. */
  at: string;
}

export function oweHalt(db: Db, halt: OwedHalt): void {
  db.prepare('INSERT INTO fleet_outbox (at, halt) VALUES (?, ?)').run(halt.at, JSON.stringify(halt));
}

/** The halts owed, oldest first, with the id that settles each. */
export function owedHalts(db: Db): { id: number; halt: OwedHalt }[] {
  const rows = db.prepare('SELECT id, halt FROM fleet_outbox ORDER BY id').all() as { id: number; halt: string }[];
  return rows.map((r) => ({ id: r.id, halt: JSON.parse(r.halt) as OwedHalt }));
}

export function haltSent(db: Db, id: number): void {
  db.prepare('DELETE FROM fleet_outbox WHERE id = ?').run(id);
}
