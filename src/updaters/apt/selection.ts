/**
 * Package-selection drift: what the admin installed, removed or held on the
 * running environment since its pristine state, turned into what to do in
 * the clone before it is upgraded. Replaying it there makes the next
 * pristine state hold what the admin chose, so drift is left with what no
 * package explains. Pure: a function of three package states.
 *
 *   pristine  Sys_N, what the package manager produced
 *   live      Sys_N', the same generation with the admin's changes
 *   clone     the new environment before anything ran in it (a clone of Sys_N,
 *             but it is read rather than assumed, so a second run plans nothing)
 */
import type { PackageState } from './dpkg-status.js';

export interface SelectionPlan {
  /** Installed on live by hand (not as a dependency), absent from pristine and clone. */
  install: string[];
  /** Removed on live with their configuration files kept. */
  remove: string[];
  /** Removed on live and purged (dpkg has no record of them left). */
  purge: string[];
  /** Held on live and not in pristine. */
  hold: string[];
  /** Held in pristine, no longer held on live. */
  unhold: string[];
}

const sorted = (items: Iterable<string>): string[] => [...items].sort();

export function planSelection(pristine: PackageState, live: PackageState, clone: PackageState): SelectionPlan {
  const install: string[] = [];
  for (const name of live.installed.keys()) {
    // A dependency comes with what needed it; naming it would mark it manual and keep it forever.
    if (pristine.installed.has(name) || live.auto.has(name) || clone.installed.has(name)) continue;
    install.push(name);
  }
  const remove: string[] = [];
  const purge: string[] = [];
  for (const name of pristine.installed.keys()) {
    if (live.installed.has(name) || !clone.installed.has(name)) continue;
    (live.configFiles.has(name) ? remove : purge).push(name);
  }
  const hold: string[] = [];
  for (const name of live.held) if (!pristine.held.has(name) && !clone.held.has(name)) hold.push(name);
  const unhold: string[] = [];
  for (const name of pristine.held) if (!live.held.has(name) && live.installed.has(name) && clone.held.has(name)) unhold.push(name);
  return { install: sorted(install), remove: sorted(remove), purge: sorted(purge), hold: sorted(hold), unhold: sorted(unhold) };
}

export function isEmptyPlan(plan: SelectionPlan): boolean {
  return plan.install.length + plan.remove.length + plan.purge.length + plan.hold.length + plan.unhold.length === 0;
}

/**
 * Splits the installs into those the repositories still offer and those they
 * do not (`candidates` from `apt-cache policy`: a version, or null for none).
 * A package that is gone is reported, not fatal: the admin's system keeps it,
 * the new generation cannot have it.
 */
export function splitAvailable(plan: SelectionPlan, candidates: ReadonlyMap<string, string | null>): { plan: SelectionPlan; unavailable: string[] } {
  const available: string[] = [];
  const unavailable: string[] = [];
  for (const name of plan.install) ((candidates.get(name) ?? null) === null ? unavailable : available).push(name);
  return { plan: { ...plan, install: available }, unavailable };
}

/**
 * Arguments for one `apt-get install` transaction doing the installs and the
 * removals together, so apt resolves them as one change ("name-" removes).
 * Purges are removed here and purged by dpkg afterwards.
 */
export function transactionArguments(plan: SelectionPlan): string[] {
  return [...plan.install, ...[...plan.remove, ...plan.purge].sort().map((name) => `${name}-`)];
}

/** One line for the report. */
export function describePlan(plan: SelectionPlan): string {
  const parts: string[] = [];
  if (plan.install.length > 0) parts.push(`install ${plan.install.join(' ')}`);
  if (plan.remove.length > 0) parts.push(`remove ${plan.remove.join(' ')}`);
  if (plan.purge.length > 0) parts.push(`purge ${plan.purge.join(' ')}`);
  if (plan.hold.length > 0) parts.push(`hold ${plan.hold.join(' ')}`);
  if (plan.unhold.length > 0) parts.push(`unhold ${plan.unhold.join(' ')}`);
  return parts.length === 0 ? 'no package-selection drift' : `package-selection drift: ${parts.join('; ')}`;
}

/**
 * Candidate versions from `apt-cache policy NAME...` output (C locale): one
 * block per package apt knows, "(none)" when no source offers it. Packages
 * apt does not know at all have no block, and are absent from the map.
 */
export function parsePolicyCandidates(text: string): Map<string, string | null> {
  const out = new Map<string, string | null>();
  let current: string | null = null;
  for (const line of text.split('\n')) {
    const header = /^(\S+):$/.exec(line);
    if (header !== null) {
      current = header[1] ?? null;
      continue;
    }
    const candidate = /^\s+Candidate:\s*(\S+)/.exec(line);
    if (candidate !== null && current !== null) {
      const version = candidate[1] ?? '(none)';
      out.set(current, version === '(none)' ? null : version);
      current = null;
    }
  }
  return out;
}
