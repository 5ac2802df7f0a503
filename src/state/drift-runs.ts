/**
 * The drift history: each recorded drift run of an environment (its counts)
 * and the paths that drifted in it, so `drift --history PATH` can say when a
 * file changed.
 */
import type { Db } from './db.js';
import { SysprimeError } from '../errors.js';
import type { PrivateSigningKey, PublicSigningKey } from '../signing/keys.js';
import { parseSignatureLine, signBytes, verifyBytes } from '../signing/signatures.js';

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

/**
 * The bytes a run's signature covers: the run, its paths in a fixed order,
 * and the signature of the run before it, so a run taken out of the middle
 * of the history breaks the chain.
 */
function signedBytesOfRun(id: number, run: DriftRun, paths: readonly { path: string; change: string; attributes: string; contents: string | null }[], previous: string | null): Buffer {
  const sorted = [...paths].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return Buffer.from(
    JSON.stringify({
      id,
      at: run.at,
      environment: run.environment,
      generation: run.generation,
      counts: [run.counts.added, run.counts.removed, run.counts.modified],
      paths: sorted.map((p) => [p.path, p.change, p.attributes, p.contents]),
      previous,
    }),
    'utf8',
  );
}

function previousSignature(db: Db, id: number): string | null {
  const row = db.prepare('SELECT signature FROM drift_runs WHERE id < ? ORDER BY id DESC LIMIT 1').get(id) as { signature: string | null } | undefined;
  return row?.signature ?? null;
}

/** Keep a run and its paths, in one transaction, signed with `key` when given; returns the run's id. */
export function recordDriftRun(db: Db, run: DriftRun, paths: readonly DriftPath[], key?: PrivateSigningKey): number {
  return db.transaction(() => {
    const id = Number(
      db
        .prepare('INSERT INTO drift_runs (at, environment, generation, added, removed, modified) VALUES (?, ?, ?, ?, ?, ?)')
        .run(run.at, run.environment, run.generation, run.counts.added, run.counts.removed, run.counts.modified).lastInsertRowid,
    );
    const ins = db.prepare('INSERT INTO drift_paths (run, path, change, attributes, contents) VALUES (?, ?, ?, ?, ?)');
    const rows = paths.map((p) => ({ path: p.path, change: p.change, attributes: p.attributes.join(','), contents: p.contents }));
    for (const p of rows) ins.run(id, p.path, p.change, p.attributes, p.contents);
    if (key !== undefined) {
      const line = signBytes(key, 'baseline', signedBytesOfRun(id, run, rows, previousSignature(db, id)));
      db.prepare('UPDATE drift_runs SET signature = ? WHERE id = ?').run(line, id);
    }
    return id;
  })();
}

/**
 * Checks the signature of every recorded run against `keys`, in order:
 * a run unsigned, altered (its counts or any of its paths), or taken out of
 * the chain is refused naming the run. Returns how many runs were checked.
 */
export function verifyDriftRuns(db: Db, keys: readonly PublicSigningKey[], trustSource: string): number {
  const runs = db.prepare('SELECT id, at, environment, generation, added, removed, modified, signature FROM drift_runs ORDER BY id').all() as {
    id: number;
    at: string;
    environment: string;
    generation: number;
    added: number;
    removed: number;
    modified: number;
    signature: string | null;
  }[];
  const pathsOf = db.prepare('SELECT path, change, attributes, contents FROM drift_paths WHERE run = ?');
  let previous: string | null = null;
  for (const r of runs) {
    const what = `drift run ${r.id} (${r.environment}, ${r.at})`;
    const sig = r.signature === null ? undefined : parseSignatureLine(r.signature);
    if (r.signature !== null && sig === undefined) {
      throw new SysprimeError('REFUSED', `${what} has a malformed signature`, { hint: 'the drift history was altered; see docs/signing.md' });
    }
    const run: DriftRun = { at: r.at, environment: r.environment, generation: r.generation, counts: { added: r.added, removed: r.removed, modified: r.modified } };
    const paths = pathsOf.all(r.id) as { path: string; change: string; attributes: string; contents: string | null }[];
    verifyBytes(keys, 'baseline', signedBytesOfRun(r.id, run, paths, previous), sig === undefined ? [] : [sig], {
      what,
      trustSource,
      // The run's time is in the signed bytes: a run signed while the key was valid stays verifiable after it expires.
      signedAt: new Date(r.at),
    });
    previous = r.signature;
  }
  return runs.length;
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
