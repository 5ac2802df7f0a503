/**
 * A manifest made from another one of (a snapshot of) the same tree by
 * reading again only the paths that may have changed since: what a
 * filesystem lists itself (btrfs send, zfs diff) replaces a walk of the
 * whole tree. Every entry read again is made as createManifest makes it
 * (the rules decide what is listed and with which attributes, the walk stays
 * on the filesystem it starts on, the same hash, digests reused from a
 * previous manifest when inode, size, mtime and ctime are unchanged); every
 * other entry is the base's, unchanged. So the result equals a full walk as
 * long as the paths given cover every path whose entry differs from the
 * base's, which the caller answers for.
 *
 * Hard links: a change of an inode shows up in all its names, while a
 * filesystem's listing may name only one. Every other entry of the base with
 * the inode number of an entry read again is read again too.
 */
import './shapes.js';
import { lstatSync, statSync, type Stats } from 'node:fs';
import { resolve } from 'node:path';
import { SysprimeError, errnoOf, messageOf } from '../errors.js';
import { encodeName } from './escape.js';
import { makeHeader } from './format.js';
import type { EntryLookup } from './lookup.js';
import { CHUNK, hashFile, loadHashers } from './hash.js';
import { readAcls, readXattrs } from './metadata.js';
import { ATTR, decide, enter, rootContext, ruleFor, shouldDescend, splitComponents, walkRoots, type Rules, type WalkContext } from './rules.js';
import { toFsPath, type EntryType, type HashAlgorithm, type Manifest, type ManifestEntry } from './types.js';
import {
  NUMS, N_CTIME_MS, N_DEV, N_FLAGS, N_GID, N_INO, N_MODE, N_MTIME_MS, N_RDEV, N_SIZE, N_UID,
  WalkSink, splitPaths, toUnitContext, typeOf, walkUnit, type WalkResult,
} from './walk.js';

export interface PatchOptions {
  /** The manifest the result starts from: made with the same rules and hash. */
  base: Manifest;
  /** The tree to read from (the manifest's root). */
  root: string;
  rules: Rules;
  /** Default xxh64; must be the base's. */
  hash?: HashAlgorithm;
  /** Entries to read again, each by itself. */
  paths?: Iterable<string>;
  /** Entries to read again with everything below them; the base's entries below them are dropped. */
  subtrees?: Iterable<string>;
  /** A manifest of this tree with its side index (found by path), for digests that need not be computed again. */
  previous?: EntryLookup;
  /** Collect ACLs where rules check `acl` (default true). */
  acl?: boolean;
  /**
   * The base was made on another mount of the same inodes (a snapshot): kept
   * entries recorded on device `from` are recorded on `to`, so an
   * incremental walk of this tree can trust their digests later.
   */
  keptDevice?: { from: number; to: number };
  onWarning?: (message: string) => void;
}

export interface PatchResult {
  manifest: Manifest;
  /** 0: clean; 1: some entries read again could not be read completely. */
  status: 0 | 1;
  warnings: string[];
  hashed: number;
  reused: number;
  /** Entries read again (found on disk and listed). */
  reread: number;
}

/** '/a/b' form of a path below the root ('/' for the root). */
function normalise(p: string): string {
  return '/' + splitComponents(p).join('/');
}

function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

function isAtOrBelow(p: string, top: string): boolean {
  return top === '/' || p === top || p.startsWith(`${top}/`);
}

/** The root as a byte string without a trailing slash ('' for '/'), as createManifest takes it. */
function rootPrefix(root: string): string {
  const abs = resolve(root);
  let st: Stats;
  try {
    st = statSync(abs);
  } catch (err) {
    throw new SysprimeError('USAGE', `${root}: ${errnoOf(err) === 'ENOENT' ? 'no such directory' : messageOf(err)}`, { hint: 'give the directory the manifest describes' });
  }
  if (!st.isDirectory()) throw new SysprimeError('USAGE', `${root} is not a directory`, { hint: 'give the directory the manifest describes' });
  const bytes = Buffer.from(abs, 'utf8').toString('latin1');
  return bytes === '/' ? '' : bytes;
}

/** A directory the full walk goes into: its rule context and the device the walk stays on. */
interface Descent {
  ctx: WalkContext;
  comps: string[];
  dev: number;
}

