/**
 * The reintegration plan: for every path the admin changed on the running
 * environment, one action and the reason for it. Pure: three manifests in,
 * a plain serialisable object out (sorted by path, byte order), so the same
 * inputs always give the same plan and it can be stored and printed.
 *
 * base = Sys_N (pristine), ours = Sys_N' (what the admin has now),
 * theirs = Sys_N+1 (the updated pristine). Paths the admin did not change
 * need no action: the target is a clone of theirs. The rule that beats all
 * others is that nothing the admin wrote is lost; see docs/reintegration.md.
 */
import { SysprimeError } from '../errors.js';
import { ATTR, ruleFor, type Rules } from '../bart/rules.js';
import { encodeName } from '../bart/escape.js';
import { HASH_ALGORITHMS, type EntryType, type HashAlgorithm, type Manifest, type ManifestEntry } from '../bart/types.js';
import { accountKindOf } from './accounts.js';
import { isBelowAny } from '../environments/shared.js';
import { secretPathReason } from '../drift/content.js';

export type ActionKind =
  /** Put the admin's object in place (content, type, link target, metadata). */
  | 'copy'
  /** Three-way merge of text; a binary file or overlapping edits become a conflict when applied. */
  | 'merge'
  | 'delete'
  /** Set mode, owner, ACL, xattrs on the object already in the target. */
  | 'metadata'
  /** The target already holds what it should: nothing to write. */
  | 'keep'
  /** Put the update's object back (the admin reverted a change made before staging). */
  | 'restore'
  /** Merge an account database by entry. */
  | 'accounts'
  /** The admin's object stays in place, the update's is saved beside it as `<name>.sysprime-new`. */
  | 'conflict'
  /** Not carried over. */
  | 'skip';

export type Reason =
  | 'admin-changed'
  | 'admin-added'
  | 'admin-retyped'
  | 'admin-kept-update-removed'
  | 'restored-with-parent'
  | 'both-changed'
  | 'both-added-equal'
  | 'same-change'
  | 'same-content'
  | 'admin-deleted'
  | 'deleted-update-changed'
  | 'directory-kept'
  | 'metadata-changed'
  | 'accounts'
  | 'both-added-differ'
  | 'type-conflict'
  | 'inside-sidelined'
  | 'sysprime-sidelined'
  /** Users' data under a shared path inside the root: the running system's version, whatever the update did. */
  | 'shared-data'
  | 'socket'
  | 'admin-reverted';

/** Which side's extended attributes (and ACL) the written object carries. */
export type XattrPlan = 'ours' | 'theirs' | { ours: string[] };

export interface MetaPlan {
  /** Permission bits (07777): the type comes from the object. */
  mode: number;
  uid: number;
  gid: number;
  acl: 'ours' | 'theirs';
  xattrs: XattrPlan;
}

export interface PlanAction {
  /** Byte string, as in manifests. */
  path: string;
  action: ActionKind;
  reason: Reason;
  /** One sentence for people. */
  detail: string;
  base?: ManifestEntry;
  ours?: ManifestEntry;
  theirs?: ManifestEntry;
  /** Metadata the written object must end with. */
  meta?: MetaPlan;
  /** Applied as planned but worth the admin's attention (a deletion kept over an update). */
  notice?: boolean;
}

export interface ReintegrationPlan {
  version: 1;
  hash: HashAlgorithm;
  actions: PlanAction[];
  counts: Partial<Record<ActionKind, number>>;
}

/**
 * The plan as shown to people (`reintegrate --plan --json`): without the
 * content digests of a file drift would hide (`secretPathReason`: not
 * world-readable in some version, below a directory of the plan others
 * cannot enter, or named by `[drift] secret`), since a digest of
 * /etc/shadow lets whoever reads the output test guesses offline.
 */
