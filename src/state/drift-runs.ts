/**
 * The drift history: each recorded drift run of an environment (its counts)
 * and the paths that drifted in it, so `drift --history PATH` can say when a
 * file changed.
 */
import type { Db } from './db.js';

/** How a path drifted in a run: kept here, with the rows that hold it. */
export type ChangeKind = 'added' | 'removed' | 'modified';

export interface DriftRun {
  at: string;
  environment: string;
  generation: number;
  counts: Record<ChangeKind, number>;
}

export interface DriftPath {
  path: string;
  change: ChangeKind;
  attributes: string[];
  /** Digest of the content then, or null. */
  contents: string | null;
}

/** One run in which a path's environment was recorded, and the path's state in it. */
export interface DriftPathInRun {
  at: string;
  environment: string;
  generation: number;
  /** null: the path showed no drift in that run. */
  change: ChangeKind | null;
  attributes: string[];
  contents: string | null;
}

/** Keep a run and its paths, in one transaction; returns the run's id. */
export function recordDriftRun(db: Db, run: DriftRun, paths: readonly DriftPath[]): number {
  return db.transaction(() => {
    const id = Number(
      db
        .prepare('INSERT INTO drift_runs (at, environment, generation, added, removed, modified) VALUES (?, ?, ?, ?, ?, ?)')
        .run(run.at, run.environment, run.generation, run.counts.added, run.counts.removed, run.counts.modified).lastInsertRowid,
    );
    const ins = db.prepare('INSERT INTO drift_paths (run, path, change, attributes, contents) VALUES (?, ?, ?, ?, ?)');
    for (const p of paths) ins.run(id, p.path, p.change, p.attributes.join(','), p.contents);
    return id;
  })();
}

/** Every recorded run of the environments the path ever drifted in, oldest first, with the path's state in each. */
export function runsOfPath(db: Db, path: string): DriftPathInRun[] {
  const rows = db
    .prepare(
      `SELECT r.at, r.environment, r.generation, p.change, p.attributes, p.contents
       FROM drift_runs r LEFT JOIN drift_paths p ON p.run = r.id AND p.path = ?
       WHERE r.environment IN (SELECT DISTINCT r2.environment FROM drift_runs r2 JOIN drift_paths p2 ON p2.run = r2.id WHERE p2.path = ?)
       ORDER BY r.id`,
    )
    .all(path, path) as { at: string; environment: string; generation: number; change: ChangeKind | null; attributes: string | null; contents: string | null }[];
  return rows.map((r) => ({
    at: r.at,
    environment: r.environment,
    generation: r.generation,
    change: r.change,
    attributes: r.attributes ? r.attributes.split(',') : [],
    contents: r.contents,
  }));
}

/** The latest recorded run of an environment (the metrics' drift path count), if any. */
export function lastDriftRun(db: Db, environment: string): DriftRun | undefined {
  const row = db.prepare('SELECT at, environment, generation, added, removed, modified FROM drift_runs WHERE environment = ? ORDER BY id DESC LIMIT 1').get(environment) as
    | { at: string; environment: string; generation: number; added: number; removed: number; modified: number }
    | undefined;
  return row ? { at: row.at, environment: row.environment, generation: row.generation, counts: { added: row.added, removed: row.removed, modified: row.modified } } : undefined;
}
