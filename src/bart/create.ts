/**
 * bart create: walk the tree the rules select, one lstat per entry, stay on
 * the filesystem each walk starts on, hash regular files in worker threads,
 * and reuse the digests of a previous manifest for files whose inode, size,
 * mtime and ctime have not moved.
 *
 * Problems with single files (vanished, unreadable) are warnings: the
 * manifest is still written and the status is 1, as Solaris does.
 */
import { lstatSync, readdirSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { SysprimeError, errnoOf } from '../errors.js';
import { makeHeader, sortEntries } from './format.js';
import { HashPool } from './hash-pool.js';
import { loadHashers } from './hash.js';
import { readAcls, readXattrs } from './metadata.js';
import { ATTR, decide, defaultRules, enter, rootContext, shouldDescend, splitComponents, walkRoots, type Rules, type WalkContext } from './rules.js';
import { toFsPath, type EntryType, type HashAlgorithm, type Manifest, type ManifestEntry } from './types.js';

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
}

const S_IFMT = 0o170000;

function typeOf(mode: number): EntryType | undefined {
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

/** Run `work` with a hash pool that is always shut down. */
async function withPool<T>(alg: HashAlgorithm, threads: number, work: (pool: HashPool) => Promise<T>): Promise<T> {
  const pool = new HashPool(alg, threads);
  try {
    return await work(pool);
  } finally {
    await pool.close();
  }
}

/** The root as a byte string without a trailing slash ('' for '/'). */
function rootPrefix(root: string): string {
  let st: Stats;
  const abs = resolve(root);
  try {
    st = statSync(abs);
  } catch (err) {
    throw new SysprimeError('USAGE', `-R ${root}: ${errnoOf(err) === 'ENOENT' ? 'no such directory' : (err as Error).message}`, { hint: 'give the directory the manifest should describe' });
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
  /** Entries whose rule checks acl / xattr: only those are looked up. */
  const wantAcl: ManifestEntry[] = [];
  const wantXattr: ManifestEntry[] = [];
  let hashed = 0;
  let reused = 0;
  const threads = opts.threads ?? Math.max(1, Math.min(availableParallelism(), 8));

  const collectMetadata = () =>
    Promise.all([
      wantAcl.length > 0
        ? readAcls(wantAcl.map((e) => prefix + e.path)).catch((err: Error) => (warn(`ACLs not collected: ${err.message}`), new Map<string, string>()))
        : new Map<string, string>(),
      wantXattr.length > 0
        ? readXattrs(wantXattr.map((e) => prefix + e.path), alg).catch((err: Error) => (warn(`extended attributes not collected: ${err.message}`), new Map<string, Record<string, string>>()))
        : new Map<string, Record<string, string>>(),
    ]);

  const metadataDone = await withPool(alg, threads, async (pool) => {
    const record = (path: string, st: Stats, type: EntryType, flags: number): ManifestEntry => {
      const e: ManifestEntry = {
        path,
        type,
        size: st.size,
        mode: st.mode,
        acl: '-',
        mtime: Math.floor(st.mtimeMs / 1000),
        uid: st.uid,
        gid: st.gid,
        stat: { dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs },
      };
      if (type === 'F') {
        if (opts.noContents || (flags & ATTR.contents) === 0) e.contents = '-';
        else {
          const prev = previous.get(path);
          const ps = prev?.stat;
          if (ps !== undefined && ps.ino === st.ino && ps.dev === st.dev && prev!.size === st.size && ps.mtimeMs === st.mtimeMs && ps.ctimeMs === st.ctimeMs) {
            e.contents = prev!.contents!;
            reused++;
          } else {
            hashed++;
            e.contents = '-';
            pool.add(prefix + path, st.size, (digest, error) => {
              if (digest !== null) e.contents = digest;
              else warn(`${prefix + path}: ${error ?? 'cannot be read'}`);
            });
          }
        }
      } else if (type === 'L') {
        try {
          e.dest = readlinkSync(toFsPath(prefix + path), { encoding: 'latin1' });
        } catch (err) {
          e.dest = '-';
          warn(`${prefix + path}: ${(err as Error).message}`);
        }
      } else if (type === 'B' || type === 'C') e.devnode = st.rdev;
      if (flags & ATTR.acl && type !== 'L' && opts.acl !== false) wantAcl.push(e);
      if (flags & ATTR.xattr) wantXattr.push(e);
      entries.push(e);
      return e;
    };

    if (opts.files !== undefined) {
      for (const f of opts.files) {
        const path = '/' + splitComponents(f).join('/');
        const st = lstatSync(toFsPath(prefix + path), { throwIfNoEntry: false });
        if (st === undefined) {
          warn(`${prefix + path}: No such file or directory`);
          continue;
        }
        const type = typeOf(st.mode);
        if (type === undefined) warn(`${prefix + path}: unsupported file type, ignored`);
        else record(path, st, type, rules.rules[rules.rules.length - 1]!.flags);
      }
    } else {
      await walk(rules, prefix, record, warn);
    }
    // ACLs and xattrs come from other processes: let them run while the workers hash.
    const metadata = collectMetadata();
    await pool.drain();
    return metadata;
  });
  const [acls, xattrs] = await metadataDone;
  for (const e of wantAcl) {
    const a = acls.get(prefix + e.path);
    if (a !== undefined) e.acl = a;
  }
  for (const e of wantXattr) {
    const x = xattrs.get(prefix + e.path);
    if (x !== undefined) e.xattrs = x;
  }

  sortEntries(entries);
  const unique = entries.filter((e, i) => i === 0 || e.path !== entries[i - 1]!.path);
  const header = makeHeader(alg, prefix === '' ? '/' : prefix);
  if (wantXattr.length > 0) header.xattrs = true;
  return { manifest: { header, entries: unique }, status: warnings.length > 0 ? 1 : 0, warnings, hashed, reused };
}

type Recorder = (path: string, st: Stats, type: EntryType, flags: number) => ManifestEntry;

interface Pending {
  path: string;
  comps: string[];
  ctx: WalkContext;
}

const YIELD_EVERY = 4096;

/** Depth-first walk of every subtree the rules name. */
async function walk(rules: Rules, prefix: string, record: Recorder, warn: (m: string) => void): Promise<void> {
  let sinceYield = 0;
  for (const start of walkRoots(rules)) {
    const comps = splitComponents(start);
    let ctx = rootContext(rules);
    for (const c of comps) ctx = enter(ctx, c);
    const full = prefix + (start === '/' ? '' : start) || '/';
    const st = lstatSync(toFsPath(full), { throwIfNoEntry: false });
    if (st === undefined) {
      warn(`${full}: subtree does not exist, ignored`);
      continue;
    }
    const dev = st.dev;
    const type = typeOf(st.mode);
    if (type === undefined) continue;
    const rule = decide(ctx, comps, type);
    if (rule !== undefined && rule.flags !== 0) record(start, st, type, rule.flags);
    if (type !== 'D' || !shouldDescend(ctx, comps)) continue;

    const stack: Pending[] = [{ path: start === '/' ? '' : start, comps, ctx }];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      let names: string[];
      try {
        names = readdirSync(toFsPath(prefix + dir.path || '/'), { encoding: 'latin1' });
      } catch (err) {
        warn(`${prefix + dir.path || '/'}: ${(err as Error).message}`);
        continue;
      }
      const needComps = dir.ctx.pending.length > 0 || dir.ctx.active.some((r) => r.modifiers.length > 0);
      for (const name of names) {
        const path = dir.path + '/' + name;
        const cst = lstatSync(toFsPath(prefix + path), { throwIfNoEntry: false });
        if (cst === undefined) {
          warn(`${prefix + path}: vanished during the walk`);
          continue;
        }
        const ctype = typeOf(cst.mode);
        if (ctype === undefined) {
          warn(`${prefix + path}: unsupported file type, ignored`);
          continue;
        }
        const cctx = dir.ctx.pending.length > 0 ? enter(dir.ctx, name) : dir.ctx;
        const ccomps = needComps ? [...dir.comps, name] : dir.comps;
        const crule = decide(cctx, ccomps, ctype);
        if (crule !== undefined && crule.flags !== 0) record(path, cst, ctype, crule.flags);
        if (ctype === 'D' && cst.dev === dev && shouldDescend(cctx, ccomps)) stack.push({ path, comps: needComps ? ccomps : [...dir.comps, name], ctx: cctx });
      }
      sinceYield += names.length;
      if (sinceYield >= YIELD_EVERY) {
        // Let finished hash batches come back and new ones go out.
        sinceYield = 0;
        await yieldToLoop();
      }
    }
  }
}
