/**
 * Drift: an environment as it is now against the pristine snapshot of its
 * generation, through the rules. Both sides are BART manifests; the pristine
 * one is made once per snapshot and kept, the live one is made
 * incrementally from the last one kept for that environment.
 */
import type { Context } from '../context.js';
import type { EnvironmentInfo } from '../backends/types.js';
import { compareManifests, createManifest, displayPath, sortEntries, type Difference, type EntryLookup, type Manifest, type ManifestEntry } from '../bart/index.js';
import { SysprimeError, messageOf } from '../errors.js';
import { log } from '../log.js';
import { keptManifestEvidence, loadManifest, loadManifestLookup, manifestSubject, saveManifest, verifyKeptManifest, type KeptManifestEvidence } from '../state/manifests.js';
import { recordDriftRun, runsOfPath, verifyDriftRuns, type ChangeKind, type DriftPathInRun } from '../state/drift-runs.js';
import { readEitherHalf, readPublicKey, type PrivateSigningKey, type PublicSigningKey } from '../signing/keys.js';
import { auditSigner } from '../signing/audit.js';
import { findEnvironment, currentEnvironment } from '../environments/lifecycle.js';
import { loadRules, type LoadedRules } from './rules.js';
import { ruleFor } from '../bart/rules.js';
import { describeContent, secretPatterns, secretReason, type ContentChange } from './content.js';
import { storeFactsOf } from '../updaters/store/verify.js';
import { packageOwners } from './packages.js';
import { asManifestPath, atRiskPaths, isBelowAny, sharedDataOf } from '../environments/shared.js';
import { BESIDE_FAILED, liveManifestFromChanges, pristineManifestFromChanges, settled, type FastPathResult } from './changes.js';
import { mountsAtOrBelow, readMountinfo, type MountinfoEntry } from '../os/mounts.js';
import { realpath } from 'node:fs/promises';

export type { ChangeKind };

const TYPE_LABELS: Record<string, string> = {
  F: 'file',
  D: 'directory',
  L: 'symlink',
  P: 'FIFO',
  S: 'socket',
  B: 'block device',
  C: 'character device',
  O: 'door',
};

/** What an entry is, in words, for the text and the page: a FIFO or a device is not a "file". */
export function typeLabel(type: string): string {
  return TYPE_LABELS[type] ?? type;
}

export interface DriftItem {
  /** Byte-string path (latin1), as in manifests. */
  path: string;
  /** The path for people. */
  display: string;
  change: ChangeKind;
  /** Entry type after the change (before, for removed). */
  type: string;
  /** Attributes that differ, in bart_rules(4) words. */
  attributes: string[];
  details: { name: string; before: string; after: string }[];
  /** The package that owns the path in the environment (dpkg, or the store updater's), if any. */
  package: string | null;
  /**
   * A file of a store-built /usr: the other paths that share its store
   * object (one inode), which an edit in place changed as well; absent otherwise.
   */
  sharedWith?: string[];
  content: ContentChange | null;
  /**
   * Digest of the content now, to tell later changes apart in the history.
   * Null for a secret file unless asked for (`showSecrets`): a digest of
   * /etc/shadow lets whoever reads the report test guesses offline.
   */
  contents: string | null;
  /** Why this file's content (diff and digest) stays out of reports, or null when it need not. */
  secret: string | null;
}

export interface DriftReport {
  environment: string;
  generation: number;
  pristine: string;
  at: string;
  rules: string;
  hash: string;
  /** The admin's changes: what drift is about, and what the counts and the exit status say. */
  counts: { added: number; removed: number; modified: number };
  items: DriftItem[];
  /**
   * Users' files below the shared paths inside the environment's root
   * filesystem that the rules leave out (docs/shared-data.md): compared so
   * they can be carried into new environments, listed apart so they do not
   * bury the admin's changes.
   */
  sharedData: { paths: string[]; items: DriftItem[] };
  /**
   * The kept manifests compared, for an audit off the machine: the sha256 of
   * each and its signature line by the [audit] key (null when unsigned).
   */
  manifests: { pristine: KeptManifestEvidence | null; live: KeptManifestEvidence | null };
  /** Set by --verify: the key the baseline and the history were checked with, and how many runs. */
  verified: { key: string; runs: number } | null;
}

