/**
 * The fleet-wide identity of an update. Generation numbers are each
 * machine's own (a machine that staged twice more is two ahead), so a fleet
 * cannot halt "generation 7" and mean the same thing everywhere. What the
 * machines of one group do share is the packages an update brought: the
 * identity is a digest of the package changes, `name=version` (`name=` for a
 * removal) sorted by name, the same on every machine that went from the same
 * packages to the same ones whatever it went from. A generation's lineage is
 * the identities of every update it is built on, its own last: staging
 * chains on the newest pristine state, so the generation after a bad one
 * carries the bad packages too, and a halt of the bad update must stop it.
 */
import { createHash } from 'node:crypto';
import { DPKG_STATUS, packageChanges, packageState } from '../updaters/apt/dpkg-status.js';
import type { PackageChange } from '../updaters/types.js';
import { isSysprimeError } from '../errors.js';
import { readFileIn, withDirIn } from '../os/confined.js';
import { basename, dirname } from 'node:path';

/** The longest lineage kept: older updates than that are long resumed or long gone. */
export const LINEAGE_MAX = 64;

/** The identity of an update with these package changes; null when it changed no package (nothing to name it by). */
export function updateIdentity(changes: readonly PackageChange[]): string | null {
  if (changes.length === 0) return null;
  const lines = changes.map((c) => `${c.name}=${c.to ?? ''}`).sort();
  return `u-${createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 16)}`;
}

/** The lineage of a generation built on one with `base`'s lineage by an update of identity `id`. */
export function lineageAfter(base: readonly string[], id: string | null): string[] {
  const out = id === null || base.at(-1) === id ? [...base] : [...base, id];
  return out.slice(-LINEAGE_MAX);
}

/** Whether an identity is written as updateIdentity writes them (for the fleet verbs' arguments). */
export function isUpdateIdentity(text: string): boolean {
  return /^u-[0-9a-f]{16}$/.test(text);
}

/**
 * The installed packages of a tree from dpkg's database, read without
 * following a link out of the tree (the tree is an environment being
 * staged); undefined when it has none.
 */
export function installedPackages(root: string): Map<string, string> | undefined {
  let text: Buffer | undefined;
  try {
    text = withDirIn(root, `/${dirname(DPKG_STATUS)}`, { create: false }, (d) => readFileIn(d, basename(DPKG_STATUS)));
  } catch (err) {
    // A link on the way: not read through, so no package database to name the update by.
    if (isSysprimeError(err, 'REFUSED')) return undefined;
    throw err;
  }
  return text === undefined ? undefined : packageState(text.toString('utf8')).installed;
}

/**
 * The package changes an update made, when the updater did not say: what
 * dpkg's database says before and after (an update command that runs a
 * package manager). Empty when the tree has no such database.
 */
export function changesFromTree(before: Map<string, string> | undefined, root: string): PackageChange[] {
  if (before === undefined) return [];
  const after = installedPackages(root);
  return after === undefined ? [] : packageChanges(before, after);
}
