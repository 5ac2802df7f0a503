/**
 * How V8 lays out the half a million entries of a large root's manifest.
 *
 * V8 picks how an object field holds a number from the values it has seen
 * there: a field that has only ever held numbers, one of them not a small
 * integer (an mtime in seconds, a time in milliseconds with its fraction),
 * keeps every value in a box of its own, 16 bytes more per field per
 * object, small integers included. A field that has also held another kind
 * of value keeps small integers (sizes, modes, ids, inode numbers) in place.
 * These objects, made once here with `undefined` in every number field,
 * give the fields of ManifestEntry and StatIndex that second kind: about 90
 * bytes less per entry with its stat index (bench/RESULTS.md), the same
 * values and the same behaviour.
 *
 * Object literals share a layout only with literals of the same number of
 * properties named in the same order, so there is one object here for each
 * literal that makes entries: `newEntry` below (every set of properties an
 * entry is born with) and patch.ts (and flags, deleted once read); each
 * module that makes entries imports this one so that these are made before
 * the first entry. A new site that makes entries with another set of
 * properties needs its own row.
 *
 * A property added to an object after its literal goes to a second array
 * of its own (V8 sizes an object made by a literal for the literal's
 * properties): a heap snapshot of drift at 500,000 entries held 990,000 of
 * them, 39 bytes each, for the digest and the stat index that parse.ts and
 * create.ts added after the literal. `newEntry` makes every entry with the
 * properties it will have (a digest yet to be computed is '-' until then).
 */
import type { EntryType, ManifestEntry, StatIndex } from './types.js';

const u = undefined;

export const SHAPES: readonly object[] = [
  { path: '', type: 'F', size: u, mode: u, acl: '-', mtime: u, uid: u, gid: u },
  { path: '', type: 'F', size: u, mode: u, acl: '-', mtime: u, uid: u, gid: u, contents: '-' },
  { path: '', type: 'L', size: u, mode: u, acl: '-', mtime: u, uid: u, gid: u, dest: '' },
  { path: '', type: 'B', size: u, mode: u, acl: '-', mtime: u, uid: u, gid: u, devnode: u },
  { path: '', type: 'F', size: u, mode: u, acl: '-', mtime: u, uid: u, gid: u, stat: u },
  { path: '', type: 'F', size: u, mode: u, acl: '-', mtime: u, uid: u, gid: u, contents: '-', stat: u },
  { path: '', type: 'L', size: u, mode: u, acl: '-', mtime: u, uid: u, gid: u, dest: '', stat: u },
  { path: '', type: 'B', size: u, mode: u, acl: '-', mtime: u, uid: u, gid: u, devnode: u, stat: u },
  { path: '', type: 'F', size: u, mode: u, acl: '-', mtime: u, uid: u, gid: u, stat: u, flags: u },
  { dev: u, ino: u, mtimeMs: u, ctimeMs: u },
];

/**
 * An entry with the properties it will keep: `extra` is the digest of an F
 * entry, the target of an L entry, the device number of a B or C entry
 * (undefined for none: a Solaris 10 line may lack it), unused for other
 * types; `stat` when there is one. Extended attributes, rare, are added
 * after.
 */
export function newEntry(
  path: string,
  type: EntryType,
  size: number,
  mode: number,
  acl: string,
  mtime: number,
  uid: number,
  gid: number,
  extra: string | number | undefined,
  stat: StatIndex | undefined,
): ManifestEntry {
  if (stat === undefined) {
    if (type === 'F') return { path, type, size, mode, acl, mtime, uid, gid, contents: extra as string };
    if (type === 'L') return { path, type, size, mode, acl, mtime, uid, gid, dest: extra as string };
    if ((type === 'B' || type === 'C') && extra !== undefined) return { path, type, size, mode, acl, mtime, uid, gid, devnode: extra as number };
    return { path, type, size, mode, acl, mtime, uid, gid };
  }
  if (type === 'F') return { path, type, size, mode, acl, mtime, uid, gid, contents: extra as string, stat };
  if (type === 'L') return { path, type, size, mode, acl, mtime, uid, gid, dest: extra as string, stat };
  if ((type === 'B' || type === 'C') && extra !== undefined) return { path, type, size, mode, acl, mtime, uid, gid, devnode: extra as number, stat };
  return { path, type, size, mode, acl, mtime, uid, gid, stat };
}
