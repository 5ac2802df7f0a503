/**
 * Reading manifests: Solaris ones (1.0 with md5, 1.1 with a HASH line,
 * hand-written examples from the man pages) and our own (xattr tokens,
 * ROOT line). Errors name the line.
 */
import { newEntry } from './shapes.js';
import { SysprimeError } from '../errors.js';
import { decodeName, encodeName } from './escape.js';
import { INDEX_MAGIC } from './format.js';
import { INDEX2_MAGIC, RECORD, R_CTIME_MS, R_DEV, R_INO, R_MTIME_MS, R_STATE, STATE_NO_STAT, isIndex2 } from './index-file.js';
import type { EntryType, Manifest, ManifestEntry, ManifestHash, ManifestHeader, StatIndex } from './types.js';

const TYPES = new Set<string>(['F', 'D', 'L', 'P', 'S', 'B', 'C', 'O']);
const HASHES: Record<string, ManifestHash> = { MD5: 'md5', SHA1: 'sha1', SHA256: 'sha256', SHA384: 'sha384', SHA512: 'sha512', XXH64: 'xxh64' };

function fail(source: string, line: number, what: string): never {
  throw new SysprimeError('MANIFEST', `${source}, line ${line}: ${what}`, {
    hint: 'a manifest must be the output of `bart create` (see bart_manifest(4))',
  });
}

/** Text as bytes: a Buffer is read as latin1 so names that are not UTF-8 survive. */
function asByteText(text: string | Buffer): string {
  if (typeof text !== 'string') return text.toString('latin1');
  // A JS string holding decoded UTF-8 (chars above 0xff) is turned back into bytes.
  return /[^\x00-\xff]/.test(text) ? Buffer.from(text, 'utf8').toString('latin1') : text;
}

/**
 * Characters of one piece of a Buffer's text read line by line, for text
 * whose strings are all dropped once read (an index's lines become numbers).
 * Node makes a latin1 string of more than about 1 MB an external string,
 * which only a full collection frees: the whole text of a kept index (22 MB
 * at 500,000 entries) and a string per line stayed to the peak of staging.
 * Pieces below that size live in the young generation and go as soon as
 * they are read.
 */
const PIECE_CHARS = 512 << 10;

/**
 * The text of `input` (bytes as latin1, as asByteText reads them) in pieces
 * that end at line ends: no line is cut, and lines are numbered across
 * pieces as in the whole text. A string is one piece.
 */
function* textPieces(input: string | Buffer): Generator<string> {
  if (typeof input === 'string') {
    yield asByteText(input);
    return;
  }
  for (let start = 0; start < input.length; ) {
    let end = input.length;
    if (start + PIECE_CHARS < input.length) {
      end = input.lastIndexOf(0x0a, start + PIECE_CHARS - 1) + 1;
      // A line longer than a piece is a piece of its own.
      if (end <= start) {
        const nl = input.indexOf(0x0a, start + PIECE_CHARS);
        end = nl < 0 ? input.length : nl + 1;
      }
    }
    yield input.toString('latin1', start, end);
    start = end;
  }
}

/** Largest uid or gid: uid_t is 32 bits (4294967295 is (uid_t)-1, which Solaris writes for "nobody"). */
const ID_MAX = 0xffffffff;
/** st_mode, file type bits included, fits in 16 bits. */
const MODE_MAX = 0o177777;

function int(source: string, line: number, field: string, token: string | undefined, radix: number, range?: { min: number; max: number }): number {
  if (token === undefined) fail(source, line, `missing ${field}`);
  const neg = token.startsWith('-') && token.length > 1;
  const digits = neg ? token.slice(1) : token;
  const ok = radix === 16 ? /^[0-9a-fA-F]+$/ : radix === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
  if (!ok.test(digits)) fail(source, line, `${field} '${token}' is not a number in base ${radix}`);
  const v = (neg ? -1 : 1) * parseInt(digits, radix);
  // Above 2^53 two different numbers would read as one and compare equal.
  if (!Number.isSafeInteger(v)) fail(source, line, `${field} '${token}' is too large to be compared exactly`);
  if (range !== undefined && (v < range.min || v > range.max)) fail(source, line, `${field} '${token}' is out of range (${range.min} to ${range.max})`);
  return v;
}