export async function patchManifest(opts: PatchOptions): Promise<PatchResult> {
  const alg = opts.hash ?? 'xxh64';
  if (opts.base.header.hash !== alg) throw new SysprimeError('USAGE', `the base manifest is hashed with ${opts.base.header.hash}, not ${alg}`);
  const prefix = rootPrefix(opts.root);
  const rules = opts.rules;
  const warnings: string[] = [];
  const warn = (msg: string) => {
    warnings.push(msg);
    opts.onWarning?.(msg);
  };
  await loadHashers();

  // What to read again: subtrees inside other subtrees, and single paths inside subtrees, are covered already.
  const subtrees = [...new Set([...(opts.subtrees ?? [])].map(normalise))].sort();
  const tops: string[] = [];
  const inTops = (p: string): boolean => {
    for (let q = p; ; q = parentOf(q)) {
      if (topSet.has(q)) return true;
      if (q === '/') return false;
    }
  };
  const topSet = new Set<string>();
  for (const s of subtrees) {
    if (inTops(s)) continue;
    tops.push(s);
    topSet.add(s);
  }
  const singles = new Set<string>();
  for (const p of opts.paths ?? []) {
    const n = normalise(p);
    if (!inTops(n)) singles.add(n);
  }

  // Where the full walk starts, and which directories it goes into (decided as walk.ts decides).
  const starts = walkRoots(rules);
  const descents = new Map<string, Descent | null>();
  const lstat = (p: string): Stats | undefined => lstatSync(toFsPath(prefix + (p === '/' ? '' : p) || '/'), { throwIfNoEntry: false });
  const startOf = (p: string): string | undefined => starts.find((s) => isAtOrBelow(p, s));

  /** The context of `path` as the walk meets it, and whether the walk records and enters it. */
  const locate = (path: string): { st: Stats; type: EntryType; ctx: WalkContext; comps: string[]; dev: number } | null => {
    const start = startOf(path);
    if (start === undefined) return null;
    const st = lstat(path);
    if (st === undefined) return null;
    const type = typeOf(st.mode);
    if (type === undefined) {
      warn(`${prefix + path}: unsupported file type, ignored`);
      return null;
    }
    const comps = splitComponents(path);
    if (path === start) {
      let ctx = rootContext(rules);
      for (const c of comps) ctx = enter(ctx, c);
      return { st, type, ctx, comps, dev: st.dev };
    }
    const parent = descend(parentOf(path));
    if (parent === null) return null;
    const name = comps[comps.length - 1]!;
    const ctx = parent.ctx.pending.length > 0 ? enter(parent.ctx, name) : parent.ctx;
    return { st, type, ctx, comps, dev: parent.dev };
  };
  /** Whether the walk goes into directory `path`, and with what. */
  const descend = (path: string): Descent | null => {
    const known = descents.get(path);
    if (known !== undefined) return known;
    const here = locate(path);
    let d: Descent | null = null;
    if (here !== null && here.type === 'D' && (path === startOf(path) || here.st.dev === here.dev) && shouldDescend(here.ctx, here.comps)) {
      d = { ctx: here.ctx, comps: here.comps, dev: here.dev };
    }
    descents.set(path, d);
    return d;
  };

  const sink = new WalkSink(prefix);
  const readOne = (path: string, below: boolean): void => {
    const here = locate(path);
    if (here === null) return;
    const rule = decide(here.ctx, here.comps, here.type);
    if (rule !== undefined && rule.flags !== 0) sink.record(path, here.st, here.type, rule.flags);
    if (!below) return;
    const d = descend(path);
    if (d !== null) walkUnit(rules, prefix, { path: path === '/' ? '' : path, comps: d.comps, ctx: toUnitContext(d.ctx), dev: d.dev, split: 0 }, sink);
  };
  for (const t of tops) readOne(t, true);
  for (const p of singles) readOne(p, false);
  let fresh = entriesOf(sink.result(), warn);

  // The base in its manifest order, with each entry's sort key: everything below works on
  // positions in it, so the cost follows the number of changes, not the size of the tree,
  // apart from single linear passes.
  const { entries: baseEntries, keys: baseKeys } = sortedWithKeys(opts.base.entries);
  const total = baseEntries.length;
  // The base's entries read again (or gone), marked by position. A subtree is a contiguous range
  // of keys: key(top) + '/' is a prefix, as a name's key is its components' keys joined by '/'.
  const covers = new Uint8Array(total);
  const baseAt = (key: string): number => lowerBound(total, (i) => baseKeys[i]!, key);
  const cover = (path: string): void => {
    const at = baseAt(encodeName(path));
    if (at < total && baseEntries[at]!.path === path) covers[at] = 1;
  };
  for (const t of tops) {
    if (t === '/') {
      covers.fill(1);
      break;
    }
    const k = encodeName(t);
    cover(t);
    covers.fill(1, baseAt(`${k}/`), baseAt(`${k}0`));
  }
  for (const p of singles) cover(p);

  // Other names of the inodes read again.
  for (const e of fresh) cover(e.path);
  const covered = (i: number): boolean => covers[i] === 1;
  let wave: Fresh[] = fresh;
  // The base's entries of everything read again: their inodes may have other names too.
  const inos = new Set<number>();
  for (let i = 0; i < total; i++) {
    const e = baseEntries[i]!;
    if (e.type !== 'D' && e.stat !== undefined && covered(i)) inos.add(e.stat.ino);
  }
  // A changed inode may be listed under a name the rules leave out (btrfs send names an inode once:
  // a store object below /var/lib/sysprime, say) while its other names are checked (its /usr paths).
  for (const p of singles) {
    const st = lstat(p);
    if (st !== undefined && st.isFile() && st.nlink > 1) inos.add(st.ino);
  }
  for (;;) {
    for (const e of wave) if (e.type !== 'D' && e.stat !== undefined) inos.add(e.stat.ino);
    if (inos.size === 0) break;
    const more: string[] = [];
    for (let i = 0; i < total; i++) {
      const e = baseEntries[i]!;
      if (e.type !== 'D' && e.stat !== undefined && inos.has(e.stat.ino) && !covered(i)) more.push(e.path);
    }
    inos.clear();
    if (more.length === 0) break;
    const again = new WalkSink(prefix);
    for (const p of more) {
      cover(p);
      const here = locate(p);
      if (here === null) continue;
      const rule = decide(here.ctx, here.comps, here.type);
      if (rule !== undefined && rule.flags !== 0) again.record(p, here.st, here.type, rule.flags);
    }
    wave = entriesOf(again.result(), warn);
    for (const e of wave) cover(e.path);
    fresh = fresh.concat(wave);
  }

  // Contents, ACLs and extended attributes of what was read again, as createManifest collects them.
  // Digests to trust: the previous manifest's, and the base's (a file whose inode, size and times
  // are those of the snapshot is the snapshot's file: the fast path often re-reads a file only
  // because its atime moved). Both are found by binary search in their sorted entries.
  const remap = opts.keptDevice;
  const hashable = (e: ManifestEntry | undefined): e is ManifestEntry => e !== undefined && e.type === 'F' && e.stat !== undefined && e.contents !== undefined && e.contents !== '-';
  const previous = opts.previous !== undefined && opts.previous.header.hash === alg ? opts.previous : undefined;
  const inPrevious = (path: string, key: string): ManifestEntry | undefined => previous?.find(path, key);
  const inBase = (path: string, key: string): ManifestEntry | undefined => {
    const e = baseEntries[baseAt(key)];
    return e !== undefined && e.path === path ? e : undefined;
  };
  const sameFile = (p: ManifestEntry | undefined, e: ManifestEntry, mapDev: boolean): p is ManifestEntry => {
    if (!hashable(p)) return false;
    const ps = p.stat!;
    const st = e.stat!;
    const dev = mapDev && remap !== undefined && ps.dev === remap.from ? remap.to : ps.dev;
    return ps.ino === st.ino && dev === st.dev && p.size === e.size && ps.mtimeMs === st.mtimeMs && ps.ctimeMs === st.ctimeMs;
  };
  // What was read again, in manifest order, each path once.
  const sortedFresh = sortedWithKeys(fresh);
  const freshEntries: ManifestEntry[] = [];
  const freshKeys: string[] = [];
  for (let i = 0; i < sortedFresh.entries.length; i++) {
    if (i > 0 && sortedFresh.keys[i] === sortedFresh.keys[i - 1]) continue;
    freshEntries.push(sortedFresh.entries[i]!);
    freshKeys.push(sortedFresh.keys[i]!);
  }
  let hashed = 0;
  let reused = 0;
  const buf = Buffer.allocUnsafe(CHUNK);
  const wantAcl: ManifestEntry[] = [];
  const wantXattr: ManifestEntry[] = [];
  for (let i = 0; i < freshEntries.length; i++) {
    const f = freshEntries[i] as Fresh;
    const flags = f.flags;
    const e: ManifestEntry = f;
    delete (f as Partial<Fresh>).flags;
    if (e.type === 'F') {
      if ((flags & ATTR.contents) === 0) e.contents = '-';
      else {
        const prev = inPrevious(e.path, freshKeys[i]!);
        const kept = inBase(e.path, freshKeys[i]!);
        if (sameFile(prev, e, false)) {
          e.contents = prev.contents!;
          reused++;
        } else if (sameFile(kept, e, true)) {
          e.contents = kept.contents!;
          reused++;
        } else {
          hashed++;
          try {
            e.contents = hashFile(alg, toFsPath(prefix + e.path), buf);
          } catch (err) {
            e.contents = '-';
            warn(`${prefix + e.path}: ${messageOf(err)}`);
          }
        }
      }
    }
    if (flags & ATTR.acl && e.type !== 'L' && opts.acl !== false) wantAcl.push(e);
    if (flags & ATTR.xattr) wantXattr.push(e);
  }
  if (wantAcl.length > 0) {
    const acls = await readAcls(wantAcl.map((e) => prefix + e.path)).catch((err: Error) => (warn(`ACLs not collected: ${err.message}`), new Map<string, string>()));
    for (const e of wantAcl) e.acl = acls.get(prefix + e.path) ?? '-';
  }
  if (wantXattr.length > 0) {
    const xattrs = await readXattrs(wantXattr.map((e) => prefix + e.path), alg).catch(
      (err: Error) => (warn(`extended attributes not collected: ${err.message}`), new Map<string, Record<string, string>>()),
    );
    for (const e of wantXattr) {
      const x = xattrs.get(prefix + e.path);
      if (x !== undefined) e.xattrs = x;
    }
  }

  // The result: the base's entries for everything not read again merged with what was.
  const entries: ManifestEntry[] = [];
  let xattrs = wantXattr.length > 0;
  const keep = (i: number): void => {
    const e = baseEntries[i]!;
    if (!xattrs && opts.base.header.xattrs === true) xattrs = ((ruleFor(rules, e.path, e.type)?.flags ?? 0) & ATTR.xattr) !== 0;
    entries.push(remap !== undefined && e.stat !== undefined && e.stat.dev === remap.from ? { ...e, stat: { ...e.stat, dev: remap.to } } : e);
  };
  let j = 0;
  for (let i = 0; i < total; i++) {
    if (covered(i)) continue;
    const k = baseKeys[i]!;
    while (j < freshEntries.length && freshKeys[j]! < k) entries.push(freshEntries[j++]!);
    if (j < freshEntries.length && freshKeys[j] === k) continue; // read again: the fresh entry stands
    keep(i);
  }
  while (j < freshEntries.length) entries.push(freshEntries[j++]!);

  const header = makeHeader(alg, prefix === '' ? '/' : prefix);
  // As createManifest decides `! XATTRS`: some entry is listed by a rule that checks xattr (a
  // base made with these rules has the mark if any of its entries is).
  if (xattrs) header.xattrs = true;
  return { manifest: { header, entries }, status: warnings.length > 0 ? 1 : 0, warnings, hashed, reused, reread: freshEntries.length };
}

