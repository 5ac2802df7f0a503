/**
 * Which of the admin's snapshots (`sysprime snapshot`) to destroy, and why:
 * a pure planner beside the one for environments (plan.ts).
 *
 * Rules, in order:
 * 1. The snapshots of a pinned environment stay, all of them: a pin keeps
 *    the environment's whole history.
 * 2. The snapshots of an environment this prune destroys are not listed:
 *    they go with it.
 * 3. For each environment, the `keepSnapshots` newest stay (creation order
 *    within the pool, then creation time), and so does every snapshot
 *    younger than `keepDays` days (0 turns that off), as for environments.
 * 4. The others go, oldest first.
 */

export interface RetentionSnapshot {
  environment: string;
  name: string;
  created: Date;
  createdOrder: number;
}

export interface SnapshotPruneOptions {
  keepSnapshots: number;
  keepDays: number;
  now: Date;
  /** Environments the admin pinned. */
  pinned: ReadonlySet<string>;
  /** Environments this prune destroys. */
  going: ReadonlySet<string>;
}

export interface PlannedSnapshot {
  environment: string;
  name: string;
  reason: 'pinned' | 'newest' | 'recent' | 'beyond-keep';
  why: string;
}

export interface SnapshotPrunePlan {
  keep: PlannedSnapshot[];
  /** Oldest first. */
  destroy: PlannedSnapshot[];
}

const DAY_MS = 24 * 60 * 60 * 1000;

function newestFirst(a: RetentionSnapshot, b: RetentionSnapshot): number {
  return b.createdOrder - a.createdOrder || b.created.getTime() - a.created.getTime() || a.name.localeCompare(b.name);
}

export function planSnapshotPrune(snapshots: readonly RetentionSnapshot[], opts: SnapshotPruneOptions): SnapshotPrunePlan {
  const keep: PlannedSnapshot[] = [];
  const destroy: (PlannedSnapshot & { at: RetentionSnapshot })[] = [];
  const byEnvironment = new Map<string, RetentionSnapshot[]>();
  for (const s of snapshots) byEnvironment.set(s.environment, [...(byEnvironment.get(s.environment) ?? []), s]);
  for (const [environment, list] of byEnvironment) {
    if (opts.going.has(environment)) continue;
    list.sort(newestFirst);
    list.forEach((s, i) => {
      const made = s.created.getTime();
      const young = opts.keepDays > 0 && made > 0 && opts.now.getTime() - made < opts.keepDays * DAY_MS;
      if (opts.pinned.has(environment)) keep.push({ environment, name: s.name, reason: 'pinned', why: `${environment} is pinned` });
      else if (i < opts.keepSnapshots) keep.push({ environment, name: s.name, reason: 'newest', why: `among the ${opts.keepSnapshots} newest of ${environment}` });
      else if (young) keep.push({ environment, name: s.name, reason: 'recent', why: `younger than ${opts.keepDays} days` });
      else destroy.push({ environment, name: s.name, reason: 'beyond-keep', why: `beyond the ${opts.keepSnapshots} newest snapshots of ${environment}`, at: s });
    });
  }
  destroy.sort((a, b) => -newestFirst(a.at, b.at));
  return { keep, destroy: destroy.map(({ at: _at, ...d }) => d) };
}
