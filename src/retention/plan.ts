/**
 * Which environments to destroy, and why: a pure planner. The caller
 * destroys what it lists (the backend takes each one's pristine snapshot
 * along when nothing else needs it) and syncs the boot entries after.
 *
 * Rules, in order:
 * 1. The booted, default, one-shot and pinned environments are never
 *    destroyed.
 * 2. The `keep` newest environments that are not pinned (by creation order
 *    within the pool, then creation time, then generation) stay: pinned
 *    ones are kept besides, and do not count. Environments the apt hook
 *    made (`auto`) are counted apart, against `keepAuto`: a day of package
 *    operations never pushes the admin's own environments out.
 * 3. So does every environment younger than `keepDays` days (its creation
 *    time, in periods of 24 hours before `now`): an environment stays while
 *    it is among the newest OR young enough (as snapper's number cleanup
 *    with NUMBER_MIN_AGE). 0 turns this rule off.
 * 4. The others go.
 * 5. If the pool is below its free-space floor, environments kept by rules
 *    2 and 3 go too, oldest first, until the floor is met. That needs each
 *    one's unique space; where it is unknown the planner says it cannot
 *    compute and destroys nothing more for the floor.
 * 6. Where the bootloader copies kernels to the ESP, the ESP keeps room for
 *    one more environment's kernel and initramfs: if it would not have it
 *    after rules 4 and 5, more environments kept by rules 2 and 3 go, oldest
 *    first, each freeing its own files on the ESP, until it does.
 */

export interface RetentionEnvironment {
  name: string;
  generation: number;
  created: Date;
  /** Creation order within the pool (ZFS createtxg, Btrfs subvolume id): what "newest" means. */
  createdOrder: number;
  booted: boolean;
  isDefault: boolean;
  /** The admin pinned it (`sysprime pin`): never destroyed, not counted in `keep`. */
  pinned: boolean;
  /** Made by the apt hook before a package operation: counted against `keepAuto`, not `keep`. */
  auto?: boolean;
  /** Where it is mounted (`sysprime mount`, a `sysprime shell` in it, a verb reading it), or null: never destroyed while it is. */
  mounted?: string | null;
  /** Bytes freed by destroying it, or null when the filesystem cannot say. */
  spaceUnique: number | null;
}

export interface PruneOptions {
  keep: number;
  /** How many of the environments the apt hook made stay (rule 2); absent, they count against `keep` like any other. */
  keepAuto?: number;
  /** Environments younger than this many days stay (rule 3); 0 turns it off. */
  keepDays: number;
  /** What "younger" is measured from. */
  now: Date;
  /** 0 disables the floor. */
  minFreePercent: number;
  poolFree: number;
  poolSize: number;
  /** The environment set to boot once next, if any. */
  oneShot: string | null;
  /** The ESP, when the bootloader keeps kernels there; rule 5. */
  esp?: EspSpace;
}

export interface EspSpace {
  /** Bytes free on the ESP now. */
  free: number;
  /** Bytes one more environment's kernel files take (the largest set there now). */
  need: number;
  /** Bytes of each environment's own files on the ESP. */
  perEnvironment: ReadonlyMap<string, number>;
}

export type KeepReason = 'booted' | 'default' | 'one-shot' | 'pinned' | 'mounted' | 'newest' | 'newest-auto' | 'recent';
/** Reasons of retention: the free-space floor and the ESP's room may still override them. */
const SOFT: ReadonlySet<KeepReason> = new Set(['newest', 'newest-auto', 'recent']);
const DAY_MS = 24 * 60 * 60 * 1000;
export type DestroyReason = 'beyond-keep' | 'free-space' | 'esp-space';

export interface PlannedKeep {
  name: string;
  reasons: KeepReason[];
  why: string;
}

export interface PlannedDestroy {
  name: string;
  reason: DestroyReason;
  why: string;
  spaceUnique: number | null;
}

