/**
 * The fast incremental create: a manifest made from a saved one (its text
 * and its version 2 index) and a stat walk by find, where an unchanged
 * entry's line is copied from the saved text as bytes, never parsed.
 *
 * What it trusts: an entry whose device, inode, size, mtime and ctime are
 * all what the index says is unchanged in every attribute a line holds.
 * Contents, mode, owner, ACL and extended attributes cannot change without
 * the kernel setting ctime, and a link target or device number cannot
 * change without a new inode. Only a process that sets the clock back, or
 * writes the block device under the filesystem, gets past that; a full
 * create (no previous manifest) trusts nothing and reads everything again.
 *
 * Changed and new entries are made as createManifest makes them (hashed,
 * their ACLs and xattrs read), and only they.
 */
import { availableParallelism } from 'node:os';
import { formatHeader, formatLines, makeHeader } from './format.js';
import { CHUNK, hashFile, loadHashers } from './hash.js';
import { RECORD, R_CTIME_MS, R_DEV, R_INO, R_LINE, R_MTIME_MS, R_SIZE, R_STATE, R_WALK, STATE_COMPLETE, STATE_INCOMPLETE, type SavedIndex } from './index-file.js';
import { readAcls, readXattrs } from './metadata.js';
import { ATTR, type Rules } from './rules.js';
import { findWalk, type FoundEntries } from './find-walk.js';
import { HashStream } from './hash-stream.js';
import { TreePool } from './tree-pool.js';
import { toFsPath, type EntryType, type HashAlgorithm, type ManifestEntry } from './types.js';
import { NUMS, N_CTIME_MS, N_DEV, N_FLAGS, N_GID, N_INO, N_MODE, N_MTIME_MS, N_RDEV, N_SIZE, N_UID } from './walk.js';
import { messageOf } from '../errors.js';

export interface IncrementalInput {
  /** The root as a byte string without a trailing slash ('' for '/'). */
  prefix: string;
  rules: Rules;
  hash: HashAlgorithm;
  noContents: boolean;
  acl: boolean;
  /** The saved manifest's bytes and its index (checked to belong together, made with the same options). */
  text: Buffer;
  index: SavedIndex;
  warn: (message: string) => void;
}

export interface ManifestText {
  text: Buffer;
  /** RECORD numbers per entry, for encodeIndex. */
  records: Float64Array;
  status: 0 | 1;
  warnings: string[];
  hashed: number;
  reused: number;
}

/** Above this many changed files, hashing goes to the worker threads. */
const POOL_THRESHOLD = 256;