const AUDIT_TRUST = '[audit] key or trusted_keys';

/** The [audit] key, either half, for checking; undefined when none is set. A key set but unreadable is an error, never skipped. */
function auditKey(ctx: Context): { public: PublicSigningKey; private: PrivateSigningKey | undefined } | undefined {
  const path = ctx.config.audit.key;
  return path === undefined ? undefined : readEitherHalf(path);
}

const KIND: Record<Difference['kind'], ChangeKind> = { add: 'added', delete: 'removed', modify: 'modified' };

export interface ManifestPair {
  pristine: Manifest;
  live: Manifest;
  rules: LoadedRules;
}

/** A pristine manifest already at hand (its snapshot's current identity, these rules and hash). */
export interface KnownPristine {
  generation: number;
  manifest: Manifest;
}

/**
 * The manifest of a generation's pristine snapshot: made once and kept, since
 * the snapshot is read-only (its identity includes the rules and the hash).
 * It is made from the kept manifest of an older generation when the
 * filesystem lists what changed between the two snapshots (drift/changes.ts),
 * by a walk otherwise. `known` saves loading a kept manifest again.
 */
export async function pristineManifest(
  ctx: Context,
  generation: number,
  pristineId: string,
  path: string,
  rules: LoadedRules,
  known: readonly KnownPristine[] = [],
): Promise<Manifest> {
  const hash = ctx.config.bart.hash;
  const subject = manifestSubject.pristine(generation);
  const identity = `${pristineId}|${rules.digest}|${hash}`;
  const kept = loadManifest(ctx.db, subject, identity);
  if (kept) return kept;
  let made = await pristineFromOlder(ctx, generation, path, rules, known);
  if (made === undefined) {
    made = (await createManifest({ root: path, rules: rules.rules, hash, onWarning: (w) => log.warn(w) })).manifest;
    log.debug(`manifest of the pristine snapshot of generation ${generation}: walked`);
  }
  // Signed when the machine holds a private half that can sign; otherwise it stays unsigned (never a reason to stop
  // staging or drift), and --verify refuses it.
  saveManifest(ctx.db, ctx.config.state.dir, subject, identity, made, auditSigner(ctx.config.audit.key));
  return made;
}

/**
 * A new pristine snapshot's manifest from the newest older generation whose
 * manifest is kept and whose snapshot it descends from; undefined when there
 * is none (or `SYSPRIME_DRIFT_METHOD=walk`), and the caller walks.
 */
async function pristineFromOlder(ctx: Context, generation: number, path: string, rules: LoadedRules, known: readonly KnownPristine[]): Promise<Manifest | undefined> {
  if (liveMethod() === 'walk' || ctx.backend.changesBetweenPristines === undefined) return undefined;
  const hash = ctx.config.bart.hash;
  const older = (await ctx.backend.listPristines()).filter((p) => p.generation < generation).sort((a, b) => b.generation - a.generation);
  for (const p of older) {
    const manifest = known.find((k) => k.generation === p.generation)?.manifest ?? loadManifest(ctx.db, manifestSubject.pristine(p.generation), `${p.id}|${rules.digest}|${hash}`);
    if (manifest === undefined) continue;
    const fast = await pristineManifestFromChanges({
      backend: ctx.backend,
      older: { generation: p.generation, manifest },
      newer: { generation, path },
      rules: rules.rules,
      hash,
      onWarning: (w) => log.warn(w),
    }).catch((err: unknown): FastPathResult => ({ ok: false, reason: messageOf(err) }));
    if (fast.ok) {
      log.debug(
        `manifest of the pristine snapshot of generation ${generation} from ${fast.source}: ${fast.listed} changes listed, ${fast.result.reread} entries read again, ${fast.result.hashed} files hashed, ${fast.result.reused} digests reused`,
      );
      return fast.result.manifest;
    }
    log.debug(`manifest of the pristine snapshot of generation ${generation}: not from generation ${p.generation}'s (${fast.reason})`);
  }
  return undefined;
}

/** How the live manifest is made: `SYSPRIME_DRIFT_METHOD` (see docs/drift.md). */
export type LiveMethod = 'auto' | 'walk' | 'changes';