export function planForReaders(plan: ReintegrationPlan, secret: readonly RegExp[]): ReintegrationPlan {
  const dirs = new Map<string, ManifestEntry>();
  for (const a of plan.actions) for (const e of [a.base, a.ours, a.theirs]) if (e?.type === 'D' && ((dirs.get(a.path)?.mode ?? 0o777) & 0o001) !== 0) dirs.set(a.path, e);
  const strip = (e: ManifestEntry | undefined) => (e === undefined ? undefined : { ...e, contents: undefined });
  return {
    ...plan,
    actions: plan.actions.map((a) =>
      secretPathReason(a.path, [a.base, a.ours, a.theirs], (p) => dirs.get(p), secret) === null ? a : { ...a, base: strip(a.base), ours: strip(a.ours), theirs: strip(a.theirs) },
    ),
  };
}

export interface PlanInput {
  base: Manifest;
  ours: Manifest;
  theirs: Manifest;
  /** The drift rules: paths they leave out are not carried over, attributes they ignore are not replayed. */
  rules?: Rules;
  /**
   * Shared paths inside the root filesystem (manifest spelling): below them
   * the running system's version wins, no merge (environments/shared.ts).
   */
  shared?: readonly string[];
}

/** What counts as a change when no rules are given: everything but times. */
const DEFAULT_FLAGS = ATTR.contents | ATTR.type | ATTR.size | ATTR.mode | ATTR.uid | ATTR.gid | ATTR.acl | ATTR.dest | ATTR.devnode | ATTR.xattr;
const CHANGE_BITS = DEFAULT_FLAGS;

export const PERMS = 0o7777;

interface Sides {
  b: ManifestEntry | undefined;
  o: ManifestEntry | undefined;
  t: ManifestEntry | undefined;
}

function contentEq(a: ManifestEntry, b: ManifestEntry, flags: number): boolean {
  if (a.type !== b.type) return false;
  switch (a.type) {
    case 'F':
      if (!(flags & (ATTR.contents | ATTR.size))) return true;
      if (a.size !== b.size && flags & ATTR.size) return false;
      if (!(flags & ATTR.contents)) return true;
      // An unreadable file has no digest: only trust equal sizes and digests.
      return a.contents !== undefined && a.contents !== '-' && a.contents === b.contents && a.size === b.size;
    case 'L':
      return !(flags & ATTR.dest) || a.dest === b.dest;
    case 'B':
    case 'C':
      return !(flags & ATTR.devnode) || a.devnode === b.devnode;
    default:
      return true;
  }
}

type MetaAttr = 'mode' | 'uid' | 'gid' | 'acl' | 'xattr';

function xattrsEq(a: ManifestEntry, b: ManifestEntry): boolean {
  // Not collected on either side: nothing to compare.
  if (a.xattrs === undefined && b.xattrs === undefined) return true;
  const x = a.xattrs ?? {};
  const y = b.xattrs ?? {};
  const keys = new Set([...Object.keys(x), ...Object.keys(y)]);
  for (const k of keys) if (x[k] !== y[k]) return false;
  return true;
}

function metaDiff(a: ManifestEntry, b: ManifestEntry, flags: number): MetaAttr[] {
  const out: MetaAttr[] = [];
  if (flags & ATTR.mode && (a.mode & PERMS) !== (b.mode & PERMS)) out.push('mode');
  if (flags & ATTR.uid && a.uid !== b.uid) out.push('uid');
  if (flags & ATTR.gid && a.gid !== b.gid) out.push('gid');
  if (flags & ATTR.acl && a.acl !== b.acl) out.push('acl');
  if (flags & ATTR.xattr && !xattrsEq(a, b)) out.push('xattr');
  return out;
}

function entryEq(a: ManifestEntry | undefined, b: ManifestEntry | undefined, flags: number): boolean {
  if (a === undefined || b === undefined) return a === b;
  return contentEq(a, b, flags) && metaDiff(a, b, flags).length === 0;
}

function oursMeta(o: ManifestEntry): MetaPlan {
  return { mode: o.mode & PERMS, uid: o.uid, gid: o.gid, acl: 'ours', xattrs: 'ours' };
}