/** Undefined when the tree cannot be walked by find (names that are not UTF-8 in the roots): walk in node instead. */
export async function createIncremental(input: IncrementalInput): Promise<ManifestText | undefined> {
  const { prefix, rules, text, index } = input;
  const warnings: string[] = [];
  const warn = (msg: string) => {
    warnings.push(msg);
    input.warn(msg);
  };
  await loadHashers();
  const digests: string[] = [];
  const incomplete = new Set<number>();
  let paths: readonly string[] = [];
  const digestDone = (j: number, digest: string | undefined, err: string) => {
    if (digest !== undefined) digests[j] = digest;
    else {
      incomplete.add(j);
      warn(`${prefix + paths[j]!}: ${err}`);
    }
  };
  // With nothing saved every file is hashed: hand files to the workers as find lists them.
  const stream = index.count === 0 && !input.noContents ? new HashStream(input.hash, rules, prefix, digestDone) : undefined;
  const walking = findWalk(
    rules,
    prefix,
    stream && ((j, path, type, flags, size) => {
      if (type === 'F' && (flags & ATTR.contents) !== 0) stream.add(j, path, size);
    }),
  );

  // While find runs: the saved entries in the order the last walk listed them.
  const saved = index.records;
  const count = index.count;
  const slotAtWalk = new Int32Array(count).fill(-1);
  for (let i = 0; i < count; i++) {
    const w = saved[i * RECORD + R_WALK]!;
    if (w >= 0 && w < count && slotAtWalk[w] === -1) slotAtWalk[w] = i;
  }
  // By name only for entries found out of that order (the tree changed there): made on first need.
  let slotOf: Map<string, number> | undefined;
  const lookUp = (key: string): number | undefined => {
    if (slotOf === undefined) {
      slotOf = new Map();
      const bytes = text as unknown as { latin1Slice(start: number, end: number): string };
      for (let i = 0; i < count; i++) {
        const start = saved[i * RECORD + R_LINE]!;
        slotOf.set(bytes.latin1Slice(start, text.indexOf(0x20, start)), i);
      }
    }
    return slotOf.get(key);
  };

  let found: FoundEntries | undefined;
  try {
    found = await walking;
  } finally {
    if (found === undefined) await stream?.close();
  }
  if (found === undefined) return undefined;
  paths = found.paths;
  for (const w of found.warnings) warn(w);

  const kept = new Uint8Array(count);
  // Changed and new entries are indices into the walk's columns: no object per entry, whatever their number.
  const changed: number[] = [];
  const wantAcl: number[] = [];
  const wantXattr: number[] = [];
  const toHash: number[] = [];
  const destOf = new Int32Array(found.paths.length).fill(-1);
  let anyXattr = false;
  let link = 0;
  const nums = found.nums;
  const types = found.types;
  const keptWalk = new Float64Array(count);
  let expect = 0;
  for (let j = 0; j < found.paths.length; j++) {
    const o = j * NUMS;
    const type = types.charCodeAt(j);
    const flags = nums[o + N_FLAGS]!;
    if (type === 0x4c /* L */) destOf[j] = link++;
    if (flags & ATTR.xattr) anyXattr = true;
    const key = found.keys[j]!;
    let slot: number | undefined = expect < count ? slotAtWalk[expect]! : -1;
    if (slot < 0 || compareKey(key, text, saved[slot * RECORD + R_LINE]!) !== 0) slot = lookUp(key);
    if (slot !== undefined) {
      const w = saved[slot * RECORD + R_WALK]!;
      if (w >= 0) expect = w + 1;
      keptWalk[slot] = j;
      const s = slot * RECORD;
      if (
        saved[s + R_STATE] === STATE_COMPLETE &&
        saved[s + R_INO] === nums[o + N_INO] &&
        saved[s + R_CTIME_MS] === nums[o + N_CTIME_MS] &&
        saved[s + R_MTIME_MS] === nums[o + N_MTIME_MS] &&
        saved[s + R_SIZE] === nums[o + N_SIZE] &&
        saved[s + R_DEV] === nums[o + N_DEV]
      ) {
        kept[slot] = 1;
        continue;
      }
    }
    if (type === 0x46 /* F */ && !input.noContents && (flags & ATTR.contents) !== 0 && stream === undefined) toHash.push(j);
    if (flags & ATTR.acl && type !== 0x4c && input.acl) wantAcl.push(j);
    if (flags & ATTR.xattr) wantXattr.push(j);
    changed.push(j);
  }

  // The changed entries only: digests, ACLs, xattrs, as a full create reads them.
  const abs = (j: number) => prefix + found.paths[j]!;
  const acls = wantAcl.length === 0 ? undefined : readAcls(wantAcl.map(abs)).catch((err: Error) => {
    warn(`ACLs not collected: ${err.message}`);
    for (const j of wantAcl) incomplete.add(j);
    return new Map<string, string>();
  });
  const xattrs = wantXattr.length === 0 ? undefined : readXattrs(wantXattr.map(abs), input.hash).catch((err: Error) => {
    warn(`extended attributes not collected: ${err.message}`);
    for (const j of wantXattr) incomplete.add(j);
    return new Map<string, Record<string, string>>();
  });
  if (stream !== undefined) await stream.finish();
  else await hashEntries(toHash, found.paths, input, digestDone);
  // The tools answer with absolute paths, and only for the few entries that have something.
  const relative = <T>(m: Map<string, T> | undefined) => new Map([...(m ?? [])].map(([p, v]) => [p.slice(prefix.length), v]));
  const aclOf = relative(await acls);
  const xattrsOf = relative(await xattrs);
  const wantsXattr = new Uint8Array(found.paths.length);
  for (const j of wantXattr) wantsXattr[j] = 1;

  // In C collation of the encoded paths, as the text lists them; and where each goes among the saved lines.
  changed.sort((a, b) => (found.keys[a]! < found.keys[b]! ? -1 : found.keys[a]! > found.keys[b]! ? 1 : 0));
  const before = new Float64Array(changed.length);
  for (let k = 0; k < changed.length; k++) before[k] = lowerBound(found.keys[changed[k]!]!, text, saved, count);

  // One entry object, filled for each changed line in turn.
  const scratch: ManifestEntry = { path: '', type: 'F', size: 0, mode: 0, acl: '-', mtime: 0, uid: 0, gid: 0 };
  const entryAt = (n: number): ManifestEntry => {
    const j = changed[n]!;
    const o = j * NUMS;
    const e = scratch;
    const type = types[j] as EntryType;
    e.path = found.paths[j]!;
    e.type = type;
    e.size = nums[o + N_SIZE]!;
    e.mode = nums[o + N_MODE]!;
    e.mtime = Math.floor(nums[o + N_MTIME_MS]! / 1000);
    e.uid = nums[o + N_UID]!;
    e.gid = nums[o + N_GID]!;
    e.acl = aclOf.size === 0 ? '-' : (aclOf.get(e.path) ?? '-');
    e.contents = type === 'F' ? (digests[j] ?? '-') : undefined;
    e.dest = type === 'L' ? found.dests[destOf[j]!]! : undefined;
    e.devnode = type === 'B' || type === 'C' ? nums[o + N_RDEV]! : undefined;
    e.xattrs = wantsXattr[j] === 1 ? xattrsOf.get(e.path) : undefined;
    return e;
  };

  // Merge the kept lines (already in order) with the changed entries.
  const header = makeHeader(input.hash, prefix === '' ? '/' : prefix);
  if (anyXattr) header.xattrs = true;
  // With nothing saved (a full create) the text is the header and the changed lines alone: written into one
  // buffer and handed out as it is, not copied into another (tens of MB at the moment memory is highest).
  const whole = count === 0;
  const head = formatHeader(header);
  const chunks: Buffer[] = whole ? [] : [Buffer.from(head, 'latin1')];
  let offset = Buffer.byteLength(head, 'latin1');
  const records = new Float64Array((countKept(kept) + changed.length) * RECORD);
  // The changed entries' lines, all in one buffer (after the header when whole); where each starts.
  const changedStarts = new Float64Array(changed.length + 1);
  const changedText = formatLines(changed.length, entryAt, whole ? head : '', changedStarts);
  changedStarts[changed.length] = changedText.length;
  const end = text.length;
  let i = 0;
  let r = 0;
  let k = 0;
  while (i < count || k < changed.length) {
    if (k < changed.length && (i >= count || before[k]! <= i)) {
      // The changed entries that sort before saved line i go out as one slice.
      const first = k;
      do {
        const j = changed[k]!;
        const o = j * NUMS;
        records[r + R_DEV] = nums[o + N_DEV]!;
        records[r + R_INO] = nums[o + N_INO]!;
        records[r + R_SIZE] = nums[o + N_SIZE]!;
        records[r + R_MTIME_MS] = nums[o + N_MTIME_MS]!;
        records[r + R_CTIME_MS] = nums[o + N_CTIME_MS]!;
        records[r + R_LINE] = offset + changedStarts[k]! - changedStarts[first]!;
        records[r + R_STATE] = incomplete.has(j) ? STATE_INCOMPLETE : STATE_COMPLETE;
        records[r + R_WALK] = j;
        r += RECORD;
        k++;
      } while (k < changed.length && (i >= count || before[k]! <= i));
      if (!whole) chunks.push(changedText.subarray(changedStarts[first]!, changedStarts[k]!));
      offset += changedStarts[k]! - changedStarts[first]!;
      continue;
    }
    if (kept[i] === 0) {
      i++;
      continue;
    }
    // A run of kept lines up to the next changed entry goes out as one slice of the saved text.
    let j = i;
    const runStart = saved[i * RECORD + R_LINE]!;
    while (j < count && kept[j] === 1 && (k >= changed.length || before[k]! > j)) j++;
    records.set(saved.subarray(i * RECORD, j * RECORD), r);
    for (let q = 0; q < j - i; q++) {
      records[r + q * RECORD + R_LINE] = offset + records[r + q * RECORD + R_LINE]! - runStart;
      records[r + q * RECORD + R_WALK] = keptWalk[i + q]!;
    }
    r += (j - i) * RECORD;
    const runEnd = j < count ? saved[j * RECORD + R_LINE]! : end;
    chunks.push(text.subarray(runStart, runEnd));
    offset += runEnd - runStart;
    i = j;
  }
  return { text: whole ? changedText : Buffer.concat(chunks, offset), records: records.subarray(0, r), status: warnings.length > 0 ? 1 : 0, warnings, hashed: stream?.count ?? toHash.length, reused: 0 };
}

