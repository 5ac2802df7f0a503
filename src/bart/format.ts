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
  // md5 manifests are written exactly as Solaris 10 does: version 1.0, no Hash line.
  return hash === 'md5' ? '1.0' : '1.1';
}

export function makeHeader(hash: HashAlgorithm, root = '/', date = new Date()): ManifestHeader {
  return { version: versionFor(hash), hash, root, date: solarisDate(date) };
}

export function formatHeader(h: ManifestHeader): string {
  const lines = [`! Version ${h.version}`];
  // Solaris 11 writes (and its compare requires) "! Hash SHA256".
  if (h.version !== '1.0' || h.hash !== 'md5') lines.push(`! Hash ${h.hash.toUpperCase()}`);
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
      // A Solaris 10 manifest before 2010 has none: nothing is written for it then.
      return e.devnode === undefined ? '' : e.devnode.toString(16);
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

/**
 * Text of a manifest, written into one growing byte buffer: a manifest of
 * an OS tree is 150k lines, and a string per field and per line would be
 * garbage the size of the manifest several times over.
 */
export function formatManifest(m: Manifest): string {
  return formatManifestBytes(m).toString('latin1');
}

/**
 * The same text as bytes; with `lineStarts`, the byte offset of each
 * entry's line is written into it (one slot per entry, `stride` apart, at
 * `offset`): what a saved index records.
 */
export function formatManifestBytes(m: Manifest, lineStarts?: Float64Array, stride = 1, offset = 0): Buffer {
  return formatLines(m.entries.length, (i) => m.entries[i]!, formatHeader(m.header), lineStarts, stride, offset);
}

/**
 * Lines of `count` entries after `head`, with their offsets as
 * formatManifestBytes records them. `entryAt` may fill and return the same
 * object every time: each entry is written before the next is asked for.
 */
export function formatLines(count: number, entryAt: (i: number) => ManifestEntry, head = '', lineStarts?: Float64Array, stride = 1, offset = 0): Buffer {
  const out = new TextBuffer(64 + head.length + count * 120);
  out.text(head);
  // With no chunk limit nothing is yielded: one step of the generator writes every line.
  const lines = writeLines(out, count, entryAt, lineStarts, stride, offset, Infinity);
  while (lines.next().done !== true);
  return out.take();
}

/** Bytes a chunk of a streamed manifest or index holds before it is handed on. */
const CHUNK_BYTES = 1 << 20;

/** How chunks are handed out. */
export interface ChunkOptions {
  /**
   * Every chunk in the same memory, valid until the next one is asked for:
   * for a writer that writes each chunk before it asks for the next (the
   * durable writer). A new buffer per chunk is garbage the collector frees
   * only when external memory has grown by tens of MB: the size of the text.
   */
  reuse?: boolean;
}

/**
 * The text of a manifest in chunks of about a MiB, ending at line ends, for
 * a writer that writes each before asking for the next: a manifest of a
 * large root is tens of MB, which one buffer (and a string of it) would hold
 * whole, twice, at the moment memory is highest.
 */
export function* formatManifestChunks(m: Manifest, opts: ChunkOptions = {}): Generator<Buffer> {
  const out = new TextBuffer(CHUNK_BYTES + 4096, opts.reuse === true);
  out.text(formatHeader(m.header));
  yield* writeLines(out, m.entries.length, (i) => m.entries[i]!, undefined, 1, 0, CHUNK_BYTES);
  yield out.take();
}

/** Write entry lines into `out`; each time it holds `chunk` bytes or more, what it holds is taken and yielded. */
function* writeLines(out: TextBuffer, count: number, entryAt: (i: number) => ManifestEntry, lineStarts: Float64Array | undefined, stride: number, offset: number, chunk: number): Generator<Buffer> {
  let slot = offset;
  for (let i = 0; i < count; i++) {
    if (out.pending >= chunk) yield out.take();
    const e = entryAt(i);
    if (lineStarts !== undefined) {
      lineStarts[slot] = out.length;
      slot += stride;
    }
    out.text(encodeName(e.path));
    out.byte(0x20);
    out.text(e.type);
    out.byte(0x20);
    out.number(e.size, 10);
    out.byte(0x20);
    out.number(e.mode, 8);
    out.byte(0x20);
    out.text(e.acl === '-' ? '-' : encodeName(e.acl));
    out.byte(0x20);
    if (e.mtime < 0) out.byte(0x2d);
    out.number(Math.abs(e.mtime), 16);
    out.byte(0x20);
    out.number(e.uid, 10);
    out.byte(0x20);
    out.number(e.gid, 10);
    const last = e.type === 'F' ? (e.contents ?? '-') : e.type === 'D' || e.type === 'P' || e.type === 'S' ? '' : lastField(e);
    if (last !== '') {
      out.byte(0x20);
      out.text(last);
    }
    if (e.xattrs !== undefined) out.text(formatXattrs(e.xattrs));
    out.byte(0x0a);
  }
}

const EMPTY = Buffer.alloc(0);

/** Up to this many characters, TextBuffer.text copies in a loop (latin1 text: one byte a character, as Buffer#write). */
const SHORT_TEXT = 64;

/** Bytes of latin1 text appended at the end of a buffer that doubles when full. */
class TextBuffer {
  private buf: Buffer;
  private pos = 0;
  /** Bytes taken out before the current buffer. */
  private taken = 0;

  /** With `reuse`, take() hands out a view of the buffer and writing goes on into the same memory. */
  constructor(
    private readonly size: number,
    private readonly reuse = false,
  ) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    if (this.pos === 0) {
      this.buf = Buffer.allocUnsafe(Math.max(this.size, n));
      return;
    }
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.pos++] = b;
  }

  text(s: string): void {
    const n = s.length;
    this.room(n);
    // A short string (a type, a digest, most names) is copied faster here than through a native call.
    if (n <= SHORT_TEXT) {
      const buf = this.buf;
      let p = this.pos;
      for (let i = 0; i < n; i++) buf[p++] = s.charCodeAt(i);
      this.pos = p;
      return;
    }
    this.pos += this.buf.write(s, this.pos, 'latin1');
  }

  /** A non-negative integer in base 8, 10 or 16 (lowercase), as Number#toString writes it. */
  number(v: number, radix: number): void {
    if (!Number.isSafeInteger(v) || v < 0) {
      this.text(v.toString(radix));
      return;
    }
    let digits = 1;
    for (let x = v; x >= radix; x = Math.floor(x / radix)) digits++;
    this.room(digits);
    let x = v;
    for (let i = this.pos + digits - 1; i >= this.pos; i--) {
      const d = x % radix;
      this.buf[i] = d < 10 ? 0x30 + d : 0x57 + d;
      x = Math.floor(x / radix);
    }
    this.pos += digits;
  }

  /** Bytes written since the start, taken ones included. */
  get length(): number {
    return this.taken + this.pos;
  }

  /** Bytes written since the last take. */
  get pending(): number {
    return this.pos;
  }

  /**
   * What was written since the last take. The next bytes go to a new buffer,
   * so the one returned stays as it is; with `reuse`, they overwrite it.
   */
  take(): Buffer {
    const bytes = this.buf.subarray(0, this.pos);
    this.taken += this.pos;
    // The next buffer is allocated when something is written to it.
    if (!this.reuse) this.buf = EMPTY;
    this.pos = 0;
    return bytes;
  }
}

