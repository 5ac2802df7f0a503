/**
 * Shared data: the paths whose contents are users' data and must be the same
 * in every environment (homes, spools, mail, logs, databases). Where such a
 * path is its own filesystem (a subvolume or dataset mounted apart from the
 * root) every environment mounts the same one and nothing needs doing. Where
 * it is a plain directory of the root filesystem, each environment has its
 * own copy: that path is *at risk*, and staging and the first boot carry its
 * files over from the running system (see docs/shared-data.md).
 *
 * classifySharedPaths is pure; sharedDataOf gathers its facts from the mount
 * table, the environment's fstab and the environment's tree.
 */
import { lstatSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { Config } from '../config/schema.js';
import type { Context } from '../context.js';
import { isAtOrBelow, parseFstab, parseMountinfo, type MountinfoEntry } from '../os/mounts.js';
import { readTextAt } from '../os/confined.js';
import { log } from '../log.js';
import { messageOf } from '../errors.js';

/** Built in; `[shared] paths` adds to them. */
const BUILTIN_SHARED_PATHS: readonly string[] = ['/home', '/root', '/var/spool', '/var/mail', '/var/log', '/srv', '/var/lib/postgresql', '/var/lib/mysql'];

export function sharedPathsOf(config: Config): string[] {
  return [...new Set([...BUILTIN_SHARED_PATHS, ...config.shared.paths])].sort();
}

export interface SharedPathState {
  path: string;
  /** `own`: its own filesystem, shared for real; `at-risk`: a directory of the root filesystem, copied at staging and first boot. */
  where: 'own' | 'at-risk';
  /** Why, for people. */
  why: string;
  /** At risk on this child dataset of the environment (zsys), not inside its root filesystem. */
  childAt?: string;
}

/** What a path is inside an environment's tree, links not followed. */
export type TreeKind = 'missing' | 'not-a-directory' | 'same-filesystem' | 'other-filesystem';

export interface SharedFacts {
  /** Mount points, as seen from inside the environment, of filesystems mounted on it now (its root aside). */
  mounted: readonly string[];
  /**
   * Those of them that are the environment's own: its child datasets (zsys),
   * cloned, renamed and destroyed with it, so every environment has its own.
   */
  parts?: readonly string[];
  /** Mount points the environment's /etc/fstab mounts at boot. */
  fstab: readonly string[];
  inTree(path: string): TreeKind;
}

/** Each shared path that is a directory of the environment: on its own filesystem or at risk. */
export function classifySharedPaths(paths: readonly string[], facts: SharedFacts): SharedPathState[] {
  const out: SharedPathState[] = [];
  const below = (list: readonly string[], p: string): string | undefined => list.find((m) => m !== '/' && isAtOrBelow(p, m));
  const parts = facts.parts ?? [];
  for (const path of paths) {
    const kind = facts.inTree(path);
    // A link is carried as a link by the rules that cover it; what it points at is judged where it is.
    if (kind === 'missing' || kind === 'not-a-directory') continue;
    const mounted = below(
      facts.mounted.filter((m) => !parts.includes(m)),
      path,
    );
    const inFstab = below(facts.fstab, path);
    const part = below(parts, path);
    // On a child dataset of the environment: another filesystem, but each environment's own copy of it.
    if (part !== undefined && mounted === undefined && inFstab === undefined) out.push({ path, where: 'at-risk', why: atRiskMessage(path, part), childAt: part });
    else if (mounted !== undefined) out.push({ path, where: 'own', why: `${mounted} is mounted apart from the root` });
    else if (inFstab !== undefined) out.push({ path, where: 'own', why: `/etc/fstab mounts ${inFstab} apart from the root` });
    else if (kind === 'other-filesystem') out.push({ path, where: 'own', why: 'it is a subvolume or dataset of its own' });
    else out.push({ path, where: 'at-risk', why: atRiskMessage(path) });
  }
  return out;
}

/**
 * The warning for paths at risk. Those inside the root filesystem are named
 * in one line, however many: on a root laid out by an installer that made
 * one subvolume for everything, each verb would otherwise repeat the same
 * advice once per path. One on a child dataset of the environment (zsys)
 * says which.
 */
export function atRiskMessage(paths: string | readonly string[], childAt?: string): string {
  const list = typeof paths === 'string' ? [paths] : paths;
  if (childAt !== undefined) {
    return `${list.join(', ')} is on ${childAt}, a child dataset of the environment that each environment has its own clone of: its files are copied into each new environment at staging and first boot; put it on its own subvolume/dataset to share it (see docs/shared-data.md)`;
  }
  if (list.length === 1) {
    return `${list[0]} is inside the root filesystem: its files are copied into each new environment at staging and first boot; put it on its own subvolume/dataset to share it (see docs/shared-data.md)`;
  }
  const named = `${list.slice(0, -1).join(', ')} and ${list[list.length - 1]}`;
  return `${named} are inside the root filesystem: their files are copied into each new environment at staging and first boot; put each on its own subvolume/dataset to share it (see docs/shared-data.md)`;
}

/** The warning lines for the paths at risk: one for all those inside the root filesystem, one for each on a child dataset. */
export function atRiskLines(states: readonly SharedPathState[]): string[] {
  const risky = states.filter((s) => s.where === 'at-risk');
  const inRoot = risky.filter((s) => s.childAt === undefined).map((s) => s.path);
  return [...(inRoot.length > 0 ? [atRiskMessage(inRoot)] : []), ...risky.filter((s) => s.childAt !== undefined).map((s) => s.why)];
}

export function atRiskPaths(states: readonly SharedPathState[]): string[] {
  return states.filter((s) => s.where === 'at-risk').map((s) => s.path);
}

/** A path as manifests spell it: the bytes of its UTF-8 form, one latin1 character each. */
export function asManifestPath(path: string): string {
  return Buffer.from(path, 'utf8').toString('latin1');
}

/** Whether a manifest path is at or below one of `paths` (manifest spelling). */
export function isBelowAny(path: string, paths: readonly string[]): boolean {
  return paths.some((p) => isAtOrBelow(path, p));
}

/** Walks the components without following a link, so an environment's link cannot point the check outside it. */
function treeKind(tree: string, path: string): TreeKind {
  let rootDev: number;
  try {
    rootDev = lstatSync(tree).dev;
  } catch {
    return 'missing';
  }
  let at = tree;
  let st;
  for (const c of path.split('/').filter((x) => x !== '')) {
    at = join(at, c);
    try {
      st = lstatSync(at);
    } catch {
      return 'missing';
    }
    if (!st.isDirectory()) return 'not-a-directory';
  }
  if (st === undefined) return 'not-a-directory';
  return st.dev === rootDev ? 'same-filesystem' : 'other-filesystem';
}

function fstabMountPoints(tree: string): string[] {
  try {
    return parseFstab(readTextAt(tree, '/etc/fstab') ?? '')
      .filter((e) => e.mountPoint.startsWith('/') && e.fsType !== 'swap' && !e.options.includes('noauto'))
      .map((e) => e.mountPoint.replace(/(.)\/+$/, '$1'));
  } catch {
    return [];
  }
}

/**
 * Mount points on the environment: the whole table when it is the running
 * root, else what is mounted below its tree. `parts` are those whose source
 * is a dataset below the environment's own (`<pool>/ROOT/<name>/var/spool`).
 */
function mountedOn(table: readonly MountinfoEntry[], tree: string, running: boolean, id: string | undefined): { mounted: string[]; parts: string[] } {
  const mounted: string[] = [];
  const parts: string[] = [];
  const add = (at: string, e: MountinfoEntry): void => {
    mounted.push(at);
    if (id !== undefined && e.source.startsWith(`${id}/`)) parts.push(at);
  };
  for (const e of table) {
    if (running && e.mountPoint !== '/') add(e.mountPoint, e);
    if (tree !== '/' && e.mountPoint !== tree && isAtOrBelow(e.mountPoint, tree)) add('/' + relative(tree, e.mountPoint), e);
  }
  return { mounted, parts };
}

/**
 * The shared paths of environment `name`, whose tree is at `tree`. The
 * running environment's mounts come from the kernel's table; any
 * environment's from its fstab and from its tree (a nested subvolume or a
 * child dataset is another filesystem there).
 */
export async function sharedDataOf(ctx: Context, name: string, tree: string, mountTable?: string): Promise<SharedPathState[]> {
  const env = (await ctx.backend.listEnvironments()).find((e) => e.name === name);
  const table = parseMountinfo(mountTable ?? (await readFile('/proc/self/mountinfo', 'utf8')));
  return classifySharedPaths(sharedPathsOf(ctx.config), {
    ...mountedOn(table, tree, env?.booted === true, env?.id),
    fstab: fstabMountPoints(tree),
    inTree: (p) => treeKind(tree, p),
  });
}

/** The same, opening the environment's tree for the time it takes. */
export async function sharedDataOfEnvironment(ctx: Context, name: string): Promise<SharedPathState[]> {
  const tree = await ctx.backend.openEnvironment(name);
  try {
    return await sharedDataOf(ctx, name, tree.path);
  } finally {
    await tree.release();
  }
}

/**
 * For the reporting verbs (status, doctor): a tree that cannot be opened
 * must not hide the rest of the report, so it is a warning here.
 */
export async function sharedPathsOrWarn(ctx: Context, name: string): Promise<SharedPathState[]> {
  try {
    return await sharedDataOfEnvironment(ctx, name);
  } catch (err) {
    log.warn(`cannot tell which shared paths of "${name}" are inside its root: ${messageOf(err)}`);
    return [];
  }
}