export function liveMethod(env: NodeJS.ProcessEnv = process.env): LiveMethod {
  const v = env['SYSPRIME_DRIFT_METHOD'];
  if (v === undefined || v === '' || v === 'auto') return 'auto';
  if (v === 'walk' || v === 'changes') return v;
  throw new SysprimeError('USAGE', `SYSPRIME_DRIFT_METHOD=${v} is not one of auto, walk, changes`, { hint: 'unset it, or use auto' });
}

/** The pristine side, for the fast path: its generation, its manifest and where its tree is. */
export interface PristineSide {
  generation: number;
  manifest: Manifest;
  path: string;
}

/**
 * The manifest of an environment as it is now. With the pristine side given
 * and a filesystem that lists its changes, only the listed paths are read
 * (drift/changes.ts); otherwise, or when that fails, the tree is walked,
 * incrementally from the last manifest kept for the environment. Both give
 * the same manifest.
 */
export async function liveManifest(
  ctx: Context,
  name: string,
  path: string,
  rules: LoadedRules,
  pristine?: PristineSide,
  /**
   * after: the filesystem's listing of changes may start at once, but the
   * manifest is made (or the tree walked) only once this has settled (see
   * FastPathInput.after).
   */
  opts: { hashEverything?: boolean; after?: Promise<unknown> } = {},
): Promise<Manifest> {
  const hash = ctx.config.bart.hash;
  const subject = manifestSubject.environment(name);
  const identity = `${rules.digest}|${hash}`;
  // The kept live manifest is never signed: when the result must be trusted (--verify) it seeds nothing, and
  // no digest is taken from the pristine side or a list of changes either: every file is read and hashed.
  const hashEverything = opts.hashEverything === true;
  // Found by path, not parsed whole: the fast path takes only the digests of the paths it reads again.
  // Loaded when needed (after `opts.after`): its bytes are tens of MB on a large root.
  let previous: EntryLookup | undefined;
  const kept = (): EntryLookup | undefined => (previous ??= hashEverything ? undefined : loadManifestLookup(ctx.db, subject, identity));
  const method = liveMethod();
  let made: Manifest | undefined;
  if (hashEverything) {
    if (method === 'changes') log.debug(`manifest of ${name}: walking the tree, as --verify hashes every file (SYSPRIME_DRIFT_METHOD=changes not used)`);
  } else if (pristine !== undefined && method !== 'walk') {
    const fast = await liveManifestFromChanges({
      backend: ctx.backend,
      name,
      generation: pristine.generation,
      pristine: { manifest: pristine.manifest, path: pristine.path },
      live: path,
      rules: rules.rules,
      hash,
      previous: kept,
      ...(opts.after ? { after: opts.after } : {}),
      onWarning: (w) => log.warn(w),
    }).catch((err: unknown): FastPathResult => ({ ok: false, reason: messageOf(err) }));
    if (fast.ok) {
      made = fast.result.manifest;
      // The kept bytes the lookup holds (the last live manifest and its index, tens of MB) are not needed any more.
      previous?.release();
      previous = undefined;
      log.debug(`manifest of ${name} from ${fast.source}: ${fast.listed} changes listed, ${fast.result.reread} entries read again, ${fast.result.hashed} files hashed, ${fast.result.reused} digests reused`);
    } else if (method === 'changes') {
      throw new SysprimeError('BACKEND', `drift of ${name} cannot use the filesystem's list of changes: ${fast.reason}`, {
        hint: 'unset SYSPRIME_DRIFT_METHOD to let drift walk the tree',
      });
    } else log.debug(`manifest of ${name}: walking the tree (${fast.reason})`);
  } else if (method === 'changes') {
    throw new SysprimeError('BACKEND', `drift of ${name} cannot use the filesystem's list of changes here`, { hint: 'unset SYSPRIME_DRIFT_METHOD' });
  }
  if (made === undefined) {
    // No walk of the whole tree for a run already failing beside it.
    if (!(await settled(opts.after))) throw new SysprimeError('STATE', BESIDE_FAILED);
    const seed = wholeOf(kept(), name);
    // The lookup holds the kept bytes: not needed beside the parsed entries during the walk.
    previous?.release();
    previous = undefined;
    const walked = await createManifest({ root: path, rules: rules.rules, hash, ...(seed ? { previous: seed } : {}), onWarning: (w) => log.warn(w) });
    log.debug(`manifest of ${name}: ${walked.hashed} files hashed, ${walked.reused} digests reused`);
    made = walked.manifest;
  }
  if (pristine !== undefined) {
    const table = await readMountinfo();
    made = settleMountPoints(made, pristine.manifest, mountPointsBelow(table, await realpath(path)), mountPointsBelow(table, await realpath(pristine.path)));
  }
  saveManifest(ctx.db, ctx.config.state.dir, subject, identity, made);
  return made;
}

