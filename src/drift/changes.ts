/**
 * The fast path of drift: where the filesystem can list what changed between
 * the pristine snapshot and the environment (btrfs send --no-data, zfs diff),
 * the live manifest is the pristine one with only the listed paths read
 * again from disk (bart/patch.ts), instead of a walk of the whole tree.
 *
 * The base is the pristine manifest, not the previous live one: a path the
 * filesystem does not list is by definition as it was in the pristine
 * snapshot, whereas the previous live manifest is only right about it if
 * it was made from this very environment (a destroyed environment's name
 * can come back). The previous live manifest still saves hashing: digests
 * of files read again are reused when their inode, size and times match.
 */
import { lstatSync } from 'node:fs';
import type { Backend, ListingLimit, PathChange } from '../backends/types.js';
import { displayPath, toFsPath, type EntryLookup, type HashAlgorithm, type Manifest, type Rules } from '../bart/index.js';
import { patchManifest, type PatchResult } from '../bart/patch.js';
import { walkRoots } from '../bart/rules.js';

export interface ReadAgain {
  /** Entries to read again by themselves. */
  paths: Set<string>;
  /** Entries to read again with everything below them (what was below them in the pristine state is gone). */
  subtrees: Set<string>;
}

function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

/**
 * What to read again for a filesystem's list of changes. A path that was
 * created, removed or renamed (either side) is read again with its subtree:
 * a directory renamed or made brings contents the listing does not name one
 * by one. Each path's directory is read again too (its size and times move
 * with its entries).
 */
export function pathsToReadAgain(changes: readonly PathChange[]): ReadAgain {
  const paths = new Set<string>();
  const subtrees = new Set<string>();
  const touch = (p: string, whole: boolean): void => {
    (whole ? subtrees : paths).add(p);
    if (p !== '/') paths.add(parentOf(p));
  };
  for (const c of changes) {
    if (c.kind === 'modified') touch(c.path, false);
    else if (c.kind === 'renamed') {
      touch(c.path, true);
      touch(c.to, true);
    } else touch(c.path, true);
  }
  return { paths, subtrees };
}

export interface FastPathInput {
  backend: Backend;
  name: string;
  generation: number;
  /** The pristine manifest (made with these rules and hash) and where the pristine tree is. */
  pristine: { manifest: Manifest; path: string };
  /** Where the environment's tree is (it is open). */
  live: string;
  rules: Rules;
  hash: HashAlgorithm;
  /** The last live manifest kept for the environment, found by path, for digests (or how to load it, once `after` has settled). */
  previous?: EntryLookup | (() => EntryLookup | undefined);
  /**
   * Entries are read and the manifest made only once this has settled: the
   * listing starts at once, beside other work, while the memory of making
   * a manifest is never held beside that of another one still being made.
   */
  after?: Promise<unknown>;
  onWarning?: (message: string) => void;
}

export type FastPathResult = { ok: true; result: PatchResult; source: string; listed: number } | { ok: false; reason: string };

/** Why the listing cannot cover the walk: a rules' subtree on another filesystem than the tree's root. */
function otherFilesystem(root: string, rules: Rules): string | null {
  const dev = lstatSync(root).dev;
  for (const top of walkRoots(rules)) {
    const st = lstatSync(toFsPath(Buffer.from(root, 'utf8').toString('latin1') + (top === '/' ? '' : top)), { throwIfNoEntry: false });
    if (st !== undefined && st.dev !== dev) return `the rules' subtree ${top} is on another filesystem`;
  }
  return null;
}

/**
 * The device a manifest's entries were recorded on: its root's, or the one
 * most entries have. Not the tree's device now: a manifest kept from an
 * earlier boot saw another number for the same snapshot (Btrfs gives each
 * subvolume an anonymous device as it is first reached).
 */
export function recordedDevice(m: Manifest): number | undefined {
  const root = m.entries.find((e) => e.path === '/');
  if (root?.stat !== undefined) return root.stat.dev;
  const count = new Map<number, number>();
  for (const e of m.entries) if (e.stat !== undefined) count.set(e.stat.dev, (count.get(e.stat.dev) ?? 0) + 1);
  let best: number | undefined;
  for (const [dev, n] of count) if (best === undefined || n > count.get(best)!) best = dev;
  return best;
}

/**
 * How many changes a listing may hold before walking the tree is cheaper:
 * a quarter of the base's entries, and never fewer than 4,000. Measured on
 * Btrfs (bench/RESULTS.md): `btrfs send --no-data` over 100,000 deleted
 * files takes 4.9 s, a walk of 100,000 entries about 1.5 s; an update that
 * replaces /usr (the store updater) lists every file of it.
 */
export function listingLimitFor(base: Manifest): ListingLimit {
  return { changes: Math.max(4000, Math.floor(base.entries.length / 4)) };
}

/**
 * Why listing the changes between an older tree and a newer one would only
 * be given up, or null: a top-level directory of the older tree that the
 * newer holds as another directory (a new inode: replaced whole, as the
 * store updater swaps /usr) or not at all has every entry below it listed,
 * and when those alone are more than the listing may hold, the listing is
 * time spent before the walk that follows anyway. Snapshots and clones keep
 * inode numbers (Btrfs, ZFS), so a directory left in place has its number
 * in both. Entries without a stat index (a manifest from elsewhere) say
 * nothing.
 */