/**
 * A quoted name as `decodeName` reads it, refusing what `bart create` never
 * writes: a backslash at the end, or a digit escape that is not three octal
 * digits of one byte (`\9`, `\12x`, `\400`).
 */
function checkEscapes(source: string, line: number, field: string, token: string): void {
  for (let i = token.indexOf('\\'); i >= 0; i = token.indexOf('\\', i)) {
    const next = token[i + 1];
    if (next === undefined) fail(source, line, `${field} '${token}' ends with a lone backslash`);
    if (/[0-9]/.test(next)) {
      const oct = token.slice(i + 1, i + 4);
      if (!/^[0-7]{3}$/.test(oct) || parseInt(oct, 8) > 0o377) fail(source, line, `${field} '${token}' has a bad escape '\\${oct}' (a byte is \\000 to \\377)`);
      i += 4;
    } else i += 2;
  }
}

/** An absolute path of named components: no empty, `.` or `..` one (so no entry can stand for a path outside the tree). */
function checkPath(source: string, line: number, token: string, path: string): void {
  if (!path.startsWith('/')) fail(source, line, `path '${token}' does not start with '/'`);
  if (path.includes('\0')) fail(source, line, `path '${token}' holds a NUL byte`);
  if (path === '/') return;
  for (const c of path.slice(1).split('/')) {
    if (c === '' || c === '.' || c === '..') fail(source, line, `path '${token}' has ${c === '' ? 'an empty' : `a '${c}'`} component`);
  }
}

/** A side index to read with a manifest: its bytes (or text) and a name for messages. */
export interface IndexInput {
  data: string | Buffer;
  source: string;
}

/**
 * With `index`, each entry is made with its stat index, as applyIndex would
 * give it (the same checks, the count compared once every entry is read):
 * an entry made whole is smaller than one given its stat afterwards
 * (shapes.ts).
 */