export interface PrunePlan {
  keep: PlannedKeep[];
  /** In the order to destroy them (oldest first). */
  destroy: PlannedDestroy[];
  space: {
    floorPercent: number;
    freeBefore: number;
    /** Null when some destroyed environment's space is unknown. */
    freeAfter: number | null;
    /** Null when it cannot be computed. */
    floorMet: boolean | null;
    /** Absent when the bootloader keeps no kernels on an ESP. */
    esp?: { freeBefore: number; freeAfter: number; need: number; met: boolean };
  };
  /** Things the plan could not do or compute. */
  notes: string[];
}

// The filesystem's creation order first: the clock can jump (a machine booted with a bad RTC stamps
// its new environments in the past), the order in which the pool made them cannot.
function newestFirst(a: RetentionEnvironment, b: RetentionEnvironment): number {
  return b.createdOrder - a.createdOrder || b.created.getTime() - a.created.getTime() || b.generation - a.generation || a.name.localeCompare(b.name);
}

const gib = (n: number): string => `${(n / 2 ** 30).toFixed(2)} GiB`;
const pct = (free: number, size: number): string => `${((100 * free) / size).toFixed(1)}%`;

/** Made less than `days` days before `now`; an unknown creation time (the epoch, or none) is not. */
function isRecent(e: RetentionEnvironment, days: number, now: Date): boolean {
  const made = e.created.getTime();
  return days > 0 && Number.isFinite(made) && made > 0 && now.getTime() - made < days * DAY_MS;
}

const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;

export function planPrune(envs: readonly RetentionEnvironment[], opts: PruneOptions): PrunePlan {
  const ordered = [...envs].sort(newestFirst);
  const notes: string[] = [];
  const keep = new Map<string, KeepReason[]>();
  const destroy: PlannedDestroy[] = [];

  let counted = 0;
  let countedAuto = 0;
  const apart = (e: RetentionEnvironment): boolean => e.auto === true && opts.keepAuto !== undefined;
  for (const e of ordered) {
    const reasons: KeepReason[] = [];
    if (e.booted) reasons.push('booted');
    if (e.isDefault) reasons.push('default');
    if (opts.oneShot !== null && e.name === opts.oneShot) reasons.push('one-shot');
    // Someone is using it (a shell in it, a mount an admin is looking through): destroying it would pull the tree from under them.
    if (e.mounted !== undefined && e.mounted !== null) reasons.push('mounted');
    if (e.pinned) reasons.push('pinned');
    // Pinned ones are kept besides the newest: pinning an old environment does not shorten the history.
    else if (apart(e)) {
      if (countedAuto++ < opts.keepAuto!) reasons.push('newest-auto');
    } else if (counted++ < opts.keep) reasons.push('newest');
    if (isRecent(e, opts.keepDays, opts.now)) reasons.push('recent');
    if (reasons.length > 0) {
      keep.set(e.name, reasons);
      continue;
    }
    const beyond = apart(e) ? `made before a package operation, and older than the ${opts.keepAuto} newest of those (keep_auto)` : `older than the ${opts.keep} newest`;
    const why = opts.keepDays > 0 ? `${beyond}, and made ${plural(opts.keepDays, 'day')} ago or more` : beyond;
    destroy.push({ name: e.name, reason: 'beyond-keep', why, spaceUnique: e.spaceUnique });
    const made = e.created.getTime();
    if (opts.keepDays > 0 && !(Number.isFinite(made) && made > 0)) notes.push(`the creation time of "${e.name}" is unknown: keep_days cannot keep it`);
  }
  if (opts.oneShot !== null && !envs.some((e) => e.name === opts.oneShot)) notes.push(`the one-shot environment "${opts.oneShot}" does not exist`);

  const floorBytes = (opts.minFreePercent / 100) * opts.poolSize;
  let free: number | null = opts.poolFree;
  for (const d of destroy) free = free === null || d.spaceUnique === null ? null : free + d.spaceUnique;
  if (free === null) notes.push(`cannot compute the free space after pruning: the space of ${destroy.filter((d) => d.spaceUnique === null).map((d) => `"${d.name}"`).join(', ')} is unknown`);

  if (opts.minFreePercent > 0 && opts.poolSize > 0 && free !== null && free < floorBytes) {
    // Only environments kept by retention (newest, recent) can go; the booted, default, one-shot and pinned ones never do.
    const candidates = ordered.filter((e) => keep.get(e.name)?.every((r) => SOFT.has(r))).reverse();
    for (const e of candidates) {
      if (free === null || free >= floorBytes) break;
      if (e.spaceUnique === null) {
        notes.push(`cannot compute how much destroying "${e.name}" frees, so no more environments are destroyed for the ${opts.minFreePercent}% floor`);
        free = null;
        break;
      }
      keep.delete(e.name);
      free += e.spaceUnique;
      destroy.push({
        name: e.name,
        reason: 'free-space',
        why: `the pool is below its ${opts.minFreePercent}% free-space floor; destroying it frees ${gib(e.spaceUnique)}`,
        spaceUnique: e.spaceUnique,
      });
    }
    if (free !== null && free < floorBytes) {
      notes.push(`the pool stays below its ${opts.minFreePercent}% floor (${pct(free, opts.poolSize)} free after pruning): only protected environments are left`);
    }
  }

  const esp = opts.esp === undefined ? undefined : espRoom(opts.esp, ordered, keep, destroy, notes);

  const why: Record<KeepReason, string> = {
    booted: 'it is running now',
    default: 'it is the default boot environment',
    'one-shot': 'it is set to boot once next',
    pinned: 'it is pinned',
    mounted: 'it is mounted (`sysprime mount`, or a `sysprime shell` in it): try again once it is unmounted',
    newest: `it is among the ${opts.keep} newest`,
    'newest-auto': `it is among the ${opts.keepAuto ?? 0} newest made before a package operation`,
    recent: `it is younger than ${plural(opts.keepDays, 'day')}`,
  };
  const kept: PlannedKeep[] = ordered
    .filter((e) => keep.has(e.name))
    .map((e) => {
      const reasons = keep.get(e.name)!;
      return { name: e.name, reasons, why: reasons.map((r) => why[r]).join('; ') };
    });
  // Oldest first: yesterday's environment is the last to go.
  const rank = new Map(ordered.map((e, i) => [e.name, i]));
  destroy.sort((a, b) => rank.get(b.name)! - rank.get(a.name)!);

  return {
    keep: kept,
    destroy,
    space: {
      floorPercent: opts.minFreePercent,
      freeBefore: opts.poolFree,
      freeAfter: free,
      floorMet: opts.minFreePercent === 0 || opts.poolSize <= 0 ? true : free === null ? null : free >= floorBytes,
      ...(esp === undefined ? {} : { esp }),
    },
    notes,
  };
}