/** An encoded path against the first token of the saved line at `start`, in C collation (tokens are printable ASCII). */
function compareKey(key: string, text: Buffer, start: number): number {
  const n = key.length;
  for (let c = 0; c < n; c++) {
    const b = text[start + c]!;
    const k = key.charCodeAt(c);
    if (b === 0x20) return 1; // the token is a prefix of the key
    if (k !== b) return k < b ? -1 : 1;
  }
  return text[start + n] === 0x20 ? 0 : -1;
}

/** How many saved lines sort before `key`. */
function lowerBound(key: string, text: Buffer, saved: Float64Array, count: number): number {
  let lo = 0;
  let hi = count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKey(key, text, saved[mid * RECORD + R_LINE]!) > 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function countKept(kept: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < kept.length; i++) n += kept[i]!;
  return n;
}

/** Digests of the files at these indices of `paths`: in this thread for a few, in the worker threads for many. */
async function hashEntries(files: number[], paths: string[], input: IncrementalInput, done: (j: number, digest: string | undefined, err: string) => void): Promise<void> {
  if (files.length === 0) return;
  const prefix = input.prefix;
  if (files.length <= POOL_THRESHOLD) {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (const j of files) {
      try {
        done(j, hashFile(input.hash, toFsPath(prefix + paths[j]!), buf), '');
      } catch (err) {
        done(j, undefined, messageOf(err));
      }
    }
    return;
  }
  const pool = new TreePool(input.hash, Math.max(1, Math.min(availableParallelism(), 8)), input.rules, prefix, undefined, true);
  try {
    for (let i = 0; i < files.length; i += POOL_THRESHOLD) {
      const batch = files.slice(i, i + POOL_THRESHOLD);
      pool.hash(
        batch.map((j) => prefix + paths[j]!),
        (digests, errors) => {
          for (let b = 0; b < batch.length; b++) {
            const d = digests[b];
            done(batch[b]!, d ?? undefined, errors[b] ?? 'cannot be read');
          }
        },
      );
    }
    await pool.drain();
  } finally {
    await pool.close();
  }
}