/** Every entry of the kept manifest, for the walk, which looks up every file; undefined (and a warning) when it is unusable. */
function wholeOf(previous: EntryLookup | undefined, name: string): Manifest | undefined {
  try {
    return previous?.manifest();
  } catch (err) {
    log.warn(`saved manifest of ${name} is unusable (${messageOf(err)}); hashing every file`);
    return undefined;
  }
}

/**
 * A directory of the environment with another filesystem mounted on it
 * (`rpool/home/root` at /root on the OpenZFS guide's layout, when the
 * running system is walked through `/`) shows the mounted filesystem's root
 * in a walk: its mode, owner and times, not the environment's own directory,
 * which is hidden below the mount (a walk does not go on into the mounted
 * filesystem, as it stays on one device). That is not drift of the
 * environment: every such directory would read as changed forever (0755 in
 * the pristine snapshot, 0700 live), and the filesystem's own list of
 * changes (`zfs diff`) rightly does not name it. So such a directory keeps
 * the pristine state's entry; only its place in the side index is the walk's.
 * Mount points are what the kernel's mount table says is mounted below the
 * tree, not a change of device: the root of a nested Btrfs subvolume is the
 * environment's own directory, and a change of it is drift.
 */
export function settleMountPoints(live: Manifest, pristine: Manifest, mountPoints: ReadonlySet<string>, pristineMountPoints: ReadonlySet<string> = new Set()): Manifest {
  if (mountPoints.size === 0 && pristineMountPoints.size === 0) return live;
  const before = new Map<string, ManifestEntry>();
  for (const e of pristine.entries) if (e.type === 'D' && (mountPoints.has(e.path) || pristineMountPoints.has(e.path))) before.set(e.path, e);
  let changed = false;
  const seen = new Set<string>();
  const entries = live.entries.map((e) => {
    if (!before.has(e.path)) return e;
    seen.add(e.path);
    if (e.type !== 'D' || !mountPoints.has(e.path)) return e;
    changed = true;
    const own = before.get(e.path)!;
    return e.stat === undefined ? own : { ...own, stat: e.stat };
  });
  // A mount point of the pristine tree the live tree lacks: the pristine
  // tree was opened with the environment's boot dataset mounted at /boot,
  // while nothing is mounted there in the live tree, whose directory ZFS
  // removed on unmount (libzfs removes the mount points it made). The
  // directory is the mount's, not the admin's: reading it as deleted would
  // have reintegration remove the new environment's mounted /boot.
  for (const [path, e] of before) {
    if (seen.has(path) || !pristineMountPoints.has(path) || !hasParent(live, path)) continue;
    entries.push(e);
    changed = true;
  }
  return changed ? { ...live, entries: sortEntries(entries) } : live;
}

/** Whether the live manifest holds the parent directory of `path` (a mount point is only put back where its parent is). */
function hasParent(live: Manifest, path: string): boolean {
  const parent = path.slice(0, path.lastIndexOf('/')) || '/';
  return parent === '/' || live.entries.some((e) => e.path === parent && e.type === 'D');
}

/** The mount points strictly below `tree`, spelled as manifest paths (the bytes of their UTF-8, one latin1 character each). */
export function mountPointsBelow(table: readonly MountinfoEntry[], tree: string): Set<string> {
  const root = tree.replace(/(.)\/+$/, '$1');
  const out = new Set<string>();
  for (const m of mountsAtOrBelow(table, root)) {
    if (m.mountPoint === root) continue;
    out.add(Buffer.from(root === '/' ? m.mountPoint : m.mountPoint.slice(root.length), 'utf8').toString('latin1'));
  }
  return out;
}

/**
 * Manifests of the pristine snapshot of an environment's generation and of
 * the environment now. `verified` is the pristine manifest whose signature
 * was just checked: it is used as checked, and the live side is then made
 * from the tree alone (no unsigned cache seeds it).
 */