/**
 * Attribute by attribute: the admin's value where the admin changed it from
 * base, the update's elsewhere. Without a base of the same type, all the
 * admin's.
 */
function mergedMeta(b: ManifestEntry | undefined, o: ManifestEntry, t: ManifestEntry, flags: number): { meta: MetaPlan; clashes: MetaAttr[] } {
  if (b === undefined || b.type !== o.type || t.type !== o.type) return { meta: oursMeta(o), clashes: [] };
  const changedByAdmin = new Set(metaDiff(b, o, flags));
  const changedByUpdate = new Set(metaDiff(b, t, flags));
  const pick = <K extends 'uid' | 'gid'>(k: K): number => (changedByAdmin.has(k) ? o[k] : t[k]);
  let xattrs: XattrPlan = 'theirs';
  if (changedByAdmin.has('xattr')) {
    const x = b.xattrs ?? {};
    const y = o.xattrs ?? {};
    const names = [...new Set([...Object.keys(x), ...Object.keys(y)])].filter((n) => x[n] !== y[n]).sort();
    xattrs = { ours: names };
  }
  const clashes = [...changedByAdmin].filter((a) => changedByUpdate.has(a) && metaDiff(o, t, flags).includes(a));
  return {
    meta: {
      mode: changedByAdmin.has('mode') ? o.mode & PERMS : t.mode & PERMS,
      uid: pick('uid'),
      gid: pick('gid'),
      acl: changedByAdmin.has('acl') ? 'ours' : 'theirs',
      xattrs,
    },
    clashes,
  };
}

const TYPE_NAMES: Record<EntryType, string> = { F: 'file', D: 'directory', L: 'symbolic link', P: 'FIFO', S: 'socket', B: 'block device', C: 'character device', O: 'door' };

function typeName(e: ManifestEntry): string {
  return TYPE_NAMES[e.type];
}

function action(path: string, kind: ActionKind, reason: Reason, detail: string, s: Sides, extra: Partial<PlanAction> = {}): PlanAction {
  const strip = (e: ManifestEntry | undefined): ManifestEntry | undefined => {
    if (e === undefined) return undefined;
    const { stat: _stat, ...rest } = e;
    return rest;
  };
  const a: PlanAction = { path, action: kind, reason, detail };
  const b = strip(s.b);
  const o = strip(s.o);
  const t = strip(s.t);
  if (b) a.base = b;
  if (o) a.ours = o;
  if (t) a.theirs = t;
  return { ...a, ...extra };
}

/**
 * The decision for one path below a shared path inside the root: users'
 * data, so what the running system has now is what the new environment gets
 * (no merge, no `.sysprime-new`). Only a change of type against the update's
 * object keeps both, the running system's in place.
 */
function decideShared(path: string, s: Sides, flags: number): PlanAction | undefined {
  const { o, t } = s;
  if (o === undefined) return t === undefined ? undefined : action(path, 'delete', 'shared-data', 'shared data: deleted on the running system', s);
  if (o.type === 'S') return action(path, 'skip', 'socket', 'sockets belong to running programs and are not carried over', s);
  if (t !== undefined && entryEq(o, t, flags)) return action(path, 'keep', 'shared-data', 'shared data: already the same', s);
  if (t !== undefined && t.type !== o.type) {
    return action(path, 'conflict', 'type-conflict', `shared data: the running system has a ${typeName(o)}, the update a ${typeName(t)}`, s, { meta: oursMeta(o) });
  }
  if (t !== undefined && contentEq(o, t, flags)) return action(path, 'metadata', 'shared-data', "shared data: the running system's metadata", s, { meta: oursMeta(o) });
  return action(path, 'copy', 'shared-data', "shared data: the running system's version", s, { meta: oursMeta(o) });
}

