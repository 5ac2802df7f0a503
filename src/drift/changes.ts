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
import type { Backend, PathChange } from '../backends/types.js';
import { toFsPath, type HashAlgorithm, type Manifest, type Rules } from '../bart/index.js';
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
  /** The last live manifest kept for the environment, for digests. */
  previous?: Manifest;
  onWarning?: (message: string) => void;
}

export type FastPathResult = { ok: true; result: PatchResult; source: string; listed: number } | { ok: false; reason: string };

/** The live manifest from the filesystem's list of changes, or why that cannot be done here. */
export async function liveManifestFromChanges(input: FastPathInput): Promise<FastPathResult> {
  if (input.backend.changesSincePristine === undefined) return { ok: false, reason: `${input.backend.describe()} cannot list changes` };
  if (input.pristine.manifest.header.hash !== input.hash) return { ok: false, reason: 'the pristine manifest has another hash' };
  const liveDev = lstatSync(input.live).dev;
  // The listing covers one filesystem: a walk that starts on another one (a nested subvolume, a mount) is not in it.
  for (const root of walkRoots(input.rules)) {
    const st = lstatSync(toFsPath(Buffer.from(input.live, 'utf8').toString('latin1') + (root === '/' ? '' : root)), { throwIfNoEntry: false });
    if (st !== undefined && st.dev !== liveDev) return { ok: false, reason: `the rules' subtree ${root} is on another filesystem` };
  }
  const listing = await input.backend.changesSincePristine(input.name, input.generation);
  if (!listing.ok) return listing;
  const again = pathsToReadAgain(listing.changes);
  // A snapshot's root directory is an inode of its own (its ctime is the snapshot's): read it anyway.
  again.paths.add('/');
  const result = await patchManifest({
    base: input.pristine.manifest,
    root: input.live,
    rules: input.rules,
    hash: input.hash,
    paths: again.paths,
    subtrees: again.subtrees,
    ...(input.previous ? { previous: input.previous } : {}),
    keptDevice: { from: lstatSync(input.pristine.path).dev, to: liveDev },
    ...(input.onWarning ? { onWarning: input.onWarning } : {}),
  });
  return { ok: true, result, source: listing.source, listed: listing.changes.length };
}
