/**
 * Applying a reintegration plan to the target tree (the new environment,
 * a clone of theirs). Every path is resolved below its root without ever
 * following a link (src/os/confined.ts); every write goes to a temporary name with
 * all its attributes set, then is renamed over (objects.ts). Each action
 * first compares what is there with what should be, so applying the same
 * plan twice changes nothing the second time.
 *
 * Returns a report of what it touched; one path that fails does not stop
 * the others (the report says which failed and why).
 */
import { readdirSync } from 'node:fs';
import { SysprimeError, isSysprimeError, messageOf } from '../errors.js';
import { log } from '../log.js';
import { faultPoint } from '../process/fault.js';
import { processAlive } from '../process/alive.js';
import { run } from '../process/run.js';
import { displayPath, type ManifestEntry } from '../bart/types.js';
import { loadHashers } from '../bart/hash.js';
import { accountKindOf, accountNames, mergeAccounts, primaryOf } from './accounts.js';
import { MERGE_MAX_LINES, countLines, mergeText } from './merge.js';
import { NotEmptyError, bytesWithin, digestOf, place, readObject, readObjectIn, readXattrsAt, removeEntry, moveAside, sameBytes, type Content, type Desired, type FsObject } from './objects.js';
import { PERMS, type MetaPlan, type PlanAction, type ReintegrationPlan } from './plan.js';
import { countOutcomes, type ReintegrationReport, type ReportItem } from './report.js';
import { ConfinedRoot, componentsOf, isChangedWhileRead, isHandle, lstatIn, readAhead, type DirHandle } from '../os/confined.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { XattrCache } from '../os/xattr-cache.js';
import { isAclName, type Xattrs } from '../os/xattrs.js';

export interface ApplyOptions {
  /** Sys_N, the pristine tree of the old generation (merge bases). */
  baseRoot: string;
  /** Sys_N', the admin's environment (read only). */
  oursRoot: string;
  /** Sys_N+1 pristine; when absent, the update's version is read from the target before it is replaced. */
  theirsRoot?: string;
  /** The new environment being written. */
  targetRoot: string;
  /**
   * How writes to the target are made durable (TreeOptions.durable; `each`
   * when not given). With `file-data` or `at-end`, every filesystem written
   * is synced (syncfs) once, before applyPlan returns.
   */
  durable?: 'each' | 'file-data' | 'at-end';
  /**
   * Nothing but this run writes the target while it runs (a new environment
   * being staged, which nothing runs yet): its directories are kept open
   * between actions (TreeOptions.quiet). Never for a running system.
   */
  quietTarget?: boolean;
  now?: () => Date;
}

interface Roots {
  base: ConfinedRoot;
  ours: ConfinedRoot;
  theirs: ConfinedRoot | undefined;
  target: ConfinedRoot;
  hash: ReintegrationPlan['hash'];
  /** Paths the plan writes the admin's object to: a `.sysprime-new` for the update's version never takes one of them. */
  planned: ReadonlySet<string>;
  /** Admin files with several links: ours dev:ino → the first target path written for it. */
  links: Map<string, string>;
}

export const SIDELINE_SUFFIX = '.sysprime-new';
const NAME_MAX = 255;