/** The decision for one path the admin changed. */
function decide(path: string, s: Sides, flags: number): PlanAction | undefined {
  const { b, o, t } = s;
  if (o === undefined) {
    if (t === undefined) return undefined; // both removed it
    if (entryEq(b, t, flags)) return action(path, 'delete', 'admin-deleted', 'deleted by the admin', s);
    return action(path, 'delete', 'deleted-update-changed', 'deleted by the admin and changed by the update: the deletion is kept, as dpkg keeps a removed conffile', s, {
      notice: true,
    });
  }
  if (o.type === 'S') return action(path, 'skip', 'socket', 'sockets belong to running programs and are not carried over', s);
  if (t === undefined) {
    if (b === undefined) return action(path, 'copy', 'admin-added', `${typeName(o)} added by the admin`, s, { meta: oursMeta(o) });
    return action(path, 'copy', 'admin-kept-update-removed', 'changed by the admin and removed by the update: the admin\'s version is kept', s, {
      meta: oursMeta(o),
      notice: true,
    });
  }
  if (entryEq(o, t, flags)) {
    return b === undefined
      ? action(path, 'keep', 'both-added-equal', 'added by both, identical', s)
      : action(path, 'keep', 'same-change', 'the admin and the update made the same change', s);
  }
  const account = accountKindOf(path);
  if (account !== undefined && o.type === 'F' && t.type === 'F') {
    return action(path, 'accounts', 'accounts', `${account} database: merged by entry`, s, { meta: mergedMeta(b, o, t, flags).meta });
  }
  const updateLeftAlone = b !== undefined && entryEq(b, t, flags);
  if (b !== undefined && contentEq(b, o, flags)) {
    // Only the admin's metadata changed.
    if (t.type !== o.type) {
      return action(path, 'conflict', 'type-conflict', `the admin changed its metadata, the update made it a ${typeName(t)}`, s, { meta: oursMeta(o) });
    }
    const { meta, clashes } = mergedMeta(b, o, t, flags);
    const detail = clashes.length > 0 ? `metadata changed by the admin (the update also changed ${clashes.join(', ')}: the admin's values are kept)` : 'metadata changed by the admin';
    return action(path, 'metadata', 'metadata-changed', detail, s, { meta, ...(clashes.length > 0 ? { notice: true } : {}) });
  }
  if (t.type === o.type && contentEq(o, t, flags)) {
    const { meta } = mergedMeta(b, o, t, flags);
    return action(path, 'metadata', 'same-content', 'same content in both, metadata replayed', s, { meta });
  }
  if (updateLeftAlone) {
    if (b.type === o.type) {
      const what = o.type === 'L' ? 'link retargeted by the admin' : 'changed by the admin';
      return action(path, 'copy', 'admin-changed', what, s, { meta: mergedMeta(b, o, t, flags).meta });
    }
    return action(path, 'copy', 'admin-retyped', `the admin replaced a ${typeName(b)} by a ${typeName(o)}`, s, { meta: oursMeta(o) });
  }
  // Both changed it.
  if (o.type !== t.type) {
    return action(path, 'conflict', 'type-conflict', `the admin made it a ${typeName(o)}, the update a ${typeName(t)}`, s, { meta: oursMeta(o) });
  }
  if (b === undefined) {
    if (o.type === 'D') return action(path, 'metadata', 'same-content', 'directory added by both, the admin\'s metadata kept', s, { meta: oursMeta(o) });
    return action(path, 'conflict', 'both-added-differ', `added by both, differently`, s, { meta: oursMeta(o) });
  }
  switch (o.type) {
    case 'F':
      if (b.type === 'F') return action(path, 'merge', 'both-changed', 'changed by both: three-way merge', s, { meta: mergedMeta(b, o, t, flags).meta });
      return action(path, 'conflict', 'type-conflict', `both replaced a ${typeName(b)} by different files`, s, { meta: oursMeta(o) });
    case 'D':
      return action(path, 'metadata', 'metadata-changed', 'directory changed by both: the admin\'s metadata kept where the admin changed it', s, {
        meta: mergedMeta(b, o, t, flags).meta,
      });
    case 'L':
      return action(path, 'conflict', 'type-conflict', 'link retargeted by the admin and changed by the update', s, { meta: oursMeta(o) });
    default:
      return action(path, 'conflict', 'type-conflict', `${typeName(o)} changed by both`, s, { meta: oursMeta(o) });
  }
}

