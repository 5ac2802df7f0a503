/**
 * First boot: replay only what changed on the old environment since
 * staging. The staging run applied plan(base, oursAtStaging, theirs) to the
 * new environment; at first boot the old environment is oursNow. The paths
 * whose entry differs between oursAtStaging and oursNow are the only ones to
 * look at again, and for them the full plan against oursNow says what the
 * new environment must end with:
 *
 * - still an admin change → the full plan's action (copy, merge, ...);
 * - the admin reverted a change staging carried over (the path is pristine
 *   again in oursNow) → `restore`: put the update's object back, or remove
 *   what staging put there when the update has none.
 *
 * Paths left as conflicts at staging and untouched since need nothing: the
 * admin's version and the `.sysprime-new` beside it are already there.
 * What must be kept between staging and first boot: the ours manifest taken
 * at staging (oursAtStaging), beside the pristine manifests of N and N+1.
 */
import type { Manifest, ManifestEntry } from '../bart/types.js';
import type { Rules } from '../bart/rules.js';
import { comparePaths, countActions, InManifestOrder, planReintegration, PERMS, type PlanAction, type ReintegrationPlan } from './plan.js';

export interface SinceStagingInput {
  base: Manifest;
  oursAtStaging: Manifest;
  oursNow: Manifest;
  theirs: Manifest;
  rules?: Rules;
  /** Shared paths inside the root, as at staging (plan.ts). */
  shared?: readonly string[];
}

/** The properties an entry has; one with any other is compared the slow way (sameByJson). */
const KNOWN = new Set(['path', 'type', 'size', 'mode', 'acl', 'mtime', 'uid', 'gid', 'contents', 'dest', 'devnode', 'xattrs', 'stat']);

function onlyKnown(e: ManifestEntry): boolean {
  for (const k in e) if (!KNOWN.has(k)) return false;
  return true;
}

/**
 * Whether two entries of a path are the same, modification time and stat
 * index aside: every other property equal (absent or undefined alike), the
 * xattrs present in both or in neither, and equal. Property by property,
 * where this compared JSON texts of every entry (seconds at 500,000
 * entries); an entry with a property not known here still is.
 */
function same(a: ManifestEntry, b: ManifestEntry): boolean {
  if (
    a.type !== b.type ||
    a.size !== b.size ||
    a.mode !== b.mode ||
    a.acl !== b.acl ||
    a.uid !== b.uid ||
    a.gid !== b.gid ||
    a.contents !== b.contents ||
    a.dest !== b.dest ||
    a.devnode !== b.devnode ||
    a.path !== b.path ||
    (a.xattrs === undefined) !== (b.xattrs === undefined) ||
    !xattrsSame(a, b)
  ) {
    return false;
  }
  return (onlyKnown(a) && onlyKnown(b)) || sameByJson(a, b);
}

function sameByJson(a: ManifestEntry, b: ManifestEntry): boolean {
  const x = { ...a, stat: undefined, mtime: 0 };
  const y = { ...b, stat: undefined, mtime: 0 };
  return JSON.stringify(x, Object.keys(x).sort()) === JSON.stringify(y, Object.keys(y).sort()) && xattrsSame(a, b);
}

function xattrsSame(a: ManifestEntry, b: ManifestEntry): boolean {
  const x = a.xattrs ?? {};
  const y = b.xattrs ?? {};
  for (const k in x) if (Object.hasOwn(x, k) && x[k] !== (Object.hasOwn(y, k) ? y[k] : undefined)) return false;
  for (const k in y) if (Object.hasOwn(y, k) && !Object.hasOwn(x, k) && y[k] !== undefined) return false;
  return true;
}

/**
 * Paths whose entry differs between two manifests of the same tree (times
 * aside): a merge-join of the two in manifest order (each path's last entry
 * when a manifest is in another order, as a map of them would keep).
 */
export function changedPaths(before: Manifest, after: Manifest): Set<string> {
  const a = new InManifestOrder(before);
  const b = new InManifestOrder(after);
  const out = new Set<string>();
  let i = 0;
  let j = 0;
  while (i < a.keys.length || j < b.keys.length) {
    const ka = a.keys[i];
    const kb = b.keys[j];
    if (kb === undefined || (ka !== undefined && ka < kb)) out.add(a.entries[i++]!.path);
    else if (ka === undefined || kb < ka) out.add(b.entries[j++]!.path);
    else {
      if (!same(a.entries[i]!, b.entries[j]!)) out.add(a.entries[i]!.path);
      i++;
      j++;
    }
  }
  return out;
}

export function planSinceStaging(input: SinceStagingInput): ReintegrationPlan {
  const changed = changedPaths(input.oursAtStaging, input.oursNow);
  const common = { ...(input.rules ? { rules: input.rules } : {}), ...(input.shared ? { shared: input.shared } : {}) };
  const full = planReintegration({ base: input.base, ours: input.oursNow, theirs: input.theirs, ...common });
  const atStaging = planReintegration({ base: input.base, ours: input.oursAtStaging, theirs: input.theirs, ...common });
  const fullBy = new Map(full.actions.map((a) => [a.path, a]));
  const stagedBy = new Map(atStaging.actions.map((a) => [a.path, a]));
  // Found by binary search, only for the paths the admin reverted (made when the first one is).
  let theirs: InManifestOrder | undefined;
  let base: InManifestOrder | undefined;

  const actions: PlanAction[] = [];
  for (const p of [...changed].sort(comparePaths)) {
    const a = fullBy.get(p);
    if (a !== undefined) {
      actions.push(a);
      continue;
    }
    const staged = stagedBy.get(p);
    // Nothing was written there at staging (not covered by the rules, or the admin's change then matched the update): nothing to undo.
    if (staged === undefined || staged.action === 'keep' || staged.action === 'skip') continue;
    const t = (theirs ??= new InManifestOrder(input.theirs)).get(p);
    const b = (base ??= new InManifestOrder(input.base)).get(p);
    const strip = (e: ManifestEntry): ManifestEntry => {
      const { stat: _s, ...rest } = e;
      return rest;
    };
    actions.push({
      path: p,
      action: 'restore',
      reason: 'admin-reverted',
      detail: t === undefined ? 'the admin undid this change after staging: removed again' : 'the admin undid this change after staging: the update\'s version is put back',
      ...(b ? { base: strip(b) } : {}),
      ...(t ? { theirs: strip(t), meta: { mode: t.mode & PERMS, uid: t.uid, gid: t.gid, acl: 'theirs' as const, xattrs: 'theirs' as const } } : {}),
    });
  }
  return { version: 1, hash: full.hash, actions, counts: countActions(actions) };
}