export function parseManifest(input: string | Buffer, source = 'manifest', index?: IndexInput): Manifest {
  const stats = index === undefined ? undefined : statReader(index.data, index.source);
  // One string of the whole text, not pieces: the paths and digests parsed are kept, and V8 makes a substring
  // of a long (external) string a copy, where a substring of a piece would keep its whole piece alive.
  const text = asByteText(input);
  const header: ManifestHeader = { version: '', hash: 'md5', root: '/', date: '' };
  let sawHash = false;
  const entries: ManifestEntry[] = [];
  /** The line each entry was on, for the message when a path is listed twice. */
  const lineOf: number[] = [];
  /**
   * Path -> line where it was listed: one entry per path. Made only when a
   * path's key (its encoded name, the order bart create writes) is not
   * greater than the one before: while keys increase none can repeat, and a
   * map of half a million paths is memory the parse does not need. The key,
   * not the token as written: `\141` and `a` are one name.
   */
  let seen: Map<string, number> | undefined;
  let lastKey = '';
  let lineNo = 0;
  let pos = 0;
  const n = text.length;
  while (pos < n) {
    const start = pos;
    let end = text.indexOf('\n', pos);
    if (end < 0) end = n;
    pos = end + 1;
    lineNo++;
    if (end > start && text.charCodeAt(end - 1) === 0x0d) end--;
    if (end === start) continue;
    const c0 = text.charCodeAt(start);
    if (c0 === 0x23 /* # */) continue;
    if (!(c0 > 0x21 && c0 < 0x7f)) {
      // A header line, a blank one, or an entry after white space.
      const line = text.slice(start, end);
      if (c0 === 0x21 /* ! */) {
        const meta = line.slice(1).trim();
        if (meta === 'XATTRS') {
          header.xattrs = true;
          continue;
        }
        const m = /^(\S+)\s+(.*)$/.exec(meta);
        const key = m?.[1]?.toUpperCase();
        if (key === 'VERSION') header.version = m![2]!.trim();
        else if (key === 'HASH') {
          const alg = HASHES[m![2]!.trim().toUpperCase()];
          if (alg === undefined) fail(source, lineNo, `unknown hash algorithm '${m![2]!.trim()}'`);
          header.hash = alg;
          sawHash = true;
        } else if (key === 'ROOT') header.root = decodeName(m![2]!.trim());
        else if (header.date === '') header.date = meta;
        continue;
      }
      if (/^\s*$/.test(line)) continue;
    }
    const stat = stats !== undefined && entries.length < stats.count ? stats.next() : undefined;
    // An entry line as bart create writes it is read where it lies, without a string for the line.
    const quick = quickEntry(text, start, end, stat);
    const e = quick ?? strictEntry(text.slice(start, end), source, lineNo, stat);
    if (seen === undefined) {
      const key = quick !== undefined && quickPlain ? e.path : encodeName(e.path);
      if (entries.length > 0 && key <= lastKey) seen = new Map(entries.map((x, k) => [x.path, lineOf[k]!]));
      lastKey = key;
    }
    if (seen !== undefined) {
      const before = seen.get(e.path);
      if (before !== undefined) fail(source, lineNo, `path '${text.slice(start, end).trim().split(/[ \t]+/)[0]}' is listed again (first on line ${before})`);
      seen.set(e.path, lineNo);
    }
    entries.push(e);
    lineOf.push(lineNo);
  }
  if (header.version === '') fail(source, 1, "no '! Version' line");
  stats?.expect(entries.length);
  if (!sawHash && header.version !== '1.0' && header.version !== '') {
    // Version 1.1 always names its hash; without one, fall back to what 1.0 meant.
    header.hash = 'md5';
  }
  return { header, entries };
}

export function parseEntryLine(line: string, source: string, lineNo: number, stat?: StatIndex): ManifestEntry {
  return quickEntry(line, 0, line.length, stat) ?? strictEntry(line, source, lineNo, stat);
}

/**
 * The reader that judges every line: the regular-expression split and the
 * checks that name what is wrong. `quickEntry` hands it every line it does
 * not read itself, so each refusal has its one message.
 */
export function strictEntry(line: string, source: string, lineNo: number, stat?: StatIndex): ManifestEntry {
  const t = line.trim().split(/[ \t]+/);
  if (t.length < 8) fail(source, lineNo, `expected at least 8 fields, found ${t.length}`);
  const type = t[1]!;
  if (!TYPES.has(type)) fail(source, lineNo, `unknown file type '${type}'`);
  checkEscapes(source, lineNo, 'path', t[0]!);
  const path = decodeName(t[0]!);
  checkPath(source, lineNo, t[0]!, path);
  const size = int(source, lineNo, 'size', t[2], 10, { min: 0, max: Number.MAX_SAFE_INTEGER });
  const mode = int(source, lineNo, 'mode', t[3], 8, { min: 0, max: MODE_MAX });
  const acl = t[4] === '-' ? '-' : decodeName(t[4]!);
  const mtime = int(source, lineNo, 'mtime', t[5], 16);
  const uid = int(source, lineNo, 'uid', t[6], 10, { min: 0, max: ID_MAX });
  const gid = int(source, lineNo, 'gid', t[7], 10, { min: 0, max: ID_MAX });
  let i = 8;
  let extra: string | number | undefined;
  if (type === 'F') {
    const c = t[i++];
    if (c === undefined) fail(source, lineNo, 'file entry without contents field');
    extra = c;
  } else if (type === 'L') {
    const d = t[i++];
    if (d === undefined) fail(source, lineNo, 'link entry without dest field');
    checkEscapes(source, lineNo, 'dest', d);
    extra = d === '\\000' ? '' : decodeName(d);
  } else if (type === 'B' || type === 'C') {
    // Solaris 10 manifests before 2010 end B and C lines at gid.
    if (t[i] !== undefined && !t[i]!.startsWith('x:')) extra = int(source, lineNo, 'devnode', t[i++], 16, { min: 0, max: Number.MAX_SAFE_INTEGER });
  }
  const e = newEntry(path, type as EntryType, size, mode, acl, mtime, uid, gid, extra, stat);
  for (; i < t.length; i++) {
    const tok = t[i]!;
    if (!tok.startsWith('x:')) continue; // unknown extensions are skipped, as Solaris skips ours
    const eq = tok.lastIndexOf('=');
    if (eq < 3) fail(source, lineNo, `malformed xattr field '${tok}'`);
    (e.xattrs ??= {})[decodeName(tok.slice(2, eq))] = tok.slice(eq + 1);
  }
  return e;
}

