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
 * values and the same behaviour. Objects share a layout when their
 * properties are added in the same order, so every place that makes an
 * entry or a stat index names them in the order below (parse.ts, create.ts,
 * patch.ts import this module for that reason).
 */
export const SHAPES: readonly object[] = [
  { path: '', type: 'F', size: undefined, mode: undefined, acl: '-', mtime: undefined, uid: undefined, gid: undefined, stat: undefined },
  { dev: undefined, ino: undefined, mtimeMs: undefined, ctimeMs: undefined },
];