/** The first of `count` keys in order (the i-th is `keyAt(i)`) that is not below `key`. */
function lowerBound(count: number, keyAt: (i: number) => string, key: string): number {
  let lo = 0;
  let hi = count;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (keyAt(mid) < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * One manifest's entries in the order a manifest lists them (by encoded
 * name, src/bart/format.ts's sortEntries), one per path, with lookups by
 * binary search. The manifest's own array when it is in that order (as
 * bart writes, reads and patches them), else a sorted copy keeping each
 * path's last entry. The encoded name of a directory followed by `/` is a
 * prefix of exactly the names below it, so what is below is one range.
 */
export class InManifestOrder {
  readonly entries: readonly ManifestEntry[];
  /** encodeName of each entry's path: the path string itself unless it needs quoting. */
  readonly keys: readonly string[];
  readonly keyAt = (i: number): string => this.keys[i]!;

  constructor(m: Manifest) {
    const keys = m.entries.map((e) => encodeName(e.path));
    let ordered = true;
    for (let i = 1; i < keys.length && ordered; i++) ordered = keys[i - 1]! < keys[i]!;
    if (ordered) {
      this.entries = m.entries;
      this.keys = keys;
      return;
    }
    const last = new Map<string, number>();
    keys.forEach((k, i) => last.set(k, i));
    const order = [...last.values()].sort((x, y) => (keys[x]! < keys[y]! ? -1 : 1));
    this.entries = order.map((i) => m.entries[i]!);
    this.keys = order.map((i) => keys[i]!);
  }

  get(path: string): ManifestEntry | undefined {
    const key = encodeName(path);
    const i = lowerBound(this.keys.length, this.keyAt, key);
    return this.keys[i] === key ? this.entries[i] : undefined;
  }

  /** The paths strictly below `dir`. */
  below(dir: string): string[] {
    const prefix = dir === '/' ? '/' : `${encodeName(dir)}/`;
    const out: string[] = [];
    for (let i = lowerBound(this.keys.length, this.keyAt, prefix); i < this.keys.length && this.keys[i]!.startsWith(prefix); i++) out.push(this.entries[i]!.path);
    return out;
  }
}

function flagsFor(rules: Rules | undefined, path: string, type: EntryType): number | undefined {
  if (rules === undefined) return DEFAULT_FLAGS;
  const r = ruleFor(rules, path, type);
  if (r === undefined) return undefined;
  const f = r.flags & CHANGE_BITS;
  return f === 0 ? undefined : f | ATTR.type;
}

/** The path a `.sysprime-new` (or `.sysprime-new.<n>`) name was saved beside, or undefined for any other name. */
export function sidelinedPath(path: string): string | undefined {
  const m = /^(.+[^/])\.sysprime-new(?:\.[1-9][0-9]*)?$/.exec(path);
  return m === null ? undefined : m[1];
}

export function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Of `paths` in byte order, those strictly below `dir` (contiguous: every one starts with `dir/`). */
function descendants(paths: readonly string[], dir: string): string[] {
  const prefix = dir === '/' ? '/' : dir + '/';
  const out: string[] = [];
  for (let i = lowerBound(paths.length, (n) => paths[n]!, prefix); i < paths.length && paths[i]!.startsWith(prefix); i++) out.push(paths[i]!);
  return out;
}

function ancestors(path: string): string[] {
  const out: string[] = [];
  for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) out.push(path.slice(0, i));
  return out;
}