/**
 * Where the tokens of the line being read start and end (quickEntry): a
 * line of `bart create` has 9 or 10 fields; one with more goes to the
 * strict reader.
 */
const TOKENS = 16;
const tokStart = new Int32Array(TOKENS);
const tokEnd = new Int32Array(TOKENS);

/**
 * Set by quickEntry: the path it read is written as `encodeName` writes it
 * (no glob character), so the path is its own sort key. Only spares
 * parseManifest an `encodeName` per line: any key made from the path alone
 * finds a path listed twice.
 */
let quickPlain = false;

/** Whether the last path quickEntry read is its own key (`encodeName(path) === path`). */
export function quickPathIsKey(): boolean {
  return quickPlain;
}

/**
 * Digits of `text` from `a` to `b` in base `radix` (10, 8 or 16), or -1 when
 * one is not a digit or there are more than `max` of them: `max` digits of
 * the base always make a safe integer (15 decimal, 17 octal, 13 hex).
 */
function digits(text: string, a: number, b: number, radix: number, max: number): number {
  if (b <= a || b - a > max) return -1;
  let v = 0;
  for (let i = a; i < b; i++) {
    const c = text.charCodeAt(i);
    let d: number;
    if (c >= 0x30 && c <= 0x39) d = c - 0x30;
    else if (radix === 16 && c >= 0x61 && c <= 0x66) d = c - 0x57;
    else if (radix === 16 && c >= 0x41 && c <= 0x46) d = c - 0x37;
    else return -1;
    if (d >= radix) return -1;
    v = v * radix + d;
  }
  return v;
}

/**
 * The entry on `text` from `start` to `end` as strictEntry reads it, without
 * regular expressions or an array of tokens: drift and staging read half a
 * million lines of a kept manifest, where the strict reader's split and
 * checks were most of the time that is not I/O. It reads only what `bart
 * create` writes (printable ASCII, no escape in a path, link target or ACL,
 * no extended attribute, numbers in range) and returns undefined for
 * anything else, which strictEntry then reads or refuses with its message:
 * a line read here gives the entry strictEntry would give.
 */