/** `<name>.sysprime-new`, shortened (by bytes) when the name is already near the 255-byte limit. */
export function sidelineName(name: string, n = 0): string {
  const suffix = SIDELINE_SUFFIX + (n > 0 ? `.${n}` : '');
  return name.length + suffix.length <= NAME_MAX ? name + suffix : name.slice(0, NAME_MAX - suffix.length) + suffix;
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

class Skip extends Error {}

/**
 * Merges hold the three versions whole (diff3 works on lines): a file
 * larger than this is not merged, it is resolved as a conflict (the
 * admin's in place, the update's beside), so memory stays bounded.
 */
export const MERGE_MAX = 16 << 20;

/** A version too large to merge (MERGE_MAX). */
class TooLarge extends Error {}

function blockedError(path: string, root: string): SysprimeError {
  return new SysprimeError('REFUSED', `a component of ${displayPath(path)} in ${root} is not a directory (a symbolic link there is never followed)`, {
    hint: 'look at that path in the target: the update or a previous run left something else there',
  });
}

/**
 * Open the target directory that holds `path`, creating missing parents
 * with the admin's metadata for them (or 0755 root when the admin has none).
 */
async function targetParent(r: Roots, path: string, touched: string[]): Promise<{ dir: DirHandle; name: string }> {
  const comps = componentsOf(path);
  const name = comps.pop()!;
  for (let i = 0; ; i++) {
    const d = r.target.openDir(comps);
    if (isHandle(d)) return { dir: d, name };
    if (d !== undefined) throw blockedError(path, r.target.root);
    if (i > comps.length) throw blockedError(path, r.target.root);
    // Find the deepest existing ancestor and create the next one.
    let k = comps.length - 1;
    let parent: DirHandle | undefined;
    for (; k >= 0; k--) {
      const p = r.target.openDir(comps.slice(0, k));
      if (isHandle(p)) {
        parent = p;
        break;
      }
      if (p !== undefined) throw blockedError(path, r.target.root);
    }
    if (parent === undefined) throw blockedError(path, r.target.root);
    try {
      const childPath = '/' + comps.slice(0, k + 1).join('/');
      const src = await readObject(r.ours, childPath);
      const want: Desired =
        typeof src === 'object' && src.type === 'D'
          ? { type: 'D', mode: src.st.mode & PERMS, uid: src.st.uid, gid: src.st.gid, xattrs: src.xattrs }
          : { type: 'D', mode: 0o755, uid: 0, gid: 0, xattrs: new Map() };
      await place(parent, comps[k]!, want);
      touched.push(childPath);
    } finally {
      parent.close();
    }
  }
}

/** The update's version of a path: from theirsRoot when given. */
async function theirsObject(r: Roots, path: string): Promise<FsObject | undefined> {
  if (r.theirs === undefined) return undefined;
  const o = await readObject(r.theirs, path);
  return typeof o === 'object' ? o : undefined;
}

/** Does the object match the update's manifest entry? (Used when theirsRoot is not given.) */
async function matchesEntry(cur: FsObject, t: ManifestEntry | undefined, hash: Roots['hash']): Promise<boolean> {
  if (t === undefined || cur.type !== t.type) return false;
  if (cur.type === 'F') return t.contents !== undefined && cur.content !== undefined && (await digestOf(hash, cur.content)) === t.contents;
  if (cur.type === 'L') return cur.dest !== undefined && cur.dest.toString('latin1') === t.dest;
  return true;
}

async function sameObject(a: FsObject, b: FsObject): Promise<boolean> {
  if (a.type !== b.type) return false;
  if (a.type === 'F') return a.content !== undefined && b.content !== undefined && (await sameBytes(a.content, b.content));
  if (a.type === 'L') return a.dest !== undefined && b.dest !== undefined && a.dest.equals(b.dest);
  if (a.type === 'B' || a.type === 'C') return a.st.rdev === b.st.rdev;
  return true;
}

/** The xattrs (ACLs included) the written object must carry. */
function wantXattrs(meta: MetaPlan, ours: Xattrs, theirs: Xattrs): Xattrs {
  const out: Xattrs = new Map();
  const src = meta.xattrs === 'ours' ? ours : theirs;
  for (const [k, v] of src) if (!isAclName(k)) out.set(k, v);
  if (typeof meta.xattrs === 'object') {
    for (const n of meta.xattrs.ours) {
      if (isAclName(n)) continue;
      const v = ours.get(n);
      if (v === undefined) out.delete(n);
      else out.set(n, v);
    }
  }
  for (const [k, v] of meta.acl === 'ours' ? ours : theirs) if (isAclName(k)) out.set(k, v);
  return out;
}

function desiredFrom(src: FsObject, meta: MetaPlan, oursX: Xattrs, theirsX: Xattrs, keepTimes: boolean): Desired {
  const d: Desired = { type: src.type, mode: meta.mode, uid: meta.uid, gid: meta.gid, xattrs: wantXattrs(meta, oursX, theirsX) };
  if (src.content !== undefined) d.content = src.content;
  if (src.dest !== undefined) d.dest = src.dest;
  if (src.type === 'B' || src.type === 'C') d.rdev = src.st.rdev;
  if (keepTimes && (src.type === 'F' || src.type === 'L')) d.times = { atime: src.st.atime, mtime: src.st.mtime };
  return d;
}

function allOurs(o: FsObject): MetaPlan {
  return { mode: o.st.mode & PERMS, uid: o.st.uid, gid: o.st.gid, acl: 'ours', xattrs: 'ours' };
}

async function readOurs(r: Roots, a: PlanAction, type?: string): Promise<FsObject> {
  const o = await readObject(r.ours, a.path);
  if (o === 'absent') throw new Skip('no longer in the admin\'s environment (changed since the plan was made)');
  if (o === 'blocked') throw new Skip('a component of the path in the admin\'s environment is a symbolic link: not followed');
  const wantType = type ?? a.ours?.type;
  if (wantType !== undefined && o.type !== wantType) throw new Skip(`is now a different type in the admin's environment (changed since the plan was made)`);
  return o;
}

/**
 * Where the update's xattrs come from: its pristine tree, else the object
 * the target holds now (read only then: with the tree at hand, a copy
 * costs no second read of the file it replaces).
 */
async function theirsXattrs(r: Roots, path: string, current: () => Promise<FsObject | 'absent'>): Promise<Xattrs> {
  const t = r.theirs === undefined ? undefined : await readXattrsAt(r.theirs, path);
  if (t !== undefined) return t;
  const cur = await current();
  return typeof cur === 'object' ? cur.xattrs : new Map();
}

/** Write the admin's object (hard-linking to an earlier copy of the same inode). */
async function putOurs(r: Roots, a: PlanAction, src: FsObject, meta: MetaPlan, item: ReportItem): Promise<boolean> {
  const touched: string[] = [];
  const { dir, name } = await targetParent(r, a.path, touched);
  try {
    if (touched.length > 0) item.touched = touched;
    const want = desiredFrom(src, meta, src.xattrs, await theirsXattrs(r, a.path, () => readObjectIn(dir, name)), true);
    const key = `${src.st.dev}:${src.st.ino}`;
    let linkDir: DirHandle | undefined;
    if (src.type === 'F' && src.st.nlink > 1) {
      const first = r.links.get(key);
      if (first !== undefined && first !== a.path) {
        const fp = componentsOf(first);
        const fname = fp.pop()!;
        const fd = r.target.openDir(fp);
        if (isHandle(fd)) {
          const fst = lstatIn(fd, fname);
          if (fst?.isFile()) {
            linkDir = fd;
            want.linkTo = { dir: fd, name: fname, ino: fst.ino };
            (item.touched ??= []).push(`hard link to ${first}`);
          } else fd.close();
        }
      }
    }
    try {
      return await placeOrSideline(r, dir, name, want, a.path, item);
    } finally {
      linkDir?.close();
      if (src.type === 'F' && src.st.nlink > 1 && !r.links.has(key)) r.links.set(key, a.path);
    }
  } finally {
    dir.close();
  }
}

/** place(), moving a non-empty directory in the way aside as `.sysprime-new` (it holds entries outside the plan). */
async function placeOrSideline(r: Roots, dir: DirHandle, name: string, want: Desired, path: string, item: ReportItem): Promise<boolean> {
  try {
    return await place(dir, name, want);
  } catch (err) {
    if (!(err instanceof NotEmptyError)) throw err;
    const aside = freeSidelineName(r, path, dir, name);
    moveAside(dir, name, aside);
    item.outcome = 'conflict';
    item.admin = path;
    item.update = parentPath(path, aside);
    item.detail += `; the directory in the way still held entries, moved aside as ${displayPath(aside)}`;
    return place(dir, name, want);
  }
}

function parentPath(path: string, name: string): string {
  const p = parentOf(path);
  return (p === '/' ? '' : p) + '/' + name;
}

/**
 * The first `.sysprime-new` name beside `path` that the plan does not also
 * write the admin's object to (the admin may have kept, and edited, one an
 * earlier run saved): the update's version must not be replaced by it.
 */
function unplannedSideline(r: Roots, path: string, name: string, from = 0): number {
  let n = from;
  while (r.planned.has(parentPath(path, sidelineName(name, n)))) n++;
  return n;
}

/** A `.sysprime-new` name a rename can use: free, or a non-directory it may replace. */
function freeSidelineName(r: Roots, path: string, dir: DirHandle, name: string, movingDir = true): string {
  for (let n = unplannedSideline(r, path, name); ; n = unplannedSideline(r, path, name, n + 1)) {
    const candidate = sidelineName(name, n);
    const st = lstatIn(dir, candidate);
    if (st === undefined || (!movingDir && !st.isDirectory())) return candidate;
  }
}

/**
 * The admin's object in place, the update's beside it as `.sysprime-new`.
 * The update's object is moved aside when the target still holds it; when
 * the update's pristine tree is at hand, the update's version is put beside
 * from there (where an earlier run put it, else at the first free name).
 * What the target holds that is neither the admin's nor the update's (as
 * its tree or its manifest says) is never replaced unseen: written since
 * (by hand, by a package run in the new environment) it may be the only
 * copy of that version, so it is moved beside too, and the item says so.
 */
async function resolveConflict(r: Roots, a: PlanAction, ours: FsObject, item: ReportItem): Promise<boolean> {
  const touched: string[] = [];
  const { dir, name } = await targetParent(r, a.path, touched);
  try {
    if (touched.length > 0) item.touched = touched;
    const cur = await readObjectIn(dir, name);
    const want = desiredFrom(ours, allOurs(ours), ours.xattrs, new Map(), true);
    const theirs = await theirsObject(r, a.path);
    let changed = false;
    let aside: string | undefined;
    let third: string | undefined;
    if (cur !== 'absent' && !(await sameObject(cur, ours))) {
      const isTheirs = theirs !== undefined ? await sameObject(cur, theirs) : await matchesEntry(cur, a.theirs, r.hash);
      const moved = freeSidelineName(r, a.path, dir, name, cur.type === 'D');
      moveAside(dir, name, moved);
      changed = true;
      if (isTheirs || cur.type === 'D') aside = moved;
      else third = moved;
    }
    if (aside === undefined && theirs !== undefined && theirs.type !== 'D' && theirs.type !== 'S') {
      const tw = desiredFrom(theirs, { mode: theirs.st.mode & PERMS, uid: theirs.st.uid, gid: theirs.st.gid, acl: 'theirs', xattrs: 'theirs' }, new Map(), theirs.xattrs, true);
      for (let n = unplannedSideline(r, a.path, name); aside === undefined; n = unplannedSideline(r, a.path, name, n + 1)) {
        const candidate = sidelineName(name, n);
        if (candidate === third) continue;
        const there = await readObjectIn(dir, candidate);
        // An earlier run's copy of the update's version is reused; anything else there is left as it is.
        if (there === 'absent' || (there.type !== 'D' && (await sameObject(there, theirs)))) {
          changed = (await place(dir, candidate, tw)) || changed;
          aside = candidate;
        }
      }
    } else if (aside === undefined && third === undefined) {
      // The update's version may already be beside it from an earlier run.
      const existing = sidelineName(name, unplannedSideline(r, a.path, name));
      if (lstatIn(dir, existing) !== undefined) aside = existing;
    }
    changed = (await placeOrSideline(r, dir, name, want, a.path, item)) || changed;
    item.admin = a.path;
    if (third !== undefined) {
      item.notice = true;
      item.detail += `; the target held a version that is neither the admin's nor the update's, kept beside as ${displayPath(parentPath(a.path, third))}`;
      // Without the update's version at hand, the one beside is this one.
      aside ??= third;
    }
    if (aside !== undefined) item.update = parentPath(a.path, aside);
    return changed;
  } finally {
    dir.close();
  }
}

async function applyCopy(r: Roots, a: PlanAction, item: ReportItem): Promise<void> {
  const src = await readOurs(r, a);
  if (src.type === 'S') throw new Skip('sockets are not carried over');
  // The plan's metadata was decided from the manifests; the admin's object as it is now wins where the plan says "ours".
  const meta = a.meta ?? allOurs(src);
  const live: MetaPlan = a.meta?.acl === 'ours' && a.meta.xattrs === 'ours' ? allOurs(src) : meta;
  const changed = await putOurs(r, a, src, live, item);
  if (item.outcome !== 'conflict') item.outcome = changed ? 'applied' : 'unchanged';
}

async function applyMetadata(r: Roots, a: PlanAction, item: ReportItem): Promise<void> {
  const ours = await readOurs(r, a);
  const { dir, name } = await targetParent(r, a.path, []);
  try {
    const cur = await readObjectIn(dir, name);
    if (cur === 'absent') throw new Skip('not in the target');
    const expected = a.theirs?.type ?? a.ours?.type;
    if (cur.type !== expected) throw new Skip(`the target holds a different type here than the update's (${cur.type})`);
    const want = desiredFrom(cur, a.meta ?? allOurs(ours), ours.xattrs, await theirsXattrs(r, a.path, async () => cur), false);
    const changed = await place(dir, name, want);
    item.outcome = changed ? 'applied' : 'unchanged';
  } finally {
    dir.close();
  }
}

/** The bytes of a version to merge; TooLarge beyond MERGE_MAX. */
async function mergeable(c: Content): Promise<Buffer>;
async function mergeable(c: Content | undefined): Promise<Buffer | undefined>;
async function mergeable(c: Content | undefined): Promise<Buffer | undefined> {
  if (c === undefined) return undefined;
  const b = await bytesWithin(c, MERGE_MAX);
  if (b === undefined) throw new TooLarge();
  return b;
}

async function textOf(root: ConfinedRoot | undefined, path: string): Promise<Buffer | undefined> {
  if (root === undefined) return undefined;
  const o = await readObject(root, path);
  return typeof o === 'object' && o.type === 'F' ? mergeable(o.content) : undefined;
}

async function targetFile(r: Roots, path: string): Promise<FsObject | undefined> {
  const o = await readObject(r.target, path);
  return typeof o === 'object' && o.type === 'F' ? o : undefined;
}

/** A three-way merge of text; a version too large to hold (MERGE_MAX) is resolved as a conflict instead. */
async function applyMerge(r: Roots, a: PlanAction, item: ReportItem): Promise<void> {
  const ours = await readOurs(r, a, 'F');
  try {
    await mergeOurs(r, a, ours, item);
  } catch (err) {
    if (!(err instanceof TooLarge)) throw err;
    item.detail = `changed by both, and larger than ${MERGE_MAX >> 20} MiB: not merged line by line`;
    // Without the update's tree, what the target holds (the update's version, or one written since) may be
    // its only copy: kept beside, whatever it is, never replaced unseen.
    const changed = await resolveConflict(r, a, ours, item);
    item.outcome = changed ? 'conflict' : 'unchanged';
  }
}

async function mergeOurs(r: Roots, a: PlanAction, ours: FsObject, item: ReportItem): Promise<void> {
  const base = await textOf(r.base, a.path);
  if (base === undefined) throw new Skip('the base version is not in the old pristine tree');
  const cur = await targetFile(r, a.path);
  let theirs = await textOf(r.theirs, a.path);
  if (theirs === undefined && r.theirs === undefined && cur?.content !== undefined && (await matchesEntry(cur, a.theirs, r.hash))) theirs = await mergeable(cur.content);
  if (theirs === undefined) {
    // Without the update's pristine tree, a target that no longer holds the update's version was written by an earlier run.
    if (cur?.content !== undefined && (await sameBytes(cur.content, ours.content!))) {
      item.outcome = 'unchanged';
      item.detail = 'the admin\'s version is already in place (merged or resolved by an earlier run)';
      return;
    }
    const curText = cur?.content !== undefined ? await bytesWithin(cur.content, MERGE_MAX) : undefined;
    // Too large to tell whether an earlier run merged it: the target's version may be the only copy
    // of what the update (or whoever wrote it since) made. A conflict with both kept, never a skip.
    if (cur?.content !== undefined && curText === undefined) throw new TooLarge();
    if (curText !== undefined) {
      const again = mergeText(base, await mergeable(ours.content!), curText);
      if (again.kind === 'merged' && again.content.equals(curText)) {
        item.outcome = 'unchanged';
        item.detail = 'already merged by an earlier run';
        return;
      }
    }
    throw new Skip('the update\'s version is neither in the target any more nor given (pass the new generation\'s pristine tree)');
  }
  const m = mergeText(base, await mergeable(ours.content!), theirs);
  if (m.kind === 'merged') {
    const { dir, name } = await targetParent(r, a.path, []);
    try {
      const meta = a.meta ?? allOurs(ours);
      const want = desiredFrom({ ...ours, content: m.content }, meta, ours.xattrs, await theirsXattrs(r, a.path, () => readObjectIn(dir, name)), false);
      const changed = await place(dir, name, want);
      item.outcome = changed ? 'merged' : 'unchanged';
      item.detail = m.trivial ? 'both changed it the same way, or one side\'s change contains the other' : 'changed by both: merged line by line';
    } finally {
      dir.close();
    }
    return;
  }
  item.detail =
    m.kind === 'binary'
      ? `changed by both, and not text (${m.which.join(', ')}): not merged`
      : m.kind === 'too-long'
        ? `changed by both, and over ${MERGE_MAX_LINES} lines (${m.lines}): not merged line by line`
        : `changed by both, and the changes overlap (admin's lines ${m.regions.map((x) => (x.oursStart === x.oursEnd ? `${x.oursStart}` : `${x.oursStart}-${x.oursEnd}`)).join(', ')})`;
  const changed = await resolveConflict(r, a, ours, item);
  item.outcome = changed ? 'conflict' : 'unchanged';
}

async function applyConflict(r: Roots, a: PlanAction, item: ReportItem): Promise<void> {
  const ours = await readOurs(r, a);
  const changed = await resolveConflict(r, a, ours, item);
  if (item.outcome !== 'conflict') item.outcome = changed ? 'conflict' : 'unchanged';
  else if (!changed) item.outcome = 'unchanged';
}

/**
 * Account databases merged by entry; one too large to hold (MERGE_MAX) or
 * too long (MERGE_MAX_LINES, as for a line merge) is resolved as a conflict
 * instead, both versions kept.
 */
async function applyAccounts(r: Roots, a: PlanAction, item: ReportItem): Promise<void> {
  const ours = await readOurs(r, a, 'F');
  try {
    await mergeAccountsOf(r, a, ours, item);
  } catch (err) {
    if (!(err instanceof TooLarge || err instanceof TooLong)) throw err;
    item.detail =
      err instanceof TooLong
        ? `${accountKindOf(a.path)!} (or the database it follows) over ${MERGE_MAX_LINES} lines (${err.lines}): not merged by entry`
        : `${accountKindOf(a.path)!} larger than ${MERGE_MAX >> 20} MiB: not merged by entry`;
    item.notice = true;
    const changed = await resolveConflict(r, a, ours, item);
    item.outcome = changed ? 'conflict' : 'unchanged';
  }
}

/** A version of more lines than MERGE_MAX_LINES. */
class TooLong extends Error {
  constructor(readonly lines: number) {
    super(`${lines} lines`);
  }
}

/**
 * The bytes of an account database to merge, refused beyond MERGE_MAX
 * bytes or MERGE_MAX_LINES lines: counted in the bytes, before anything is
 * decoded or split, as mergeText counts them.
 */
function withinLines(b: Buffer | undefined): Buffer | undefined {
  const lines = b === undefined ? 0 : countLines(b);
  if (lines > MERGE_MAX_LINES) throw new TooLong(lines);
  return b;
}

async function mergeAccountsOf(r: Roots, a: PlanAction, ours: FsObject, item: ReportItem): Promise<void> {
  const kind = accountKindOf(a.path)!;
  const latin = (b: Buffer | undefined) => (b ?? Buffer.alloc(0)).toString('latin1');
  const theirsText = async (p: string) => (r.theirs !== undefined ? textOf(r.theirs, p) : mergeable((await targetFile(r, p))?.content));
  // Every version is counted before any is decoded: a refusal costs no strings.
  const base = withinLines(await textOf(r.base, a.path));
  const theirs = withinLines(await theirsText(a.path));
  const mine = withinLines(await mergeable(ours.content));
  let accounts: string[] | undefined;
  const primary = primaryOf(kind);
  if (primary !== undefined) {
    const pp = `/etc/${primary}`;
    const [pb, po, pt] = [withinLines(await textOf(r.base, pp)), withinLines(await textOf(r.ours, pp)), withinLines(await theirsText(pp))];
    const pm = mergeAccounts({ kind: primary, base: latin(pb), ours: latin(po), theirs: latin(pt) });
    accounts = accountNames(pm.content);
  }
  const merged = mergeAccounts({ kind, base: latin(base), ours: latin(mine), theirs: latin(theirs), ...(accounts ? { accounts } : {}) });
  const { dir, name } = await targetParent(r, a.path, []);
  try {
    const want = desiredFrom({ ...ours, content: Buffer.from(merged.content, 'latin1') }, a.meta ?? allOurs(ours), ours.xattrs, await theirsXattrs(r, a.path, () => readObjectIn(dir, name)), false);
    const changed = await place(dir, name, want);
    const conflicts = merged.notes.filter((n) => n.kind === 'conflict');
    item.outcome = !changed ? 'unchanged' : conflicts.length > 0 ? 'conflict' : 'merged';
    const notes = merged.notes.map((n) => `${n.kind === 'conflict' ? 'CONFLICT: ' : ''}${n.message}`);
    item.detail = `${kind} merged by entry` + (notes.length > 0 ? `; ${notes.join('; ')}` : '');
    if (conflicts.length > 0) item.notice = true;
  } finally {
    dir.close();
  }
}

async function applyDelete(r: Roots, a: PlanAction, item: ReportItem): Promise<void> {
  const { dir, name } = r.target.openParent(a.path);
  if (!isHandle(dir)) {
    item.outcome = 'unchanged';
    item.detail += ' (already absent)';
    return;
  }
  try {
    const res = removeEntry(dir, name);
    if (res === 'not-empty') throw new Skip('the directory still holds entries the plan does not cover; left in place');
    item.outcome = res === 'removed' ? 'applied' : 'unchanged';
  } finally {
    dir.close();
  }
}

async function applyRestore(r: Roots, a: PlanAction, item: ReportItem): Promise<void> {
  if (a.theirs === undefined) return applyDelete(r, a, item);
  if (r.theirs === undefined) throw new Skip('putting the update\'s version back needs the new generation\'s pristine tree');
  const t = await theirsObject(r, a.path);
  if (t === undefined) throw new Skip('not in the new generation\'s pristine tree');
  const touched: string[] = [];
  const { dir, name } = await targetParent(r, a.path, touched);
  try {
    const want = desiredFrom(t, { mode: t.st.mode & PERMS, uid: t.st.uid, gid: t.st.gid, acl: 'theirs', xattrs: 'theirs' }, new Map(), t.xattrs, true);
    const changed = await placeOrSideline(r, dir, name, want, a.path, item);
    if (item.outcome !== 'conflict') item.outcome = changed ? 'applied' : 'unchanged';
  } finally {
    dir.close();
  }
}

/** Fault point after the n-th action of a plan (1-based); see state/journal.ts. */
export function appliedPoint(n: number): string {
  return `applied-${n}`;
}

const TEMP_NAME = /^\.sysprime-tmp-(\d+)-/;

/**
 * A run killed while it wrote a file leaves the file, maybe half-written,
 * under its temporary name (objects.ts, tempName). The same plan touches the
 * same directories, so looking there finds every such leftover of a dead
 * run; a live run's are left alone. Returns the paths removed.
 */
export function removeLeftoverTemps(target: ConfinedRoot, plan: ReintegrationPlan): string[] {
  const removed: string[] = [];
  const dirs = new Set(plan.actions.map((a) => parentOf(a.path)));
  for (const path of dirs) {
    const dir = target.openDir(componentsOf(path));
    if (!isHandle(dir)) continue;
    try {
      for (const name of readdirSync(dir.self)) {
        const pid = Number(TEMP_NAME.exec(name)?.[1] ?? NaN);
        if (Number.isNaN(pid) || pid === process.pid || processAlive(pid)) continue;
        if (removeEntry(dir, name) === 'removed') removed.push(`${path === '/' ? '' : path}/${name}`);
      }
    } finally {
      dir.close();
    }
  }
  if (removed.length > 0) log.info(`removed ${removed.length} temporary file(s) an interrupted reintegration left: ${removed.join(', ')}`);
  return removed;
}

function isDeletion(a: PlanAction): boolean {
  return a.action === 'delete' || (a.action === 'restore' && a.theirs === undefined);
}

export async function applyPlan(plan: ReintegrationPlan, opts: ApplyOptions): Promise<ReintegrationReport> {
  const now = opts.now ?? (() => new Date());
  const startedAt = now().toISOString();
  if (plan.hash === 'xxh64') await loadHashers();
  const opened: ConfinedRoot[] = [];
  const open = (p: string, quiet: boolean) => {
    const c = ConfinedRoot.open(p, { xattrs: new XattrCache(), ...(opts.durable ? { durable: opts.durable } : {}), quiet });
    opened.push(c);
    return c;
  };
  const items: ReportItem[] = [];
  try {
    const r: Roots = {
      // The pristine trees are read-only snapshots; the admin's is a running system's, which changes under us.
      base: open(opts.baseRoot, true),
      ours: open(opts.oursRoot, false),
      theirs: opts.theirsRoot === undefined ? undefined : open(opts.theirsRoot, true),
      target: open(opts.targetRoot, opts.quietTarget === true),
      hash: plan.hash,
      planned: new Set(plan.actions.filter((a) => a.ours !== undefined && a.action !== 'skip' && a.action !== 'delete').map((a) => a.path)),
      links: new Map(),
    };
    removeLeftoverTemps(r.target, plan);
    await readAheadXattrs(r, plan);
    // Deletions deepest first, so a directory is empty when its turn comes; then the rest parents first.
    const deletions = plan.actions.filter(isDeletion).reverse();
    const rest = plan.actions.filter((a) => !isDeletion(a));
    for (const a of [...deletions, ...rest]) {
      items.push(await applyOne(r, a));
      faultPoint('reintegrate', appliedPoint(items.length));
    }
    // What was not synced write by write, on every filesystem it went to (the target's, and a child dataset's
    // below it where a shared path is), before the caller counts the run as done.
    for (const fs of r.target.filesystemsToSync()) await run('sync', ['--file-system', fs]);
  } finally {
    for (const c of opened) c.close();
  }
  items.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  return { version: 1, startedAt, finishedAt: now().toISOString(), targetRoot: opts.targetRoot, items, counts: countOutcomes(items) };
}

/**
 * What each action reads, its extended attributes read ahead in a few
 * processes instead of one or more per path. Two trees at a time: while
 * one tree's getfattr runs, this thread opens the handles of the other's
 * next batch (each tree's batch holds up to a quarter of the open files
 * allowed: xattr-cache.ts).
 */
async function readAheadXattrs(r: Roots, plan: ReintegrationPlan): Promise<void> {
  const written = plan.actions.filter((a) => a.action !== 'keep' && a.action !== 'skip').map((a) => a.path);
  const merged = plan.actions.filter((a) => a.action === 'merge' || a.action === 'conflict' || a.action === 'restore').map((a) => a.path);
  await together(readAhead(r.ours, written), readAhead(r.target, written));
  // The update's attributes decide what a copy keeps of them (theirsObject).
  await together(r.theirs === undefined ? undefined : readAhead(r.theirs, written), readAhead(r.base, merged));
}

/** Wait for all of the work, then throw the first failure: nothing still reads a tree when the caller closes it. */
async function together(...work: (Promise<void> | undefined)[]): Promise<void> {
  for (const done of await Promise.allSettled(work)) if (done.status === 'rejected') throw done.reason;
}

/**
 * Tries of one action whose source changed while it was read: a file the
 * running system keeps writing (journald's `system.journal` where /var/log
 * is inside the root) is still between two writes most of the time, so the
 * action is read again a few times, a little apart, before it is reported
 * as not carried. Every action starts from the file as it is then.
 */
const TRIES_WHILE_CHANGING = 4;

async function applyOne(r: Roots, a: PlanAction): Promise<ReportItem> {
  for (let attempt = 1; ; attempt++) {
    const { item, changing } = await applyOnce(r, a);
    if (!changing || attempt >= TRIES_WHILE_CHANGING) return item;
    await sleep(100 * attempt);
  }
}

/** One try of an action; `changing`: it failed because its source changed while it was read. */
async function applyOnce(r: Roots, a: PlanAction): Promise<{ item: ReportItem; changing: boolean }> {
  const item: ReportItem = { path: a.path, action: a.action, reason: a.reason, outcome: 'unchanged', detail: a.detail, ...(a.notice ? { notice: true } : {}) };
  let changing = false;
  try {
    switch (a.action) {
      case 'copy':
        await applyCopy(r, a, item);
        break;
      case 'merge':
        await applyMerge(r, a, item);
        break;
      case 'delete':
        await applyDelete(r, a, item);
        break;
      case 'metadata':
        await applyMetadata(r, a, item);
        break;
      case 'accounts':
        await applyAccounts(r, a, item);
        break;
      case 'conflict':
        await applyConflict(r, a, item);
        break;
      case 'restore':
        await applyRestore(r, a, item);
        break;
      case 'keep':
        item.outcome = 'unchanged';
        break;
      case 'skip':
        item.outcome = 'skipped';
        break;
    }
  } catch (err) {
    if (err instanceof Skip) {
      item.outcome = 'skipped';
      item.detail = `${a.detail}; skipped: ${err.message}`;
    } else {
      item.outcome = 'failed';
      changing = isChangedWhileRead(err);
      const msg = messageOf(err);
      item.detail = `${a.detail}; failed: ${msg}${isSysprimeError(err) && err.hint ? ` (${err.hint})` : ''}`;
    }
  }
  return { item, changing };
}