export async function manifestsOf(
  ctx: Context,
  env: EnvironmentInfo,
  trees: { pristine: string; live: string },
  atRisk: readonly string[] = [],
  verified?: Manifest,
): Promise<ManifestPair> {
  const rules = loadRules(ctx.config, atRisk);
  const pristine = verified ?? (await pristineManifest(ctx, env.generation, env.pristine ?? '', trees.pristine, rules));
  const live = await liveManifest(ctx, env.name, trees.live, rules, { generation: env.generation, manifest: pristine, path: trees.pristine }, { hashEverything: verified !== undefined });
  return { pristine, live, rules };
}

/**
 * A directory's size is the filesystem's bookkeeping (Btrfs counts the
 * lengths of its entries' names; ZFS its entries): the entries that came or
 * went are reported themselves. bart_rules(4) cannot say "directories only"
 * (a trailing / matches what is inside), so drift drops it here.
 */
export function withoutDirectorySize(diffs: Difference[]): Difference[] {
  const out: Difference[] = [];
  for (const d of diffs) {
    if (d.kind === 'modify' && d.control?.type === 'D' && d.test?.type === 'D') {
      const attributes = d.attributes.filter((a) => a.name !== 'size');
      if (attributes.length > 0) out.push({ ...d, attributes });
    } else out.push(d);
  }
  return out;
}

export interface DriftOptions {
  /** Describe content changes (diffs); false for the daemon's record. */
  content?: boolean;
  /** Show the content of files only root may read, and of `[drift] secret` paths. */
  showSecrets?: boolean;
  /**
   * Before anything is compared, check the signature of the kept baseline
   * manifest and of the whole drift history against [audit] key.
   */
  verify?: boolean;
}

