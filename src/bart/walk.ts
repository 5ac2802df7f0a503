/**
 * The tree walk, cut into units a worker thread can take on its own: a unit
 * is one directory whose entries the worker lists, and (below a split depth)
 * everything under it. Near the walk's start a unit lists only its own
 * entries and hands its subdirectories back as new units, so two workers
 * get work of comparable size without knowing the tree in advance.
 *
 * Results travel as columns (one string of paths, one of type letters, one
 * Float64Array of numbers), not as one object per entry: cheap to post, and
 * no garbage in the receiving thread until it builds the entries it keeps.
 */
import { lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { decide, enter, shouldDescend, walkRoots, type Rule, type Rules, type WalkContext } from './rules.js';
import { toFsPath, type EntryType } from './types.js';
import { messageOf } from '../errors.js';

/** Numbers per entry in WalkResult.nums, in this order. */
export const NUMS = 10;
export const N_SIZE = 0;
export const N_MODE = 1;
export const N_MTIME_MS = 2;
export const N_UID = 3;
export const N_GID = 4;
export const N_DEV = 5;
export const N_INO = 6;
export const N_CTIME_MS = 7;
export const N_RDEV = 8;
export const N_FLAGS = 9;
/** A bit of N_FLAGS above the rule flags: the entry could not be read completely (its link target). */
export const INCOMPLETE = 1 << 20;

/** A WalkContext with rules named by their index, so it can be posted to a worker. */
export interface UnitContext {
  depth: number;
  active: number[];
  pending: number[];
}

export interface WalkUnit {
  /** The directory, relative to the root, as a byte string ('' for the root itself). */
  path: string;
  comps: string[];
  ctx: UnitContext;
  /** st_dev of the walk's start: directories on other filesystems are listed, not entered. */
  dev: number;
  /** Levels still to hand back as units instead of walking them here. */
  split: number;
}

export interface WalkResult {
  /** Paths of the recorded entries joined by NUL (which no name contains). */
  paths: string;
  /** One type letter per entry. */
  types: string;
  nums: Float64Array;
  /** Link targets of the L entries, in order ('-' when unreadable). */
  dests: string[];
  warnings: string[];
  /** Subdirectories to walk as units of their own. */
  more: WalkUnit[];
}

const S_IFMT = 0o170000;

export function typeOf(mode: number): EntryType | undefined {
  switch (mode & S_IFMT) {
    case 0o100000:
      return 'F';
    case 0o040000:
      return 'D';
    case 0o120000:
      return 'L';
    case 0o010000:
      return 'P';
    case 0o140000:
      return 'S';
    case 0o060000:
      return 'B';
    case 0o020000:
      return 'C';
    default:
      return undefined;
  }
}

export function toUnitContext(ctx: WalkContext): UnitContext {
  return { depth: ctx.depth, active: ctx.active.map((r) => r.index), pending: ctx.pending.map((r) => r.index) };
}

export function fromUnitContext(rules: Rules, u: UnitContext): WalkContext {
  const byIndex = (i: number): Rule => rules.rules[i]!;
  return { depth: u.depth, active: u.active.map(byIndex), pending: u.pending.map(byIndex) };
}

/** Collects entries into columns. */
export class WalkSink {
  private paths: string[] = [];
  private types = '';
  private nums = new Float64Array(NUMS * 256);
  private count = 0;
  private dests: string[] = [];
  readonly warnings: string[] = [];
  readonly more: WalkUnit[] = [];

  constructor(private readonly prefix: string) {}

  /** Entries recorded so far. */
  get size(): number {
    return this.count;
  }

  record(path: string, st: Stats, type: EntryType, flags: number): void {
    if (this.count * NUMS === this.nums.length) {
      const grown = new Float64Array(this.nums.length * 2);
      grown.set(this.nums);
      this.nums = grown;
    }
    const o = this.count++ * NUMS;
    const n = this.nums;
    n[o + N_SIZE] = st.size;
    n[o + N_MODE] = st.mode;
    n[o + N_MTIME_MS] = st.mtimeMs;
    n[o + N_UID] = st.uid;
    n[o + N_GID] = st.gid;
    n[o + N_DEV] = st.dev;
    n[o + N_INO] = st.ino;
    n[o + N_CTIME_MS] = st.ctimeMs;
    n[o + N_RDEV] = st.rdev;
    n[o + N_FLAGS] = flags;
    this.paths.push(path);
    this.types += type;
    if (type === 'L') {
      try {
        this.dests.push(readlinkSync(toFsPath(this.prefix + path), { encoding: 'latin1' }));
      } catch (err) {
        n[o + N_FLAGS] = flags | INCOMPLETE;
        this.dests.push('-');
        this.warnings.push(`${this.prefix + path}: ${messageOf(err)}`);
      }
    }
  }

  result(): WalkResult {
    return { paths: this.paths.join('\0'), types: this.types, nums: this.nums.slice(0, this.count * NUMS), dests: this.dests, warnings: this.warnings, more: this.more };
  }
}

/** Split a WalkResult's paths back into strings. */
export function splitPaths(r: WalkResult): string[] {
  return r.types.length === 0 ? [] : r.paths.split('\0');
}

/**
 * Walk one unit: list its directory, record what the rules select, and go
 * down (or hand subdirectories back while `split` > 0). One readdir per
 * directory, one lstat per entry, one readlink per recorded symlink.
 *
 * With `handBackAfter`, once the sink holds that many entries the
 * directories not yet listed go back in `sink.more` as units of their own.
 * The split depth alone cannot size units: a tree with all its files below
 * one directory at that depth (half a million below /usr/share) was one
 * unit, walked by one thread while the other waited, and its entries came
 * back all at once, so hashing began only when the walk had ended. A
 * caller that does not walk `more` itself passes nothing.
 */
export function walkUnit(rules: Rules, prefix: string, unit: WalkUnit, sink: WalkSink, handBackAfter = Infinity): void {
  interface Pending {
    path: string;
    comps: string[];
    ctx: WalkContext;
    split: number;
    dev: number;
  }
  const stack: Pending[] = [{ path: unit.path, comps: unit.comps, ctx: fromUnitContext(rules, unit.ctx), split: unit.split, dev: unit.dev }];
  const starts = nestedStarts(rules);
  // At least the unit's own directory is listed, whatever the limit: a unit handed back as it came would come back forever.
  let listed = 0;
  while (stack.length > 0) {
    if (listed > 0 && sink.size >= handBackAfter) {
      for (const d of stack) sink.more.push({ path: d.path, comps: d.comps, ctx: toUnitContext(d.ctx), dev: d.dev, split: d.split });
      return;
    }
    const dir = stack.pop()!;
    listed++;
    const dirPath = prefix + dir.path || '/';
    let names: string[];
    try {
      names = readdirSync(toFsPath(dirPath), { encoding: 'latin1' });
    } catch (err) {
      sink.warnings.push(`${dirPath}: ${messageOf(err)}`);
      continue;
    }
    const ctx = dir.ctx;
    const needComps = ctx.pending.length > 0 || ctx.active.some((r) => r.modifiers.length > 0);
    for (const name of names) {
      const path = dir.path + '/' + name;
      const st = lstatSync(toFsPath(prefix + path), { throwIfNoEntry: false });
      if (st === undefined) {
        sink.warnings.push(`${prefix + path}: vanished during the walk`);
        continue;
      }
      const type = typeOf(st.mode);
      if (type === undefined) {
        sink.warnings.push(`${prefix + path}: unsupported file type, ignored`);
        continue;
      }
      const cctx = ctx.pending.length > 0 ? enter(ctx, name) : ctx;
      const ccomps = needComps ? [...dir.comps, name] : dir.comps;
      const rule = decide(cctx, ccomps, type);
      if (rule !== undefined && rule.flags !== 0) sink.record(path, st, type, rule.flags);
      // Another filesystem is entered only where the rules start a subtree of their own (a shared path on a child dataset).
      if (type === 'D' && (st.dev === dir.dev || starts.has(path)) && shouldDescend(cctx, ccomps)) {
        const comps = needComps ? ccomps : [...dir.comps, name];
        if (dir.split > 0) sink.more.push({ path, comps, ctx: toUnitContext(cctx), dev: st.dev, split: dir.split - 1 });
        else stack.push({ path, comps, ctx: cctx, split: 0, dev: st.dev });
      }
    }
  }
}

const nestedStartsOf = new WeakMap<Rules, ReadonlySet<string>>();

/**
 * The subtrees the rules name below another one (`/var/spool` below `/`):
 * walked as part of it, and entered even when another filesystem is
 * mounted there, since the rules ask for it by name.
 */
function nestedStarts(rules: Rules): ReadonlySet<string> {
  let found = nestedStartsOf.get(rules);
  if (found === undefined) {
    const roots = new Set(walkRoots(rules));
    found = new Set(rules.rules.filter((r) => r.flags !== 0 && !roots.has(r.literalPrefix) && r.literalPrefix !== '/').map((r) => r.literalPrefix));
    nestedStartsOf.set(rules, found);
  }
  return found;
}
