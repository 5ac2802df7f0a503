/**
 * bart create: walk the tree the rules select, one lstat per entry, stay on
 * the filesystem each walk starts on, and reuse the digests of a previous
 * manifest for files whose inode, size, mtime and ctime have not moved.
 * Walking and hashing both happen in worker threads (tree-pool.ts); this
 * thread only turns their columns into entries and hands out hash batches.
 *
 * Problems with single files (vanished, unreadable) are warnings: the
 * manifest is still written and the status is 1, as Solaris does.
 */
import { newEntry } from './shapes.js';
import { lstatSync, statSync, type Stats } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { SysprimeError, errnoOf, messageOf } from '../errors.js';
import { makeHeader, sortEntries } from './format.js';
import { loadHashers } from './hash.js';
import { readAcls, readXattrs } from './metadata.js';
import { escapeOf } from './confine.js';
import { ATTR, decide, defaultRules, enter, rootContext, shouldDescend, splitComponents, walkRoots, type Rules } from './rules.js';
import { TreePool } from './tree-pool.js';
import { toFsPath, type EntryType, type HashAlgorithm, type Manifest, type ManifestEntry, type StatIndex } from './types.js';
import {
  INCOMPLETE, NUMS, N_CTIME_MS, N_DEV, N_FLAGS, N_GID, N_INO, N_MODE, N_MTIME_MS, N_RDEV, N_SIZE, N_UID,
  WalkSink, splitPaths, toUnitContext, typeOf, type WalkResult, type WalkUnit,
} from './walk.js';

export interface CreateOptions {
  /** -R: the tree the manifest describes; paths in it are relative to this. Default '/'. */
  root?: string;
  /** -r: which subtrees and attributes. Default: everything under the root. */
  rules?: Rules;
  /** -I: catalog exactly these paths (relative to the root), no walk, no rules. */
  files?: readonly string[];
  /** Default xxh64. */
  hash?: HashAlgorithm;
  /** -n: no contents digests. */
  noContents?: boolean;
  /** A manifest of the same filesystem with its side index (applyIndex). */
  previous?: Manifest;
  /** Hashing threads; default: the number of cores. */
  threads?: number;
  /** Collect ACLs where rules check `acl` (default true; false writes '-'). */
  acl?: boolean;
  /** Called for each non-fatal problem, as it happens. */
  onWarning?: (message: string) => void;
}

export interface CreateResult {
  manifest: Manifest;
  /** 0: clean; 1: some entries could not be read completely (see warnings). */
  status: 0 | 1;
  warnings: string[];
  /** Files hashed, and files whose digest came from the previous manifest. */
  hashed: number;
  reused: number;
  /** Entries that could not be read completely (digest, link target, ACL or xattrs): a saved index marks them. */
  incomplete: Set<ManifestEntry>;
}

/** Hash batches: enough work per message to hide its cost. */
const BATCH_FILES = 256;
const BATCH_BYTES = 32 << 20;
/** getfacl gets the paths in runs of this many, started while the walk goes on. */
const ACL_BATCH = 40_000;
/** Directory levels below a walk's start that are handed out as separate units. */
const SPLIT_LEVELS = 2;

/** The root as a byte string without a trailing slash ('' for '/'). */
export function rootPrefix(root: string): string {
  let st: Stats;
  const abs = resolve(root);
  try {
    st = statSync(abs);
  } catch (err) {
    throw new SysprimeError('USAGE', `-R ${root}: ${errnoOf(err) === 'ENOENT' ? 'no such directory' : messageOf(err)}`, { hint: 'give the directory the manifest should describe' });
  }
  if (!st.isDirectory()) throw new SysprimeError('USAGE', `-R ${root} is not a directory`, { hint: 'give the directory the manifest should describe' });
  const bytes = Buffer.from(abs, 'utf8').toString('latin1');
  return bytes === '/' ? '' : bytes;
}