export function replacedWhole(older: Manifest, newerRoot: string, limit: ListingLimit): string | null {
  const root = Buffer.from(newerRoot, 'utf8').toString('latin1');
  const replaced = new Set<string>();
  for (const e of older.entries) {
    if (e.type !== 'D' || e.stat === undefined || e.path === '/' || e.path.indexOf('/', 1) !== -1) continue;
    const now = lstatSync(toFsPath(root + e.path), { throwIfNoEntry: false });
    if (now === undefined || !now.isDirectory() || now.ino !== e.stat.ino) replaced.add(e.path);
  }
  if (replaced.size === 0) return null;
  let below = 0;
  for (const e of older.entries) {
    const slash = e.path.indexOf('/', 1);
    if (slash > 0 && replaced.has(e.path.slice(0, slash))) below++;
  }
  if (below <= limit.changes) return null;
  const named = [...replaced].map(displayPath).join(', ');
  return `${named} ${replaced.size === 1 ? 'was' : 'were'} replaced whole or removed: a listing would name the ${below} entries below, more than the ${limit.changes} it may`;
}

/** `base` patched into the manifest of the tree at `root` with what the listing names read again. */
async function patchFromListing(
  changes: readonly PathChange[],
  base: Manifest,
  input: { root: string; rules: Rules; hash: HashAlgorithm; previous?: EntryLookup; onWarning?: (message: string) => void },
): Promise<PatchResult> {
  const again = pathsToReadAgain(changes);
  // A snapshot's root directory is an inode of its own (its ctime is the snapshot's): read it anyway.
  again.paths.add('/');
  const from = recordedDevice(base);
  return patchManifest({
    base,
    root: input.root,
    rules: input.rules,
    hash: input.hash,
    paths: again.paths,
    subtrees: again.subtrees,
    ...(input.previous ? { previous: input.previous } : {}),
    ...(from !== undefined ? { keptDevice: { from, to: lstatSync(input.root).dev } } : {}),
    ...(input.onWarning ? { onWarning: input.onWarning } : {}),
  });
}

/** The live manifest from the filesystem's list of changes, or why that cannot be done here. */
export async function liveManifestFromChanges(input: FastPathInput): Promise<FastPathResult> {
  if (input.backend.changesSincePristine === undefined) return { ok: false, reason: `${input.backend.describe()} cannot list changes` };
  if (input.pristine.manifest.header.hash !== input.hash) return { ok: false, reason: 'the pristine manifest has another hash' };
  // The listing covers one filesystem: a walk that starts on another one (a nested subvolume, a mount) is not in it.
  const elsewhere = otherFilesystem(input.live, input.rules);
  if (elsewhere !== null) return { ok: false, reason: elsewhere };
  const listing = await input.backend.changesSincePristine(input.name, input.generation, listingLimitFor(input.pristine.manifest));
  if (!(await settled(input.after))) return { ok: false, reason: BESIDE_FAILED };
  if (!listing.ok) return listing;
  const previous = typeof input.previous === 'function' ? input.previous() : input.previous;
  const result = await patchFromListing(listing.changes, input.pristine.manifest, {
    root: input.live,
    rules: input.rules,
    hash: input.hash,
    ...(previous ? { previous } : {}),
    ...(input.onWarning ? { onWarning: input.onWarning } : {}),
  });
  return { ok: true, result, source: listing.source, listed: listing.changes.length };
}

/** Wait for `p` to settle; whether it was fulfilled (its owner handles a failure; the waiter only stops). */
export async function settled(p: Promise<unknown> | undefined): Promise<boolean> {
  return (
    (await p?.then(
      () => true,
      () => false,
    )) ?? true
  );
}

/** What the waiter says when the work it waited for failed: that work's own error is the one reported. */
export const BESIDE_FAILED = 'not made: the manifest made beside it failed';

export interface PristineFastPathInput {
  backend: Backend;
  /** An older pristine snapshot: its generation and its kept manifest (made with these rules and hash). */
  older: { generation: number; manifest: Manifest };
  /** The newer pristine snapshot: its generation and where its tree is (it is open). */
  newer: { generation: number; path: string };
  rules: Rules;
  hash: HashAlgorithm;
  onWarning?: (message: string) => void;
}

/**
 * The manifest of a new pristine snapshot from the kept manifest of an
 * older one it descends from (staging clones the old one, updates the
 * clone and snapshots it): the older manifest with only the paths the
 * filesystem lists between the two read again. Both snapshots are
 * read-only, so the listing is exact and no snapshot of a live tree is
 * needed. Or why that cannot be done here.
 */
export async function pristineManifestFromChanges(input: PristineFastPathInput): Promise<FastPathResult> {
  if (input.backend.changesBetweenPristines === undefined) return { ok: false, reason: `${input.backend.describe()} cannot list changes between snapshots` };
  if (input.older.manifest.header.hash !== input.hash) return { ok: false, reason: `the manifest of generation ${input.older.generation} has another hash` };
  const elsewhere = otherFilesystem(input.newer.path, input.rules);
  if (elsewhere !== null) return { ok: false, reason: elsewhere };
  const limit = listingLimitFor(input.older.manifest);
  const whole = replacedWhole(input.older.manifest, input.newer.path, limit);
  if (whole !== null) return { ok: false, reason: whole };
  const listing = await input.backend.changesBetweenPristines(input.older.generation, input.newer.generation, limit);
  if (!listing.ok) return listing;
  const result = await patchFromListing(listing.changes, input.older.manifest, { ...input, root: input.newer.path });
  return { ok: true, result, source: listing.source, listed: listing.changes.length };
}
