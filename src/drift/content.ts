/**
 * What changed inside a file: a unified diff for text, a description for
 * binary content. Files are opened without following symlinks, so a link
 * planted in a tree can never make drift read outside it.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
// The one function, not the package's index (19 modules loaded by every sysprime start).
import { createTwoFilesPatch } from 'diff/lib/patch/create.js';
import { displayPath, toFsPath, type Difference, type ManifestEntry } from '../bart/index.js';
import { globToRegExp } from '../bart/glob.js';
import { messageOf } from '../errors.js';

export type ContentChange =
  | { kind: 'text'; diff: string; linesAdded: number; linesRemoved: number }
  | { kind: 'binary'; before: number | null; after: number | null }
  | { kind: 'too-large'; before: number | null; after: number | null }
  | { kind: 'too-many-changes'; before: number | null; after: number | null }
  | { kind: 'unreadable'; reason: string }
  | { kind: 'hidden'; reason: string };

/**
 * Why a file's content must not appear in a report, or null when it may.
 * A report is read by more people than root (a page on a share, a ticket,
 * a log), so what only root could read stays hidden: a file without the
 * world-read bit on either side, one below a directory others cannot
 * enter, or one the `[drift] secret` patterns name (fnmatch(3) with
 * FNM_PATHNAME, matching the path or one of its parent directories).
 */
export function secretReason(
  d: Difference,
  entryOf: (path: string) => ManifestEntry | undefined,
  secret: readonly RegExp[],
): string | null {
  return secretPathReason(d.path, [d.control, d.test], entryOf, secret);
}

/** secretReason for a path and its versions (any number: a reintegration plan has three). */
export function secretPathReason(
  path: string,
  versions: readonly (ManifestEntry | undefined)[],
  entryOf: (path: string) => ManifestEntry | undefined,
  secret: readonly RegExp[],
): string | null {
  for (let p = path; p !== '' && p !== '/'; p = p.slice(0, p.lastIndexOf('/'))) {
    if (secret.some((re) => re.test(p))) return '[drift] secret names it';
  }
  for (const e of versions) if (e !== undefined && (e.mode & 0o004) === 0) return 'not world-readable';
  for (let p = path.slice(0, path.lastIndexOf('/')); p !== ''; p = p.slice(0, p.lastIndexOf('/'))) {
    const dir = entryOf(p);
    if (dir !== undefined && (dir.mode & 0o001) === 0) return 'not world-readable (in a directory others cannot enter)';
  }
  return null;
}

/** `[drift] secret` patterns, compiled once. */
export function secretPatterns(patterns: readonly string[]): RegExp[] {
  return patterns.map((p) => globToRegExp(Buffer.from(p.replace(/\/+$/, '') || '/', 'utf8').toString('latin1')));
}

/** Text diffs beyond this size are described, not shown. */
export const MAX_DIFF_BYTES = 1 << 20;

/**
 * A diff is searched for up to this many added and removed lines, then
 * described instead. The search costs time quadratic in the changes (Myers):
 * two 1 MiB files of short lines rewritten took hours; 5,000 rewritten
 * lines 10 s; up to 2,000 it stays under a second.
 */
export const MAX_DIFF_EDITS = 2000;

function readNoFollow(root: string, path: string): Buffer | { tooLarge: number } {
  const full = toFsPath(root + path);
  const fd = openSync(full, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > MAX_DIFF_BYTES) return { tooLarge: st.size };
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < st.size) {
      const n = readSync(fd, buf, off, st.size - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}

export function isText(buf: Buffer): boolean {
  if (buf.includes(0)) return false;
  return Buffer.from(buf.toString('utf8'), 'utf8').equals(buf);
}

export function describeContent(d: Difference, beforeRoot: string, afterRoot: string): ContentChange | null {
  const before = d.control?.type === 'F' ? d.control : undefined;
  const after = d.test?.type === 'F' ? d.test : undefined;
  if (!before && !after) return null;
  if (d.kind === 'modify' && before && after && !d.attributes.some((a) => a.name === 'contents' || a.name === 'size')) return null;
  try {
    const a = before ? readNoFollow(beforeRoot, d.path) : Buffer.alloc(0);
    const b = after ? readNoFollow(afterRoot, d.path) : Buffer.alloc(0);
    if (!Buffer.isBuffer(a) || !Buffer.isBuffer(b)) {
      return { kind: 'too-large', before: before ? before.size : null, after: after ? after.size : null };
    }
    if (!isText(a) || !isText(b)) return { kind: 'binary', before: before ? a.length : null, after: after ? b.length : null };
    const name = displayPath(d.path);
    const patch = createTwoFilesPatch(before ? `pristine${name}` : '/dev/null', after ? `current${name}` : '/dev/null', a.toString('utf8'), b.toString('utf8'), '', '', {
      context: 3,
      maxEditLength: MAX_DIFF_EDITS,
    });
    if (patch === undefined) return { kind: 'too-many-changes', before: before ? a.length : null, after: after ? b.length : null };
    let linesAdded = 0;
    let linesRemoved = 0;
    // Drop jsdiff's "=====" line; keep the ---/+++ header and the hunks.
    const lines = patch.split('\n').slice(1);
    if (lines[lines.length - 1] === '') lines.pop();
    for (const l of lines.slice(2)) {
      if (l.startsWith('+')) linesAdded++;
      else if (l.startsWith('-')) linesRemoved++;
    }
    return { kind: 'text', diff: lines.join('\n'), linesAdded, linesRemoved };
  } catch (err) {
    return { kind: 'unreadable', reason: messageOf(err) };
  }
}
