/**
 * The stat walk of an incremental create, done by one `find -xdev -printf`
 * process: a C walk lists /usr's 147k entries in a quarter of a second,
 * several times faster than node's readdir and lstat with their Stats
 * objects. The rules are applied here, to find's output, because patterns
 * cannot become find expressions in general; only subtrees the rules leave
 * out as a whole (a literal path, every attribute ignored, nothing named
 * below) are pruned in find itself.
 *
 * What find prints is what lstat says: the times are seconds and
 * nanoseconds, turned into milliseconds with node's own formula
 * (sec * 1e3 + nsec / 1e6), so they equal what a node lstat of the same
 * file gives, to the last bit.
 */
import { closeSync, constants, lstatSync, mkdtempSync, openSync, readlinkSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../process/run.js';
import { encodeName } from './escape.js';
import { escapeOf } from './confine.js';
import { decide, enter, rootContext, shouldDescend, splitComponents, walkRoots, type Rules, type WalkContext } from './rules.js';
import { toFsPath, type EntryType } from './types.js';
import { NUMS, N_CTIME_MS, N_DEV, N_FLAGS, N_GID, N_INO, N_MODE, N_MTIME_MS, N_RDEV, N_SIZE, N_UID, typeOf } from './walk.js';
import { messageOf } from '../errors.js';

/** What the walk found, in find's order: one path, type letter and NUMS numbers per recorded entry. */
export interface FoundEntries {
  paths: string[];
  /** The paths as the manifest writes them (escape.ts). */
  keys: string[];
  types: string;
  nums: Float64Array;
  /** Link targets of the L entries, in order. */
  dests: string[];
  warnings: string[];
}

/** Told of each recorded entry as the walk finds it: its index in the walk, path, type, rule flags and size. */
export type EntryFound = (j: number, path: string, type: EntryType, flags: number, size: number) => void;

/** type letter, st_dev, inode, size, permission bits, uid, gid, mtime, ctime, then path NUL target NUL. */
const FORMAT = '%y %D %i %s %m %U %G %T@ %C@ %p\\0%l\\0';

const FILE_TYPE_BITS: Record<string, number> = { f: 0o100000, d: 0o040000, l: 0o120000, p: 0o010000, s: 0o140000, b: 0o060000, c: 0o020000 };

/** A byte string as the UTF-8 argument find receives, or undefined when the bytes are not UTF-8. */
function asArgument(bytes: string): string | undefined {
  const text = Buffer.from(bytes, 'latin1').toString('utf8');
  return Buffer.from(text, 'utf8').toString('latin1') === bytes ? text : undefined;
}

/** find's -path patterns are globs: quote what would be read as one. */
function quoteFindGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => '\\' + c);
}

/** Directories the rules leave out as a whole, found from literal subtrees alone (relative paths). */
function prunedSubtrees(rules: Rules): string[] {
  const out: string[] = [];
  for (const r of rules.rules) {
    if (r.modifiers.length > 0 || r.flags !== 0 || r.literalPrefix === '/') continue;
    const comps = splitComponents(r.literalPrefix);
    if (comps.length !== r.parts.length) continue; // a subtree with wildcards
    let ctx = rootContext(rules);
    for (const c of comps) ctx = enter(ctx, c);
    if (!shouldDescend(ctx, comps)) out.push('/' + comps.join('/'));
  }
  return out;
}

interface Directory {
  ctx: WalkContext;
  comps: string[];
}

/** Grows a Float64Array column store by doubling. */
class Columns {
  nums = new Float64Array(NUMS * 4096);
  count = 0;

  slot(): number {
    if ((this.count + 1) * NUMS > this.nums.length) {
      const grown = new Float64Array(this.nums.length * 2);
      grown.set(this.nums);
      this.nums = grown;
    }
    return this.count++ * NUMS;
  }
}

/**
 * Walk the subtrees the rules select under `prefix` (the root as a byte
 * string, '' for '/'). Returns undefined when the walk cannot be expressed
 * as find arguments (a root or subtree whose name is not UTF-8): the caller
 * then walks in node.
 */