export async function computeDrift(ctx: Context, name?: string, opts: DriftOptions = {}): Promise<DriftReport> {
  const env = name === undefined ? await currentEnvironment(ctx) : await findEnvironment(ctx, name);
  if (env.pristine === null) {
    throw new SysprimeError('NOT_FOUND', `the pristine snapshot of generation ${env.generation} (of "${env.name}") is missing; drift cannot be computed`, {
      hint: 'run `sysprime doctor`',
    });
  }
  const live = await ctx.backend.openEnvironment(env.name);
  try {
    const pristine = await ctx.backend.openPristine(env.generation);
    try {
      const atRisk = atRiskPaths(await sharedDataOf(ctx, env.name, live.path));
      // Listed apart: the shared paths the rules themselves leave out (with the shipped rules /home, /var/log, /var/spool,
      // /var/mail). Those the rules check anyway (/root, /srv) were the admin's drift before and stay in it.
      const plain = loadRules(ctx.config).rules;
      const apart = atRisk.filter((p) => (ruleFor(plain, asManifestPath(p), 'D')?.flags ?? 0) === 0);
      const sharedBytes = apart.map(asManifestPath);
      let verified: DriftReport['verified'] = null;
      let baseline: Manifest | undefined;
      if (opts.verify === true) {
        const key = auditKey(ctx);
        if (key === undefined) {
          throw new SysprimeError('CONFIG', 'drift --verify needs [audit] key: without it there is nothing to check the baseline against', {
            hint: 'set [audit] key in sysprime.toml to the machine key (or only its public half, NAME.pub); see docs/signing.md',
          });
        }
        // Checked before manifestsOf, which would make (and sign) a baseline that is missing.
        const identity = `${env.pristine}|${loadRules(ctx.config, atRisk).digest}|${ctx.config.bart.hash}`;
        // The earlier keys of a rotation still vouch for what they signed; what is signed from now on is the new key's.
        const keys = [key.public, ...ctx.config.audit.trustedKeys.map((p) => readPublicKey(p))];
        const checked = verifyKeptManifest(ctx.db, manifestSubject.pristine(env.generation), identity, keys, AUDIT_TRUST);
        baseline = checked.manifest;
        verified = { key: checked.key.id, runs: verifyDriftRuns(ctx.db, keys, AUDIT_TRUST) };
      }
      const pair = await manifestsOf(ctx, env, { pristine: pristine.path, live: live.path }, atRisk, baseline);
      const diffs = withoutDirectorySize(compareManifests(pair.pristine, pair.live, pair.rules.rules));
      const owners = await packageOwners(live.path, diffs.map((d) => d.path));
      const store = await storeFactsOf(live.path, diffs.map((d) => d.path));
      const secret = secretPatterns(ctx.config.drift.secret);
      const byPath = new Map<string, ManifestEntry>();
      // A directory's mode on either side decides: what others could enter before or now.
      const entryOf = (p: string): ManifestEntry | undefined => {
        if (byPath.size === 0) {
          for (const e of pair.pristine.entries) if (e.type === 'D') byPath.set(e.path, e);
          for (const e of pair.live.entries) if (e.type === 'D' && (byPath.get(e.path)?.mode ?? 0o777) & 0o001) byPath.set(e.path, e);
        }
        return byPath.get(p);
      };
      const items: DriftItem[] = diffs.map((d) => {
        const entry = d.test ?? d.control!;
        const reason = d.control?.type !== 'F' && d.test?.type !== 'F' ? null : secretReason(d, entryOf, secret);
        // A secret's digests are its content too: out of the item, in every format, unless asked for.
        const hide = reason !== null && opts.showSecrets !== true;
        const item: DriftItem = {
          path: d.path,
          display: displayPath(d.path),
          change: KIND[d.kind],
          type: entry.type,
          attributes: [...new Set(d.attributes.map((a) => (a.name === 'xattr' && a.xattr ? `xattr:${a.xattr}` : a.name)))],
          details: d.attributes
            .filter((a) => !(hide && a.name === 'contents'))
            .map((a) => ({ name: a.xattr ? `xattr:${a.xattr}` : a.name, before: a.control, after: a.test })),
          package: owners.get(d.path) ?? store.get(d.path)?.package ?? null,
          content: null,
          contents: d.test?.type === 'F' && !hide ? (d.test.contents ?? null) : null,
          secret: reason,
        };
        const shared = store.get(d.path)?.sharedWith ?? [];
        if (shared.length > 0) item.sharedWith = shared.map(displayPath);
        if (opts.content !== false) item.content = hide ? { kind: 'hidden', reason: reason! } : describeContent(d, pristine.path, live.path);
        return item;
      });
      const admin = items.filter((i) => !isBelowAny(i.path, sharedBytes));
      const counts = { added: 0, removed: 0, modified: 0 };
      for (const i of admin) counts[i.change]++;
      return {
        environment: env.name,
        generation: env.generation,
        pristine: env.pristine,
        at: new Date().toISOString(),
        rules: pair.rules.path,
        hash: ctx.config.bart.hash,
        counts,
        items: admin,
        sharedData: { paths: apart, items: items.filter((i) => isBelowAny(i.path, sharedBytes)) },
        manifests: {
          pristine: keptManifestEvidence(ctx.db, manifestSubject.pristine(env.generation)),
          live: keptManifestEvidence(ctx.db, manifestSubject.environment(env.name)),
        },
        verified,
      };
    } finally {
      await pristine.release();
    }
  } finally {
    await live.release();
  }
}

/** Keep the drift in the history, so `drift --history PATH` can say when a file changed. */
export function recordDrift(ctx: Context, report: DriftReport): number {
  // The history is shown by `drift --history` without --show-secrets: it never keeps a secret's digest,
  // so repeated content changes of such a file fold into one (its change and attributes still recorded).
  const items = report.items.map((i) => (i.secret === null ? i : { ...i, contents: null }));
  return recordDriftRun(ctx.db, { at: report.at, environment: report.environment, generation: report.generation, counts: report.counts }, items, auditSigner(ctx.config.audit.key));
}

export type HistoryRow = DriftPathInRun;

/**
 * The path's state in every recorded run of the environments it drifted in,
 * folded to the runs where something about it changed.
 */
export function driftHistory(ctx: Context, path: string): HistoryRow[] {
  const out: HistoryRow[] = [];
  const last = new Map<string, string>();
  for (const r of runsOfPath(ctx.db, path)) {
    const key = `${r.change}|${r.attributes.join(',')}|${r.contents}`;
    if (last.get(r.environment) === key) continue;
    if (!last.has(r.environment) && r.change === null) continue;
    last.set(r.environment, key);
    out.push(r);
  }
  return out;
}