export function quickEntry(text: string, start: number, end: number, stat?: StatIndex): ManifestEntry | undefined {
  let k = 0;
  for (let i = start; i < end; ) {
    let c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x09) {
      i++;
      continue;
    }
    if (k === TOKENS) return undefined;
    tokStart[k] = i;
    for (; i < end; i++) {
      c = text.charCodeAt(i);
      if (c <= 0x20 || c >= 0x7f) break;
    }
    if (i < end && c !== 0x20 && c !== 0x09) return undefined;
    tokEnd[k++] = i;
  }
  if (k < 8) return undefined;
  // The path: absolute, named components, no escape (`\` goes to the strict reader, which decodes and checks it).
  const p0 = tokStart[0]!;
  const p1 = tokEnd[0]!;
  if (text.charCodeAt(p0) !== 0x2f) return undefined;
  let plain = true;
  for (let i = p0 + 1, from = i; i <= p1; i++) {
    const c = i < p1 ? text.charCodeAt(i) : 0x2f;
    if (c === 0x5c) return undefined;
    if (c === 0x2a || c === 0x3f || c === 0x5b) plain = false;
    if (c !== 0x2f || (i === p1 && p1 === p0 + 1)) continue;
    const len = i - from;
    if (len === 0 || (text.charCodeAt(from) === 0x2e && (len === 1 || (len === 2 && text.charCodeAt(from + 1) === 0x2e)))) return undefined;
    from = i + 1;
  }
  if (tokEnd[1]! - tokStart[1]! !== 1) return undefined;
  const t = text.charCodeAt(tokStart[1]!);
  // F D L P S B C O
  if (t !== 0x46 && t !== 0x44 && t !== 0x4c && t !== 0x50 && t !== 0x53 && t !== 0x42 && t !== 0x43 && t !== 0x4f) return undefined;
  const size = digits(text, tokStart[2]!, tokEnd[2]!, 10, 15);
  const mode = digits(text, tokStart[3]!, tokEnd[3]!, 8, 17);
  if (size < 0 || mode < 0 || mode > MODE_MAX) return undefined;
  let acl = '-';
  if (tokEnd[4]! - tokStart[4]! !== 1 || text.charCodeAt(tokStart[4]!) !== 0x2d) {
    acl = text.slice(tokStart[4], tokEnd[4]);
    if (acl.includes('\\')) return undefined;
  }
  const neg = text.charCodeAt(tokStart[5]!) === 0x2d;
  let mtime = digits(text, tokStart[5]! + (neg ? 1 : 0), tokEnd[5]!, 16, 13);
  if (mtime < 0) return undefined;
  if (neg) mtime = -mtime;
  const uid = digits(text, tokStart[6]!, tokEnd[6]!, 10, 15);
  const gid = digits(text, tokStart[7]!, tokEnd[7]!, 10, 15);
  if (uid < 0 || uid > ID_MAX || gid < 0 || gid > ID_MAX) return undefined;
  let i = 8;
  let extra: string | number | undefined;
  if (t === 0x46 /* F */) {
    if (k < 9) return undefined;
    extra = text.slice(tokStart[8], tokEnd[8]);
    i = 9;
  } else if (t === 0x4c /* L */) {
    if (k < 9) return undefined;
    extra = text.slice(tokStart[8], tokEnd[8]);
    if (extra.includes('\\')) return undefined;
    i = 9;
  } else if ((t === 0x42 || t === 0x43) /* B C */ && k > 8 && !isXattrToken(text, tokStart[8]!, tokEnd[8]!)) {
    extra = digits(text, tokStart[8]!, tokEnd[8]!, 16, 13);
    if (extra < 0) return undefined;
    i = 9;
  }
  // Extended attributes go to the strict reader; other extensions are skipped, as it skips them.
  for (; i < k; i++) if (isXattrToken(text, tokStart[i]!, tokEnd[i]!)) return undefined;
  quickPlain = plain;
  return newEntry(text.slice(p0, p1), String.fromCharCode(t) as EntryType, size, mode, acl, mtime, uid, gid, extra, stat);
}

function isXattrToken(text: string, a: number, b: number): boolean {
  return b - a >= 2 && text.charCodeAt(a) === 0x78 && text.charCodeAt(a + 1) === 0x3a;
}

/** Attach a side index written by formatIndex() to the manifest it was written with. */
export function applyIndex(m: Manifest, input: string | Buffer, source = 'index'): Manifest {
  const stats = statReader(input, source);
  stats.expect(m.entries.length);
  for (const e of m.entries) {
    const stat = stats.next();
    if (stat !== undefined) e.stat = stat;
  }
  return m;
}

/** A side index read in the order of the manifest's entries. */
interface StatReader {
  /** Entries the index says it lists. */
  readonly count: number;
  /** Throws unless the index lists `entries` entries. */
  expect(entries: number): void;
  /** The stat index of the next entry (undefined: none recorded); throws when the index ends early or the line is malformed. */
  next(): StatIndex | undefined;
}