function checkHashes(input: PlanInput): HashAlgorithm {
  const algs = new Set([input.base.header.hash, input.ours.header.hash, input.theirs.header.hash]);
  if (algs.size > 1) {
    throw new SysprimeError('MANIFEST', `the three manifests use different content hashes (${[...algs].join(', ')})`, {
      hint: 'create the manifests with the same -H hash algorithm',
    });
  }
  const alg = input.base.header.hash;
  // Manifests sysprime made: a Solaris sha1/sha384/sha512 one cannot be hashed against here.
  if (!(HASH_ALGORITHMS as readonly string[]).includes(alg)) throw new SysprimeError('MANIFEST', `the manifests use ${alg}, which sysprime does not compute`, { hint: 'create them with xxh64, sha256 or md5' });
  return alg as HashAlgorithm;
}

export function planReintegration(input: PlanInput): ReintegrationPlan {
  const hash = checkHashes(input);
  const shared = input.shared ?? [];
  const B = new InManifestOrder(input.base);
  const O = new InManifestOrder(input.ours);
  const T = new InManifestOrder(input.theirs);
  const sides = (p: string): Sides => ({ b: B.get(p), o: O.get(p), t: T.get(p) });
  const actions = new Map<string, PlanAction>();
  // What the rules check at a path, asked only where the plan needs it: most paths are the same in base and
  // ours under every attribute, which no rule can make a change.
  const flagsOf = new Map<string, number | undefined>();
  const flagsAt = (p: string, s: Sides = sides(p)): number | undefined => {
    if (p === '/') return undefined;
    if (!flagsOf.has(p)) flagsOf.set(p, flagsFor(input.rules, p, (s.o ?? s.b ?? s.t)!.type));
    return flagsOf.get(p);
  };

  // One pass over the three manifests at once, in their order (a merge-join): no index of any of them is built.
  const [bs, os, ts] = [B.entries, O.entries, T.entries];
  const [bk, ok, tk] = [B.keys, O.keys, T.keys];
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < bs.length || j < os.length || k < ts.length) {
    let key = i < bk.length ? bk[i]! : undefined;
    if (j < ok.length && (key === undefined || ok[j]! < key)) key = ok[j]!;
    if (k < tk.length && (key === undefined || tk[k]! < key)) key = tk[k]!;
    const s: Sides = {
      b: i < bk.length && bk[i] === key ? bs[i++] : undefined,
      o: j < ok.length && ok[j] === key ? os[j++] : undefined,
      t: k < tk.length && tk[k] === key ? ts[k++] : undefined,
    };
    const p = (s.b ?? s.o ?? s.t)!.path;
    if (p === '/') continue; // the root itself is the mount point: never replaced
    if (s.b !== undefined && s.o !== undefined && entryEq(s.b, s.o, CHANGE_BITS)) continue;
    const flags = flagsAt(p, s);
    if (flags === undefined) continue;
    if (entryEq(s.b, s.o, flags)) continue;
    const a = shared.length > 0 && isBelowAny(p, shared) ? decideShared(p, s, flags) : decide(p, s, flags);
    if (a !== undefined) actions.set(p, a);
  }

  // A directory the admin replaced "while the update left it alone" is only
  // left alone if nothing below it changed either.
  for (const a of actions.values()) {
    if (a.reason !== 'admin-retyped' || a.theirs?.type !== 'D') continue;
    const touched = T.below(a.path).find((q) => !entryEq(B.get(q), T.get(q), flagsAt(q) ?? DEFAULT_FLAGS));
    if (touched !== undefined) {
      Object.assign(a, { action: 'conflict', reason: 'type-conflict', detail: `the admin replaced the directory by a ${typeName(a.ours!)}, the update changed entries below it` });
    }
  }

  // Admin entries below a directory the update replaced by something else:
  // the admin's directory stays, the update's object goes beside it.
  for (const a of [...actions.values()]) {
    if (a.ours === undefined || a.action === 'delete' || a.action === 'skip') continue;
    for (const anc of ancestors(a.path)) {
      const t = T.get(anc);
      const o = O.get(anc);
      if (t === undefined || t.type === 'D' || o?.type !== 'D') continue;
      const existing = actions.get(anc);
      if (existing?.action === 'conflict' || existing?.action === 'copy') continue;
      actions.set(anc, action(anc, 'conflict', 'type-conflict', `the update replaced the directory by a ${typeName(t)}, the admin has entries in it`, sides(anc), { meta: oursMeta(o) }));
    }
  }

  // Deleting a directory the update put new entries in would lose them: keep it for those.
  for (const p of [...actions.keys()].sort(comparePaths).reverse()) {
    const a = actions.get(p)!;
    if (a.action !== 'delete' || a.base?.type !== 'D' || a.theirs?.type !== 'D') continue;
    const survivors = T.below(p)
      .filter((q) => actions.get(q)?.action !== 'delete')
      .sort(comparePaths);
    if (survivors.length > 0) {
      const shown = survivors.slice(0, 3).join(', ') + (survivors.length > 3 ? ', ...' : '');
      Object.assign(a, { action: 'keep', reason: 'directory-kept', detail: `deleted by the admin, but it still holds entries the admin did not delete (${shown}): kept for them`, notice: true });
    }
  }

  // The update's version an earlier staging saved beside a conflict is in
  // ours and not in base: it looks admin-added, but it is sysprime's own
  // while it still holds what that update shipped at the path (base's
  // object there). Carried over, it would replace what this run saves there
  // for the new update's version.
  for (const a of [...actions.values()]) {
    if (a.reason !== 'admin-added' || a.ours === undefined || a.ours.type === 'D') continue;
    const main = sidelinedPath(a.path);
    const b = main === undefined ? undefined : B.get(main);
    if (b === undefined || !contentEq(b, a.ours, DEFAULT_FLAGS)) continue;
    const skipped: PlanAction = {
      ...a,
      action: 'skip',
      reason: 'sysprime-sidelined',
      detail: `the update's version an earlier run saved beside ${main!}, unchanged since: sysprime's, not the admin's, so not carried over`,
    };
    delete skipped.meta;
    actions.set(a.path, skipped);
  }

  // The update's directory saved beside a conflict keeps its contents as the update left them.
  const planned = [...actions.keys()].sort(comparePaths);
  for (const a of [...actions.values()]) {
    if (a.action !== 'conflict' || a.theirs?.type !== 'D' || a.ours?.type === 'D') continue;
    for (const q of descendants(planned, a.path)) {
      const d = actions.get(q)!;
      actions.set(q, { ...d, action: 'skip', reason: 'inside-sidelined', detail: `inside the update's directory saved as ${a.path}.sysprime-new` });
      delete actions.get(q)!.meta;
    }
  }

  // The admin's directory put back in place of the update's object: all of its entries come with it.
  for (const a of [...actions.values()]) {
    if (a.ours?.type !== 'D' || a.theirs === undefined || a.theirs.type === 'D') continue;
    if (a.action !== 'conflict' && a.action !== 'copy') continue;
    for (const q of O.below(a.path)) {
      if (actions.has(q) || flagsAt(q) === undefined) continue;
      const s = sides(q);
      if (s.o!.type === 'S') continue;
      actions.set(q, action(q, 'copy', 'restored-with-parent', `unchanged by the admin, put back with the admin's ${a.path}`, s, { meta: oursMeta(s.o!) }));
    }
  }

  const sorted = [...actions.values()].sort((x, y) => comparePaths(x.path, y.path));
  return { version: 1, hash, actions: sorted, counts: countActions(sorted) };
}

export function countActions(actions: readonly PlanAction[]): Partial<Record<ActionKind, number>> {
  const counts: Partial<Record<ActionKind, number>> = {};
  for (const a of actions) counts[a.action] = (counts[a.action] ?? 0) + 1;
  return counts;
}
