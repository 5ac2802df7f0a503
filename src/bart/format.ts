/**
 * Writing manifests in the bart_manifest(4) text format, and the side index
 * the incremental path needs.
 *
 * Extensions a Solaris reader skips: a `! ROOT` header line (the reader
 * ignores every `!` and `#` line of the header) and trailing `x:name=value`
 * tokens for extended attributes (the reader takes a fixed number of fields
 * per type and ignores the rest).
 */
import { encodeName } from './escape.js';
import type { HashAlgorithm, Manifest, ManifestEntry, ManifestHeader } from './types.js';

export const FORMAT_BLOCK = [
  '# Format:',
  '#fname D size mode acl dirmtime uid gid',
  '#fname P size mode acl mtime uid gid',
  '#fname S size mode acl mtime uid gid',
  '#fname F size mode acl mtime uid gid contents',
  '#fname L size mode acl lnmtime uid gid dest',
  '#fname B size mode acl mtime uid gid devnode',
  '#fname C size mode acl mtime uid gid devnode',
];

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** The date line Solaris writes: strftime("%A, %B %d, %Y (%T)") in local time. */
export function solarisDate(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${DAYS[d.getDay()]}, ${MONTHS[d.getMonth()]} ${p(d.getDate())}, ${d.getFullYear()} (${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())})`;
}

export function versionFor(hash: HashAlgorithm): string {
  // md5 manifests are written exactly as Solaris 10 does: version 1.0, no HASH line.
  return hash === 'md5' ? '1.0' : '1.1';
}

export function makeHeader(hash: HashAlgorithm, root = '/', date = new Date()): ManifestHeader {
  return { version: versionFor(hash), hash, root, date: solarisDate(date) };
}

export function formatHeader(h: ManifestHeader): string {
  const lines = [`! Version ${h.version}`];
  if (h.version !== '1.0' || h.hash !== 'md5') lines.push(`! HASH ${h.hash.toUpperCase()}`);
  lines.push(`! ${h.date}`);
  if (h.root !== '/' && h.root !== '') lines.push(`! ROOT ${encodeName(h.root)}`);
  if (h.xattrs === true) lines.push('! XATTRS');
  lines.push(...FORMAT_BLOCK);
  return lines.join('\n') + '\n';
}

export function formatMtime(seconds: number): string {
  return seconds < 0 ? '-' + (-seconds).toString(16) : seconds.toString(16);
}

/** The type-specific last field as the text shows it ('' for D, P, S). */
export function lastField(e: ManifestEntry): string {
  switch (e.type) {
    case 'F':
      return e.contents ?? '-';
    case 'L':
      return e.dest === undefined ? '-' : e.dest === '' ? '\\000' : encodeName(e.dest);
    case 'B':
    case 'C':
      return (e.devnode ?? 0).toString(16);
    default:
      return '';
  }
}

export function formatXattrs(x: Record<string, string>): string {
  let out = '';
  for (const name of Object.keys(x).sort()) out += ` x:${encodeName(name)}=${x[name]}`;
  return out;
}

export function formatEntry(e: ManifestEntry): string {
  let line = `${encodeName(e.path)} ${e.type} ${e.size} ${e.mode.toString(8)} ${e.acl === '-' ? '-' : encodeName(e.acl)} ${formatMtime(e.mtime)} ${e.uid} ${e.gid}`;
  const last = lastField(e);
  if (last !== '') line += ' ' + last;
  if (e.xattrs !== undefined) line += formatXattrs(e.xattrs);
  return line;
}

export function formatManifest(m: Manifest): string {
  const parts: string[] = [formatHeader(m.header)];
  for (const e of m.entries) parts.push(formatEntry(e), '\n');
  return parts.join('');
}

/** Sort in place by encoded path, C collation: the order the text lists entries in. */
export function sortEntries(entries: ManifestEntry[]): ManifestEntry[] {
  const keyed = entries.map((e) => ({ k: encodeName(e.path), e }));
  keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  for (let i = 0; i < keyed.length; i++) entries[i] = keyed[i]!.e;
  return entries;
}

export const INDEX_MAGIC = '# sysprime bart index 1';

/** The side index: one line per entry, in the manifest's order: `dev ino mtimeMs ctimeMs` or `-`. */
export function formatIndex(m: Manifest): string {
  const parts: string[] = [`${INDEX_MAGIC} ${m.entries.length}\n`];
  for (const e of m.entries) {
    const s = e.stat;
    parts.push(s === undefined ? '-\n' : `${s.dev} ${s.ino} ${s.mtimeMs} ${s.ctimeMs}\n`);
  }
  return parts.join('');
}
