/** Schema migrations, applied in order; never edit one that has shipped. */
export const MIGRATIONS: readonly string[] = [
  // 1: history of environments and the journal of multi-step operations
  `
  CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    environment TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
  );
  CREATE INDEX events_env ON events (environment, at);

  CREATE TABLE operations (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'undone')),
    pid INTEGER NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    error TEXT
  );
  CREATE TABLE steps (
    operation INTEGER NOT NULL REFERENCES operations (id),
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('started', 'done', 'failed', 'undone')),
    at TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (operation, seq)
  );
  CREATE TABLE locks (
    name TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    start TEXT NOT NULL,
    what TEXT NOT NULL,
    at TEXT NOT NULL
  );
  `,
  // 2: manifests, drift records and reintegration reports
  `
  CREATE TABLE manifests (
    subject TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    identity TEXT NOT NULL,
    entries INTEGER NOT NULL,
    file TEXT NOT NULL
  );

  CREATE TABLE drift_runs (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    environment TEXT NOT NULL,
    generation INTEGER NOT NULL,
    added INTEGER NOT NULL,
    removed INTEGER NOT NULL,
    modified INTEGER NOT NULL
  );
  CREATE TABLE drift_paths (
    run INTEGER NOT NULL REFERENCES drift_runs (id),
    path TEXT NOT NULL,
    change TEXT NOT NULL,
    attributes TEXT NOT NULL DEFAULT '',
    contents TEXT
  );
  CREATE INDEX drift_paths_path ON drift_paths (path, run);

  CREATE TABLE reports (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    environment TEXT NOT NULL,
    summary TEXT NOT NULL,
    body TEXT NOT NULL
  );
  `,
  // 3: the daemon's schedule, so `status` can say when the next run is
  `
  CREATE TABLE schedule (
    job TEXT PRIMARY KEY,
    expression TEXT NOT NULL,
    next_run TEXT,
    last_run TEXT,
    last_result TEXT,
    pid INTEGER NOT NULL,
    pid_start TEXT NOT NULL
  );
  `,
  // 4: the signature of each drift run ([audit] key), chained to the one before it
  `
  ALTER TABLE drift_runs ADD COLUMN signature TEXT;
  `,
  // 5: content digests recorded before the history stopped keeping those of hidden files (/etc/shadow,
  // 0600 keys, what `[drift] secret` names). Which of the old rows were hidden cannot be told afterwards
  // (the mode then was not kept), and a digest lets whoever reads `drift --history` test guesses offline:
  // every digest recorded until now goes. The changes and attributes of those runs stay; newer runs keep
  // the digests of files everyone may read, as recordDrift decides.
  `
  UPDATE drift_paths SET contents = NULL WHERE contents IS NOT NULL;
  `,
  // 6: what each staged generation's update was, as the fleet names it on every machine (src/staging/update-identity.ts)
  `
  CREATE TABLE IF NOT EXISTS generations (
    generation INTEGER PRIMARY KEY,
    update_id TEXT,
    lineage TEXT NOT NULL,
    packages TEXT NOT NULL,
    at TEXT NOT NULL
  );
  `,
  // 7: halts the fleet could not be told of (etcd unreachable), sent at the next chance
  `
  CREATE TABLE IF NOT EXISTS fleet_outbox (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    halt TEXT NOT NULL
  );
  `,
  // 8: the filesystem or pool this database belongs to (src/state/owner.ts): one row
  `
  CREATE TABLE IF NOT EXISTS owner (
    identity TEXT NOT NULL,
    described TEXT NOT NULL,
    at TEXT NOT NULL
  );
  `,
];
