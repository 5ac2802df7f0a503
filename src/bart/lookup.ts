/**
 * Entries of a manifest found by path, for a caller that needs a few of
 * them: the fast path of drift reads again the paths the filesystem lists
 * (thousands) and takes the digests of unchanged files from the previous
 * manifest of the same tree (half a million entries on a large root).
 * Parsing all of it for that is seconds and hundreds of MB; a kept
 * manifest's bytes, with where each entry's line starts, are a tenth of
 * that, and a search parses only the lines it finds.
 */
import { SysprimeError } from '../errors.js';
import { encodeName } from './escape.js';
import { INDEX_MAGIC } from './format.js';
import { parseEntryLine, parseIndexLine, parseManifest } from './parse.js';
import type { Manifest, ManifestEntry, ManifestHeader } from './types.js';

export interface EntryLookup {
  readonly header: ManifestHeader;
  /** The entry at `path` with its stat index, or undefined; `key` is encodeName(path) when the caller has it. */
  find(path: string, key?: string): ManifestEntry | undefined;
  /** Every entry, as parseManifest and applyIndex give them (for a caller that walks the whole tree). */
  manifest(): Manifest;
  /** Frees, now, bytes read for this lookup alone (loadManifestLookup's); nothing may be asked of it after. */
  release(): void;
}

/** A lookup in a manifest already parsed: a binary search in its sorted entries. */
export function lookupInManifest(m: Manifest): EntryLookup {
  const entries = m.entries;
  return {
    header: m.header,
    find(path, key = encodeName(path)) {
      let lo = 0;
      let hi = entries.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (encodeName(entries[mid]!.path) < key) lo = mid + 1;
        else hi = mid;
      }
      const e = entries[lo];
      return e !== undefined && e.path === path ? e : undefined;
    },
    manifest: () => m,
    release: () => undefined,
  };
}

function corrupt(source: string, what: string): never {
  throw new SysprimeError('MANIFEST', `${source}: ${what}`, { hint: 'a kept manifest is a cache: it is made again' });
}

/**
 * Whether the line from `start` to `end` (its newline) is an entry's, as
 * parseManifest reads lines: not empty, not a `#` or `!` line, not only
 * white space (what `\s` matches among latin1 characters).
 */
function isEntryLine(text: Buffer, start: number, end: number): boolean {
  const c0 = text[start];
  if (start === end || c0 === 0x23 || c0 === 0x21) return false;
  for (let i = start; i < end; i++) {
    const c = text[i]!;
    if (c !== 0x20 && (c < 0x09 || c > 0x0d) && c !== 0xa0) return true;
  }
  return false;
}

/** Where each line `keep` accepts starts (the first `count` slots of `starts`). */
function lineStarts(text: Buffer, from: number, keep: (start: number, end: number) => boolean): { starts: Float64Array; count: number } {
  let starts = new Float64Array(1024);
  let count = 0;
  for (let pos = from; pos < text.length; ) {
    let end = text.indexOf(0x0a, pos);
    if (end < 0) end = text.length;
    if (keep(pos, end)) {
      if (count + 1 >= starts.length) {
        const grown = new Float64Array(starts.length * 2);
        grown.set(starts);
        starts = grown;
      }
      starts[count++] = pos;
    }
    pos = end + 1;
  }
  return { starts, count };
}

/**
 * A lookup in a manifest's bytes and its version 1 side index (what
 * saveManifest keeps). The lines must be in the order bart create writes
 * them (sorted by their encoded path, byte by byte): a search in lines out
 * of that order may miss an entry, never return another path's, so the
 * worst a damaged cache can do is have a file hashed again. Throws a
 * MANIFEST error when the two do not belong together.
 */
export function lookupInText(bart: Buffer, index: Buffer, source = 'manifest', indexSource = `${source} index`): EntryLookup {
  // The header is every line before the first entry's, read as parseManifest reads it.
  let first = 0;
  while (first < bart.length) {
    let end = bart.indexOf(0x0a, first);
    if (end < 0) end = bart.length;
    if (isEntryLine(bart, first, end)) break;
    first = end + 1;
  }
  const header = parseManifest(bart.subarray(0, first), source).header;
  const headerLines = countLines(bart, first);
  const lines = lineStarts(bart, first, (start, end) => isEntryLine(bart, start, end));
  const nl = index.indexOf(0x0a);
  const head = index.toString('latin1', 0, nl < 0 ? index.length : nl);
  if (!head.startsWith(INDEX_MAGIC)) corrupt(indexSource, 'not a sysprime bart index');
  const count = Number(head.slice(INDEX_MAGIC.length).trim());
  if (count !== lines.count) corrupt(indexSource, `lists ${count} entries, the manifest ${lines.count}`);
  const stats = lineStarts(index, nl < 0 ? index.length : nl + 1, () => true);
  if (stats.count < count) corrupt(indexSource, 'ends early');

  const endOf = (buf: Buffer, start: number): number => {
    const end = buf.indexOf(0x0a, start);
    return end < 0 ? buf.length : end;
  };
  const lineAt = (i: number): string => {
    const start = lines.starts[i]!;
    let end = endOf(bart, start);
    if (end > start && bart[end - 1] === 0x0d) end--;
    return bart.toString('latin1', start, end);
  };
  /** The path field of line i compared with `key`'s bytes, as the strings would compare. */
  const compareAt = (i: number, key: Buffer): number => {
    const start = lines.starts[i]!;
    const end = endOf(bart, start);
    let field = start;
    while (field < end && bart[field] !== 0x20 && bart[field] !== 0x09) field++;
    return bart.compare(key, 0, key.length, start, field);
  };
  return {
    header,
    find(path, key = encodeName(path)) {
      const bytes = Buffer.from(key, 'latin1');
      let lo = 0;
      let hi = lines.count;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (compareAt(mid, bytes) < 0) lo = mid + 1;
        else hi = mid;
      }
      if (lo >= lines.count || compareAt(lo, bytes) !== 0) return undefined;
      try {
        // The line number is exact when no comment or blank line is among the entries (none is, in what saveManifest writes).
        const s = stats.starts[lo]!;
        const stat = parseIndexLine(index.toString('latin1', s, endOf(index, s)), indexSource, lo + 2);
        const e = parseEntryLine(lineAt(lo), source, headerLines + lo + 1, stat);
        return e.path === path ? e : undefined;
      } catch (err) {
        // A damaged line of a cache vouches for nothing: the caller reads the file again, as for a path not listed.
        if (err instanceof SysprimeError && err.code === 'MANIFEST') return undefined;
        throw err;
      }
    },
    manifest: () => parseManifest(bart, source, { data: index, source: indexSource }),
    // The bytes are the caller's: only it knows whether anything else holds them.
    release: () => undefined,
  };
}

function countLines(text: Buffer, end: number): number {
  let n = 0;
  for (let i = text.indexOf(0x0a); i >= 0 && i < end; i = text.indexOf(0x0a, i + 1)) n++;
  return n;
}