function statReader(input: string | Buffer, source: string): StatReader {
  if (typeof input !== 'string' && isIndex2(input)) return statReader2(input, source);
  // Lines as split('\n') gives them (a text ending with a newline has an empty last line), read piece by piece.
  const lines = (function* (): Generator<string> {
    let carry = '';
    for (const text of textPieces(input)) {
      let pos = 0;
      for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', pos)) {
        yield carry + text.slice(pos, nl);
        carry = '';
        pos = nl + 1;
      }
      carry += text.slice(pos);
    }
    yield carry;
  })();
  const head = lines.next().value ?? '';
  if (!head.startsWith(INDEX_MAGIC)) fail(source, 1, 'not a sysprime bart index');
  const count = Number(head.slice(INDEX_MAGIC.length).trim());
  let i = 0;
  return {
    count,
    expect(entries) {
      if (count !== entries) fail(source, 1, `index lists ${count} entries, the manifest ${entries}`);
    },
    next() {
      const l = lines.next();
      if (l.done === true) fail(source, i + 2, 'index ends early');
      return parseIndexLine(l.value, source, 2 + i++);
    },
  };
}

/** One line of a version 1 index: `dev ino mtimeMs ctimeMs`, or `-` (undefined) for an entry without one. */
export function parseIndexLine(l: string, source: string, lineNo: number): StatIndex | undefined {
  if (l === '-') return undefined;
  const a = l.indexOf(' ');
  const b = a < 0 ? -1 : l.indexOf(' ', a + 1);
  const c = b < 0 ? -1 : l.indexOf(' ', b + 1);
  const dev = Number(l.slice(0, a));
  const ino = Number(l.slice(a + 1, b));
  const mt = Number(l.slice(b + 1, c));
  const ct = Number(l.slice(c + 1));
  if (c < 0 || l.indexOf(' ', c + 1) >= 0 || a === 0 || b === a + 1 || c === b + 1 || c === l.length - 1 || !(Number.isFinite(dev) && Number.isFinite(ino) && Number.isFinite(mt) && Number.isFinite(ct))) {
    fail(source, lineNo, `malformed index line '${l}'`);
  }
  return { dev, ino, mtimeMs: mt, ctimeMs: ct };
}

/** A version 2 index (index-file.ts): binary records after its first line. */
function statReader2(data: Buffer, source: string): StatReader {
  const nl = data.indexOf(0x0a);
  const count = Number(data.toString('latin1', INDEX2_MAGIC.length, nl < 0 ? INDEX2_MAGIC.length + 40 : nl).trim().split(' ')[0]);
  if (nl < 0 || (nl + 1) % 8 !== 0 || !Number.isSafeInteger(count)) fail(source, 1, 'malformed first line');
  const checkSize = (): void => {
    if (data.length !== nl + 1 + count * RECORD * 8) fail(source, 1, `index of ${count} entries cannot be ${data.length} bytes long (truncated?)`);
  };
  let r: Float64Array | undefined;
  let i = 0;
  return {
    count,
    expect(entries) {
      if (count !== entries) fail(source, 1, `index lists ${count} entries, the manifest ${entries}`);
      checkSize();
    },
    next() {
      if (r === undefined) {
        checkSize();
        r = new Float64Array(new Uint8Array(data.buffer, data.byteOffset + nl + 1, count * RECORD * 8).slice().buffer);
      }
      if (i >= count) fail(source, i + 2, 'index ends early');
      const o = i++ * RECORD;
      if (r[o + R_STATE] === STATE_NO_STAT) return undefined;
      return { dev: r[o + R_DEV]!, ino: r[o + R_INO]!, mtimeMs: r[o + R_MTIME_MS]!, ctimeMs: r[o + R_CTIME_MS]! };
    },
  };
}