export async function findWalk(rules: Rules, prefix: string, onEntry?: EntryFound, readBuffer = READ_BUFFER): Promise<FoundEntries | undefined> {
  const found: FoundEntries = { paths: [], keys: [], types: '', nums: new Float64Array(0), dests: [], warnings: [] };
  const cols = new Columns();
  let types = '';
  const starts = new Map<string, Directory>();
  const args: string[] = [];

  const record = (path: string, key: string, type: EntryType, flags: number, n: readonly number[], dest: string | undefined) => {
    const o = cols.slot();
    const a = cols.nums;
    a[o + N_DEV] = n[0]!;
    a[o + N_INO] = n[1]!;
    a[o + N_SIZE] = n[2]!;
    a[o + N_MODE] = n[3]!;
    a[o + N_UID] = n[4]!;
    a[o + N_GID] = n[5]!;
    a[o + N_MTIME_MS] = n[6]!;
    a[o + N_CTIME_MS] = n[7]!;
    a[o + N_RDEV] = 0;
    a[o + N_FLAGS] = flags;
    if (type === 'B' || type === 'C') {
      // find has no directive for st_rdev: the rare device node gets an lstat of its own.
      const st = lstatSync(toFsPath(prefix + path), { throwIfNoEntry: false });
      a[o + N_RDEV] = st?.rdev ?? 0;
    }
    found.paths.push(path);
    found.keys.push(key);
    types += type;
    if (type === 'L') found.dests.push(dest ?? '-');
    onEntry?.(found.paths.length - 1, path, type, flags, n[2]!);
  };

  // The starting points are looked at here, as the thread walk does, so both agree on what a missing one means.
  for (const start of walkRoots(rules)) {
    const comps = splitComponents(start);
    let ctx = rootContext(rules);
    for (const c of comps) ctx = enter(ctx, c);
    const full = prefix + (start === '/' ? '' : start) || '/';
    const escape = escapeOf(prefix, comps);
    if (escape !== undefined) {
      found.warnings.push(`${full}: subtree ${escape}; not walked`);
      continue;
    }
    const st = lstatSync(toFsPath(full), { throwIfNoEntry: false });
    if (st === undefined) {
      found.warnings.push(`${full}: subtree does not exist, ignored`);
      continue;
    }
    const type = typeOf(st.mode);
    if (type === undefined) continue;
    const rel = start === '/' ? '/' : start;
    const rule = decide(ctx, comps, type);
    if (rule !== undefined && rule.flags !== 0) {
      let dest: string | undefined;
      if (type === 'L') {
        try {
          dest = readlinkSync(toFsPath(full), { encoding: 'latin1' });
        } catch (err) {
          found.warnings.push(`${full}: ${messageOf(err)}`);
        }
      }
      record(rel, encodeName(rel), type, rule.flags, [st.dev, st.ino, st.size, st.mode, st.uid, st.gid, st.mtimeMs, st.ctimeMs], dest);
    }
    if (type !== 'D' || !shouldDescend(ctx, comps)) continue;
    const arg = asArgument(full);
    if (arg === undefined) return undefined;
    starts.set(start === '/' ? '' : start, { ctx, comps });
    args.push(arg);
  }

  if (args.length > 0) {
    const prune: string[] = [];
    for (const p of prunedSubtrees(rules)) {
      const arg = asArgument(prefix + p);
      if (arg === undefined) continue; // walked and filtered here instead
      if (prune.length > 0) prune.push('-o');
      prune.push('-path', quoteFindGlob(arg));
    }
    // find writes into a FIFO of our own, read here as it comes: the parse runs while find walks, on the other core.
    const tmp = mkdtempSync(join(tmpdir(), 'sysprime-bart-walk-'));
    try {
      const list = join(tmp, 'list');
      await run('mkfifo', ['-m', '600', list]);
      const parser = new FindParser(prefix, starts, found, record);
      let opened = false;
      const reading = (async () => {
        // Opening a FIFO to read waits for its writer (find), on a thread of node's pool.
        const fifo = await open(list, 'r');
        opened = true;
        try {
          await parser.readAll(fifo, readBuffer);
        } finally {
          await fifo.close();
        }
      })();
      // Awaited once find is done; a failure before then is not an unhandled rejection meanwhile.
      reading.catch(() => undefined);
      const print = ['-fprintf', list, FORMAT];
      const expr = prune.length === 0 ? print : ['(', ...prune, ')', '-prune', ...print, '-o', ...print];
      let r;
      try {
        r = await run('find', ['-P', ...args, '-xdev', '-mindepth', '1', ...expr], { allowFailure: true, env: { LC_ALL: 'C' } });
      } finally {
        // A find that never opened the FIFO leaves our open waiting for a writer: be that writer, write nothing.
        if (!opened) await releaseReader(list, () => opened);
        await reading;
      }
      for (const line of r.stderr.split('\n')) if (line.trim() !== '') found.warnings.push(line.replace(/^find: /, ''));
      if (!parser.done()) found.warnings.push(`${prefix || '/'}: the walk's output ended in the middle of an entry`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  found.types = types;
  found.nums = cols.nums.subarray(0, cols.count * NUMS);
  return found;
}

type Recorder = (path: string, key: string, type: EntryType, flags: number, n: readonly number[], dest: string | undefined) => void;

const SPACE = 0x20;
const DOT = 0x2e;

/** An open directory of find's depth-first walk: where its children's rules come from. */
interface Open extends Directory {
  path: string;
}

/**
 * Parse find's records: nine space-separated fields, the path up to a NUL,
 * the link target up to a NUL. The numbers are read straight from the
 * bytes; the only strings made are the paths (and link targets) kept, and
 * their encoded form only when a byte needs quoting.
 *
 * find lists a directory before what is in it, depth first, so the
 * directory an entry is in is on a stack of the directories open above the
 * previous entry: no lookup by name for the common case.
 */
/** Buffer's own latin1 decoder, without toString's argument checks (a quarter of the parse time otherwise). */
interface Latin1Slicer {
  latin1Slice(start: number, end: number): string;
}

/** Open the FIFO for writing without blocking, until the reader's pending open has taken it, then close it: the reader sees its end. */
async function releaseReader(fifo: string, readerOpen: () => boolean): Promise<void> {
  for (let tries = 0; tries < 500 && !readerOpen(); tries++) {
    try {
      closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
      return;
    } catch {
      // ENXIO: the reader's open has not reached the kernel yet.
      await new Promise((res) => setTimeout(res, 10));
    }
  }
}

/**
 * Bytes of find's output read at once. A read from a pipe returns at most
 * what the pipe holds (64 KiB); one buffer, reused, holds a read and the
 * part of a record left from the one before (findWalk's `readBuffer`: a
 * test reads a few bytes at a time). A new buffer for each read
 * (a read stream's) was external memory that made V8 run a full
 * collection every few reads: 120 of them, 1.4 s, in an incremental
 * create of 500,000 entries.
 */
const READ_BUFFER = 1 << 20;

/** Parses find's output as it arrives; a record cut between two reads waits for the next one. */
class FindParser {
  private readonly stack: Open[] = [];
  private rest = 0;

  constructor(
    private readonly prefix: string,
    private readonly starts: Map<string, Directory>,
    private readonly found: FoundEntries,
    private readonly record: Recorder,
  ) {}

  /** Read and parse everything `from` gives until its end, `size` bytes at most at once. */
  async readAll(from: { read(buf: Buffer, offset: number, length: number, position: null): Promise<{ bytesRead: number }> }, size: number): Promise<void> {
    let buf = Buffer.allocUnsafe(size);
    for (;;) {
      // A record longer than the buffer (find prints paths deeper than PATH_MAX): a larger one.
      if (this.rest === buf.length) {
        const larger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(larger, 0, 0, this.rest);
        buf = larger;
      }
      const { bytesRead } = await from.read(buf, this.rest, buf.length - this.rest, null);
      if (bytesRead === 0) return;
      this.feed(buf, this.rest + bytesRead);
    }
  }

  /** Parse the complete records of the first `length` bytes of `buf`, and move what is left of the last to its start. */
  feed(buf: Buffer, length: number): void {
    const used = parseFindOutput(buf.subarray(0, length), this.prefix, this.starts, this.found, this.record, this.stack);
    buf.copyWithin(0, used, length);
    this.rest = length - used;
  }

  done(): boolean {
    return this.rest === 0;
  }
}

/** Parse the complete records of `out`; returns how many bytes they took. */
function parseFindOutput(out: Buffer, prefix: string, starts: Map<string, Directory>, found: FoundEntries, record: Recorder, stack: Open[]): number {
  const n = [0, 0, 0, 0, 0, 0, 0, 0];
  const end = out.length;
  const cut = prefix.length;
  const bytes = out as unknown as Latin1Slicer;
  let pos = 0;
  while (pos < end) {
    // A record is complete when both its NULs (after the path, after the link target) are here.
    const nul = out.indexOf(0, pos);
    if (nul < 0 || out.indexOf(0, nul + 1) < 0) break;
    const letter = String.fromCharCode(out[pos]!);
    pos += 2;
    // st_dev, inode, size: decimal.
    for (let f = 0; f < 3; f++) {
      let v = 0;
      for (let c = out[pos]!; c !== SPACE; c = out[++pos]!) v = v * 10 + (c - 0x30);
      n[f] = v;
      pos++;
    }
    let perm = 0;
    for (let c = out[pos]!; c !== SPACE; c = out[++pos]!) perm = perm * 8 + (c - 0x30);
    pos++;
    for (let f = 4; f < 6; f++) {
      let v = 0;
      for (let c = out[pos]!; c !== SPACE; c = out[++pos]!) v = v * 10 + (c - 0x30);
      n[f] = v;
      pos++;
    }
    // mtime and ctime: seconds.fraction, the fraction with ten digits of which nine are nanoseconds.
    let exact = true;
    for (let f = 6; f < 8; f++) {
      if (out[pos] === 0x2d) {
        exact = false;
        pos++;
      }
      let sec = 0;
      for (let c = out[pos]!; c !== DOT && c !== SPACE; c = out[++pos]!) sec = sec * 10 + (c - 0x30);
      let nsec = 0;
      if (out[pos] === DOT) {
        pos++;
        let digits = 0;
        for (let c = out[pos]!; c !== SPACE; c = out[++pos]!) {
          if (digits++ < 9) nsec = nsec * 10 + (c - 0x30);
        }
        for (; digits < 9; digits++) nsec *= 10;
      }
      n[f] = sec * 1e3 + nsec / 1e6;
      pos++;
    }
    // The path, and whether its manifest form needs quoting (see escape.ts).
    const pathStart = pos + cut;
    let plain = true;
    let slash = -1;
    let c = out[pos]!;
    for (; c !== 0; c = out[++pos]!) {
      if (c === 0x2f) slash = pos;
      else if (c <= 0x20 || c >= 0x7f || c === 0x2a || c === 0x3f || c === 0x5b || c === 0x5c) plain = false;
    }
    const pathEnd = pos++;
    const destStart = pos;
    while (out[pos] !== 0) pos++;
    const destEnd = pos++;

    // The directory this entry is in: the innermost open one of the parent's length that holds it.
    const parentLen = slash - pathStart;
    while (stack.length > 0 && stack[stack.length - 1]!.path.length > parentLen) stack.pop();
    const path = bytes.latin1Slice(pathStart, pathEnd);
    let parent: Directory | undefined = stack[stack.length - 1];
    if (parent === undefined || (parent as Open).path.length !== parentLen || !path.startsWith((parent as Open).path)) {
      // A new starting point, or a directory the rules do not descend into.
      parent = starts.get(path.slice(0, parentLen));
      if (parent === undefined) continue;
      stack.length = 0;
      stack.push({ path: path.slice(0, parentLen), ...parent });
    }
    const bits = FILE_TYPE_BITS[letter];
    if (bits === undefined) {
      found.warnings.push(`${prefix + path}: unsupported file type, ignored`);
      continue;
    }
    const type = typeOf(bits)!;
    if (!exact) {
      // A time before 1970: let node's own lstat say what its milliseconds are.
      const st = lstatSync(toFsPath(prefix + path), { throwIfNoEntry: false });
      if (st === undefined) continue;
      n[6] = st.mtimeMs;
      n[7] = st.ctimeMs;
    }
    n[3] = bits | perm;
    const pctx = parent.ctx;
    const needName = pctx.pending.length > 0 || pctx.active.some((r) => r.modifiers.length > 0);
    const name = needName || type === 'D' ? path.slice(parentLen + 1) : '';
    const ctx = pctx.pending.length > 0 ? enter(pctx, name) : pctx;
    const comps = needName ? [...parent.comps, name] : parent.comps;
    const rule = decide(ctx, comps, type);
    if (rule !== undefined && rule.flags !== 0) record(path, plain ? path : encodeName(path), type, rule.flags, n, type === 'L' ? bytes.latin1Slice(destStart, destEnd) : undefined);
    if (type === 'D' && shouldDescend(ctx, comps)) stack.push({ path, ctx, comps: needName ? comps : [...parent.comps, name] });
  }
  return pos;
}