/** Entries in manifest order with their sort keys; the same array when it is in order already. */
function sortedWithKeys(list: readonly ManifestEntry[]): { entries: readonly ManifestEntry[]; keys: string[] } {
  const keys = list.map((e) => encodeName(e.path));
  let ordered = true;
  for (let i = 1; i < keys.length && ordered; i++) ordered = keys[i - 1]! < keys[i]!;
  if (ordered) return { entries: list, keys };
  const order = Array.from(keys.keys()).sort((a, b) => (keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : a - b));
  return { entries: order.map((i) => list[i]!), keys: order.map((i) => keys[i]!) };
}

/** The first of `count` sorted positions whose key (`keyAt`) is not below `key`. */
function lowerBound(count: number, keyAt: (i: number) => string, key: string): number {
  let lo = 0;
  let hi = count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keyAt(mid) < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** An entry just read, with the flags of its rule until its attributes are collected. */
type Fresh = ManifestEntry & { flags: number };

/** Entries from a walk's columns, as createManifest builds them (contents still to collect). */
function entriesOf(r: WalkResult, warn: (m: string) => void): Fresh[] {
  for (const w of r.warnings) warn(w);
  const paths = splitPaths(r);
  const nums = r.nums;
  const out: Fresh[] = [];
  let link = 0;
  for (let i = 0; i < paths.length; i++) {
    const o = i * NUMS;
    const type = r.types[i] as EntryType;
    const mtimeMs = nums[o + N_MTIME_MS]!;
    const e: Fresh = {
      path: paths[i]!,
      type,
      size: nums[o + N_SIZE]!,
      mode: nums[o + N_MODE]!,
      acl: '-',
      mtime: Math.floor(mtimeMs / 1000),
      uid: nums[o + N_UID]!,
      gid: nums[o + N_GID]!,
      stat: { dev: nums[o + N_DEV]!, ino: nums[o + N_INO]!, mtimeMs, ctimeMs: nums[o + N_CTIME_MS]! },
      flags: nums[o + N_FLAGS]!,
    };
    if (type === 'L') e.dest = r.dests[link++]!;
    else if (type === 'B' || type === 'C') e.devnode = nums[o + N_RDEV]!;
    out.push(e);
  }
  return out;
}
