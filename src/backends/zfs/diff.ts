/**
 * `zfs diff -H SNAPSHOT DATASET` (OpenZFS), read as the list of paths that
 * changed. zfs-fuse has no `zfs diff` (probe.ts finds out).
 *
 * One change per line, fields separated by tabs:
 *
 *   M	/mnt/etc/hosts          modified (contents or metadata)
 *   +	/mnt/etc/new            added
 *   -	/mnt/etc/old            removed
 *   R	/mnt/etc/a	/mnt/etc/b  renamed (from, to)
 *   M	/mnt/etc/file	(+1)    the number of links changed
 *
 * Paths are the dataset's mount point followed by the path inside it (the
 * mount point `/` gives no prefix). Every byte that is not printable ASCII
 * (space, control characters, `\`, 0x7f and up) is written `\` and four octal
 * digits (`\0040` for a space, `\0377` for 0xff). A change inside an
 * extended-attribute directory shows as `<xattrdir>` below its file. A
 * removed object whose name ZFS could not find any more is written
 * `(on_delete_queue)`: then the listing cannot say which path went away, and
 * the parser refuses it.
 */
import { SysprimeError } from '../../errors.js';
import type { RunOptions } from '../../process/run.js';
import type { ListingLimit, PathChange } from '../types.js';

/**
 * How `zfs diff` is run: its output as bytes, stopped past about the
 * limit's changes (a line is a type, a tab, the mount point and a path of,
 * say, 48 bytes, and a newline).
 */
export function diffOptions(mountpoint: string, limit: ListingLimit | undefined): RunOptions {
  if (limit === undefined) return { binary: true };
  return { binary: true, maxOutput: limit.changes * (Buffer.byteLength(mountpoint) + 51) };
}

function diffError(what: string, line: string): SysprimeError {
  return new SysprimeError('BACKEND', `cannot read \`zfs diff\`: ${what}: ${JSON.stringify(line.slice(0, 200))}`, {
    hint: 'this ZFS version prints something sysprime does not know; drift walks the tree instead',
  });
}

/** Undo stream_bytes(): the byte string (latin1) of an escaped path. */
export function unescapeDiffPath(text: string): string {
  if (text.indexOf('\\') < 0) return text;
  return text.replace(/\\([0-7]{4})|\\/g, (m, oct: string | undefined) => {
    if (oct === undefined) throw diffError('bad escape', text);
    return String.fromCharCode(parseInt(oct, 8) & 0xff);
  });
}

const XATTRDIR = '/<xattrdir>';

/**
 * The changes of `zfs diff -H` output. `mountpoint` is where the dataset was
 * mounted when it ran, as a byte string; paths come back relative to it
 * ('/' for the dataset's root).
 */
export function parseZfsDiff(text: string, mountpoint: string): PathChange[] {
  const prefix = mountpoint === '/' ? '' : mountpoint.replace(/\/+$/, '');
  const inside = (escaped: string, line: string): string => {
    if (escaped === '(on_delete_queue)') throw diffError('a removed object without a name', line);
    let p = unescapeDiffPath(escaped);
    if (p !== prefix && !p.startsWith(`${prefix}/`)) throw diffError(`a path outside ${prefix || '/'}`, line);
    p = p.slice(prefix.length) || '/';
    // Extended attributes kept as files (xattr=dir) belong to the file they hang from.
    const x = p.indexOf(XATTRDIR);
    if (x >= 0 && (p.length === x + XATTRDIR.length || p[x + XATTRDIR.length] === '/')) p = p.slice(0, x) || '/';
    return p;
  };
  const out: PathChange[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const f = line.split('\t');
    const [kind, a, b] = f;
    if (a === undefined || a === '') throw diffError('no path', line);
    if (kind === 'R') {
      if (b === undefined || f.length !== 3) throw diffError('a rename without its new name', line);
      const from = inside(a, line);
      const to = inside(b, line);
      // A rename of an extended attribute inside its directory is a change of the file.
      if (from === to) out.push({ kind: 'modified', path: from });
      else out.push({ kind: 'renamed', path: from, to });
    } else if (kind === 'M') {
      if (f.length > 3 || (b !== undefined && !/^\([+-]\d+\)$/.test(b))) throw diffError('unexpected fields', line);
      out.push({ kind: 'modified', path: inside(a, line) });
    } else if (kind === '+' || kind === '-') {
      if (f.length !== 2) throw diffError('unexpected fields', line);
      const p = inside(a, line);
      const inXattrDir = unescapeDiffPath(a).includes(XATTRDIR);
      out.push({ kind: inXattrDir ? 'modified' : kind === '+' ? 'created' : 'removed', path: p });
    } else throw diffError(`unknown change type ${JSON.stringify(kind)}`, line);
  }
  return out;
}