/** Sort in place by encoded path, C collation: the order the text lists entries in. */
export function sortEntries(entries: ManifestEntry[]): ManifestEntry[] {
  // Most paths need no quoting, so most keys are the path string itself: no allocation.
  const keys = entries.map((e) => encodeName(e.path));
  const order = Array.from(keys.keys());
  order.sort((a, b) => (keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : 0));
  const sorted = order.map((i) => entries[i]!);
  for (let i = 0; i < sorted.length; i++) entries[i] = sorted[i]!;
  return entries;
}

export const INDEX_MAGIC = '# sysprime bart index 1';

/** The side index: one line per entry, in the manifest's order: `dev ino mtimeMs ctimeMs` or `-`. */
export function formatIndex(m: Manifest): string {
  return Buffer.concat([...formatIndexChunks(m)]).toString('latin1');
}

/** The side index in chunks, as formatManifestChunks gives the manifest. */
export function* formatIndexChunks(m: Manifest, opts: ChunkOptions = {}): Generator<Buffer> {
  const out = new TextBuffer(CHUNK_BYTES + 4096, opts.reuse === true);
  out.text(`${INDEX_MAGIC} ${m.entries.length}\n`);
  for (const e of m.entries) {
    if (out.pending >= CHUNK_BYTES) yield out.take();
    const s = e.stat;
    // Number#toString, as the text has always been written (the times have fractions).
    out.text(s === undefined ? '-\n' : `${s.dev} ${s.ino} ${s.mtimeMs} ${s.ctimeMs}\n`);
  }
  yield out.take();
}