const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;

/** Rule 6: destroy environments kept by retention only, oldest first, until the ESP has room for one more kernel set. */
function espRoom(
  esp: EspSpace,
  ordered: readonly RetentionEnvironment[],
  keep: Map<string, KeepReason[]>,
  destroy: PlannedDestroy[],
  notes: string[],
): NonNullable<PrunePlan['space']['esp']> {
  const filesOf = (name: string): number => esp.perEnvironment.get(name) ?? 0;
  let free = esp.free + destroy.reduce((sum, d) => sum + filesOf(d.name), 0);
  if (free < esp.need) {
    const candidates = ordered.filter((e) => keep.get(e.name)?.every((r) => SOFT.has(r))).reverse();
    for (const e of candidates) {
      if (free >= esp.need) break;
      // An environment with nothing on the ESP frees nothing there: destroying it would not help.
      if (filesOf(e.name) === 0) continue;
      keep.delete(e.name);
      free += filesOf(e.name);
      destroy.push({
        name: e.name,
        reason: 'esp-space',
        why: `the ESP lacks room for one more kernel and initramfs (${mib(esp.need)}); its files there take ${mib(filesOf(e.name))}`,
        spaceUnique: e.spaceUnique,
      });
    }
    if (free < esp.need) {
      notes.push(`the ESP stays short of room for one more kernel and initramfs: ${mib(free)} free after pruning, ${mib(esp.need)} needed; only protected environments are left`);
    }
  }
  return { freeBefore: esp.free, freeAfter: free, need: esp.need, met: free >= esp.need };
}