export async function createManifest(opts: CreateOptions = {}): Promise<CreateResult> {
  const alg = opts.hash ?? 'xxh64';
  const root = opts.root ?? '/';
  const prefix = rootPrefix(root);
  const rules = opts.rules ?? defaultRules();
  const warnings: string[] = [];
  const warn = (msg: string) => {
    warnings.push(msg);
    opts.onWarning?.(msg);
  };
  await loadHashers();

  const previous = new Map<string, ManifestEntry>();
  if (opts.previous !== undefined && opts.previous.header.hash === alg) {
    for (const e of opts.previous.entries) if (e.type === 'F' && e.stat !== undefined && e.contents !== undefined && e.contents !== '-') previous.set(e.path, e);
  }

  const entries: ManifestEntry[] = [];
  const wantAcl: ManifestEntry[] = [];
  const wantXattr: ManifestEntry[] = [];
  const incomplete = new Set<ManifestEntry>();
  let aclFailed = false;
  let xattrFailed = false;
  const aclRuns: Promise<Map<string, string>>[] = [];
  let aclSent = 0;
  let hashed = 0;
  let reused = 0;
  const threads = opts.threads ?? Math.max(1, Math.min(availableParallelism(), 8));
  const withAcl = opts.acl !== false;

  let batch: ManifestEntry[] = [];
  let batchBytes = 0;
  const flushHashes = () => {
    if (batch.length === 0) return;
    const files = batch;
    batch = [];
    batchBytes = 0;
    pool.hash(
      files.map((e) => prefix + e.path),
      (digests, errors) => {
        for (let i = 0; i < files.length; i++) {
          const d = digests[i];
          if (d !== null && d !== undefined) files[i]!.contents = d;
          else {
            incomplete.add(files[i]!);
            warn(`${prefix + files[i]!.path}: ${errors[i] ?? 'cannot be read'}`);
          }
        }
      },
    );
  };
  // ACLs come from another process: start it on what the walk found so far.
  const sendAcls = (all: boolean) => {
    while (wantAcl.length - aclSent >= (all ? 1 : ACL_BATCH)) {
      const paths = wantAcl.slice(aclSent, aclSent + ACL_BATCH).map((e) => prefix + e.path);
      aclSent += paths.length;
      aclRuns.push(readAcls(paths).catch((err: Error) => ((aclFailed = true), warn(`ACLs not collected: ${err.message}`), new Map<string, string>())));
    }
  };

  const pool = new TreePool(alg, threads, rules, prefix, flushHashes);
  let xattrRun: Promise<Map<string, Record<string, string>>> | undefined;
  let walking = 0;

  /** Turn one unit's columns into entries; queue what must be hashed. */
  const absorb = (r: WalkResult) => {
    for (const w of r.warnings) warn(w);
    const paths = splitPaths(r);
    const nums = r.nums;
    let link = 0;
    for (let i = 0; i < paths.length; i++) {
      const o = i * NUMS;
      const path = paths[i]!;
      const type = r.types[i] as EntryType;
      const flags = nums[o + N_FLAGS]!;
      const size = nums[o + N_SIZE]!;
      const mtimeMs = nums[o + N_MTIME_MS]!;
      // Made with every property it keeps (shapes.ts): a digest still to compute is '-' until it is known.
      const extra = type === 'F' ? '-' : type === 'L' ? r.dests[link++]! : type === 'B' || type === 'C' ? nums[o + N_RDEV]! : undefined;
      const stat: StatIndex = { dev: nums[o + N_DEV]!, ino: nums[o + N_INO]!, mtimeMs, ctimeMs: nums[o + N_CTIME_MS]! };
      const e = newEntry(path, type, size, nums[o + N_MODE]!, '-', Math.floor(mtimeMs / 1000), nums[o + N_UID]!, nums[o + N_GID]!, extra, stat);
      // An F entry is born with contents '-' (no digest): kept when none is asked for, until hashed otherwise.
      if (type === 'F' && !opts.noContents && (flags & ATTR.contents) !== 0) {
        const prev = previous.get(path);
        const ps = prev?.stat;
        if (ps !== undefined && ps.ino === stat.ino && ps.dev === stat.dev && prev!.size === size && ps.mtimeMs === mtimeMs && ps.ctimeMs === stat.ctimeMs) {
          e.contents = prev!.contents!;
          reused++;
        } else {
          hashed++;
          batch.push(e);
          batchBytes += size;
          if (batch.length >= BATCH_FILES || batchBytes >= BATCH_BYTES) flushHashes();
        }
      }
      if (flags & ATTR.acl && type !== 'L' && withAcl) wantAcl.push(e);
      if (flags & ATTR.xattr) wantXattr.push(e);
      if (flags & INCOMPLETE) incomplete.add(e);
      entries.push(e);
    }
    for (const u of r.more) walkUnit(u);
    if (--walking === 0) {
      // The walk is over: the last partial batches, and the metadata of everything found.
      flushHashes();
      sendAcls(true);
      if (wantXattr.length > 0) {
        xattrRun = readXattrs(wantXattr.map((e) => prefix + e.path), alg).catch(
          (err: Error) => ((xattrFailed = true), warn(`extended attributes not collected: ${err.message}`), new Map<string, Record<string, string>>()),
        );
      }
    } else sendAcls(false);
  };
  const walkUnit = (u: WalkUnit) => {
    walking++;
    pool.walk(u, absorb);
  };

  try {
    // The starting points are listed here, in one unit, so the end of the walk is one count reaching zero.
    const start = new WalkSink(prefix);
    walking++;
    if (opts.files !== undefined) {
      for (const f of opts.files) {
        const comps = splitComponents(f);
        const path = '/' + comps.join('/');
        const escape = escapeOf(prefix, comps);
        if (escape !== undefined) {
          start.warnings.push(`${prefix + path}: ${escape}; not listed`);
          continue;
        }
        const st = lstatSync(toFsPath(prefix + path), { throwIfNoEntry: false });
        if (st === undefined) {
          start.warnings.push(`${prefix + path}: No such file or directory`);
          continue;
        }
        const type = typeOf(st.mode);
        if (type === undefined) start.warnings.push(`${prefix + path}: unsupported file type, ignored`);
        else start.record(path, st, type, rules.rules[rules.rules.length - 1]!.flags);
      }
    } else {
      for (const root of walkRoots(rules)) startWalk(rules, prefix, root, start);
    }
    absorb(start.result());
    await pool.drain();
  } finally {
    await pool.close();
  }
  const [acls, xattrs] = await Promise.all([Promise.all(aclRuns), xattrRun]);
  // getfacl -s lists only the few files with an extended ACL: look those up, not every entry.
  if (acls.some((m) => m.size > 0)) {
    const byPath = new Map(wantAcl.map((e) => [prefix + e.path, e]));
    for (const m of acls) {
      for (const [path, acl] of m) {
        const e = byPath.get(path);
        if (e !== undefined) e.acl = acl;
      }
    }
  }
  if (aclFailed) for (const e of wantAcl) incomplete.add(e);
  if (xattrFailed) for (const e of wantXattr) incomplete.add(e);
  if (xattrs !== undefined) {
    for (const e of wantXattr) {
      const x = xattrs.get(prefix + e.path);
      if (x !== undefined) e.xattrs = x;
    }
  }

  sortEntries(entries);
  const unique = entries.filter((e, i) => i === 0 || e.path !== entries[i - 1]!.path);
  const header = makeHeader(alg, prefix === '' ? '/' : prefix);
  if (wantXattr.length > 0) header.xattrs = true;
  return { manifest: { header, entries: unique }, status: warnings.length > 0 ? 1 : 0, warnings, hashed, reused, incomplete };
}

/** Record a walk's starting point and queue it as the first unit of its walk. */
function startWalk(rules: Rules, prefix: string, start: string, sink: WalkSink): void {
  const comps = splitComponents(start);
  let ctx = rootContext(rules);
  for (const c of comps) ctx = enter(ctx, c);
  const full = prefix + (start === '/' ? '' : start) || '/';
  const escape = escapeOf(prefix, comps);
  if (escape !== undefined) {
    sink.warnings.push(`${full}: subtree ${escape}; not walked`);
    return;
  }
  const st = lstatSync(toFsPath(full), { throwIfNoEntry: false });
  if (st === undefined) {
    sink.warnings.push(`${full}: subtree does not exist, ignored`);
    return;
  }
  const type = typeOf(st.mode);
  if (type === undefined) return;
  const rule = decide(ctx, comps, type);
  if (rule !== undefined && rule.flags !== 0) sink.record(start, st, type, rule.flags);
  if (type !== 'D' || !shouldDescend(ctx, comps)) return;
  sink.more.push({ path: start === '/' ? '' : start, comps, ctx: toUnitContext(ctx), dev: st.dev, split: SPLIT_LEVELS });
}
