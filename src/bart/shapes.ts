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
 * literal that makes entries: parse.ts (path to gid), create.ts (and stat),
 * patch.ts (and flags, deleted once read); each of them imports this module
 * so that these are made before the first entry. A new site that makes
 * entries with another set of properties needs its own row.
 */
const u = undefined;

export const SHAPES: readonly object[] = [
  { path: '', type: 'F', size: u, mode: u, acl: '-', mtime: u, uid: u, gid: u },
  { path: '', type: 'F', size: u, mode: u, acl: '-', mtime: u, uid: u, gid: u, stat: u },
  { path: '', type: 'F', size: u, mode: u, acl: '-', mtime: u, uid: u, gid: u, stat: u, flags: u },
  { dev: u, ino: u, mtimeMs: u, ctimeMs: u },
];
