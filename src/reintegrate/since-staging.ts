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
import { comparePaths, countActions, planReintegration, PERMS, type PlanAction, type ReintegrationPlan } from './plan.js';

export interface SinceStagingInput {
  base: Manifest;
  oursAtStaging: Manifest;
  oursNow: Manifest;
  theirs: Manifest;
  rules?: Rules;
  /** Shared paths inside the root, as at staging (plan.ts). */
  shared?: readonly string[];
}

function same(a: ManifestEntry | undefined, b: ManifestEntry | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const x = { ...a, stat: undefined, mtime: 0 };
  const y = { ...b, stat: undefined, mtime: 0 };
  return JSON.stringify(x, Object.keys(x).sort()) === JSON.stringify(y, Object.keys(y).sort()) && xattrsSame(a, b);
}

function xattrsSame(a: ManifestEntry, b: ManifestEntry): boolean {
  const x = a.xattrs ?? {};
  const y = b.xattrs ?? {};
  const keys = new Set([...Object.keys(x), ...Object.keys(y)]);
  for (const k of keys) if (x[k] !== y[k]) return false;
  return true;
}

/** Paths whose entry differs between two manifests of the same tree (times aside). */
export function changedPaths(before: Manifest, after: Manifest): Set<string> {
  const A = new Map(before.entries.map((e) => [e.path, e]));
  const B = new Map(after.entries.map((e) => [e.path, e]));
  const out = new Set<string>();
  for (const p of new Set([...A.keys(), ...B.keys()])) if (!same(A.get(p), B.get(p))) out.add(p);
  return out;
}

export function planSinceStaging(input: SinceStagingInput): ReintegrationPlan {
  const changed = changedPaths(input.oursAtStaging, input.oursNow);
  const common = { ...(input.rules ? { rules: input.rules } : {}), ...(input.shared ? { shared: input.shared } : {}) };
  const full = planReintegration({ base: input.base, ours: input.oursNow, theirs: input.theirs, ...common });
  const atStaging = planReintegration({ base: input.base, ours: input.oursAtStaging, theirs: input.theirs, ...common });
  const fullBy = new Map(full.actions.map((a) => [a.path, a]));
  const stagedBy = new Map(atStaging.actions.map((a) => [a.path, a]));
  const theirs = new Map(input.theirs.entries.map((e) => [e.path, e]));
  const base = new Map(input.base.entries.map((e) => [e.path, e]));

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
    const t = theirs.get(p);
    const b = base.get(p);
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
