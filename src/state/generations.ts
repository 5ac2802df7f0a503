/**
 * What each staged generation's update was: its fleet-wide identity (a
 * digest of the package changes, src/staging/update-identity.ts), the
 * identities of every update it is built on (its lineage, oldest first) and
 * the package changes themselves. Generation numbers are each machine's
 * own; these identities are what a fleet halts and orders by.
 */
import type { Db } from './db.js';

/** A package an update brought, changed or removed (the updaters' PackageChange, kept as data). */
export interface RecordedPackageChange {
  name: string;
  from: string | null;
  to: string | null;
}

export interface GenerationUpdate {
  generation: number;
  /** null when the update's packages could not be told (no package database in the tree). */
  update: string | null;
  /** The identities of the updates this generation is built on and its own, oldest first. */
  lineage: string[];
  packages: RecordedPackageChange[];
}

/** Record (or replace: a number freed by an undone or destroyed generation is used again) a generation's update. */
export function recordGeneration(db: Db, g: GenerationUpdate): void {
  db.prepare('INSERT OR REPLACE INTO generations (generation, update_id, lineage, packages, at) VALUES (?, ?, ?, ?, ?)').run(
    g.generation,
    g.update,
    JSON.stringify(g.lineage),
    JSON.stringify(g.packages),
    new Date().toISOString(),
  );
}

/**
 * Forget the rows of generations that are gone (no pristine state and no
 * environment of them left):
 * their number may be used again by a generation that is not their update
 * (an import), which must not inherit their lineage. Later generations keep
 * the identities in their own lineage.
 */
export function forgetGenerationsExcept(db: Db, kept: readonly number[]): void {
  // One statement; the numbers go as one JSON array, so their count is not bounded by SQLite's limit on parameters.
  db.prepare('DELETE FROM generations WHERE generation NOT IN (SELECT value FROM json_each(?))').run(JSON.stringify(kept));
}

export function forgetGeneration(db: Db, generation: number): void {
  db.prepare('DELETE FROM generations WHERE generation = ?').run(generation);
}

/** A generation's update, or undefined when it was not staged here (adopted, imported, or staged before this was kept). */
export function generationUpdate(db: Db, generation: number): GenerationUpdate | undefined {
  const row = db.prepare('SELECT generation, update_id, lineage, packages FROM generations WHERE generation = ?').get(generation) as
    | { generation: number; update_id: string | null; lineage: string; packages: string }
    | undefined;
  if (row === undefined) return undefined;
  return { generation: row.generation, update: row.update_id, lineage: JSON.parse(row.lineage) as string[], packages: JSON.parse(row.packages) as RecordedPackageChange[] };
}
