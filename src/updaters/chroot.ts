/**
 * Entering a tree for a package manager, the way a clone must be entered:
 * kernel filesystems mounted inside it and nowhere else, no service allowed to
 * start, the host's resolver copied in only when asked, and everything put
 * back in reverse even when the command fails. The running system must not
 * notice: /run and /dev/shm are fresh tmpfs instances (a package script that
 * writes a pid file or a socket there must not reach the host's), /sys is
 * read-only, and the root is bind-mounted onto itself and made private first
 * so that nothing mounted below it propagates anywhere.
 */
import { chmod, lstat, mkdir, readFile, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { SysprimeError, errnoOf, messageOf } from '../errors.js';
import { log } from '../log.js';
import { run, runInteractive, type RunResult } from '../process/run.js';
import { stopProcessesIn } from '../process/reap.js';
import { isSelfBind, mountsAtOrBelow, readMountinfo, unmountOrder } from '../os/mounts.js';
import { joinInside, safeInside } from './rootpath.js';
import { lstatIn, readFileIn, readTextAt, removeEmptyDirIn, renameIn, unlinkIn, withDirIn, writeFileAt, writeFileIn } from '../os/confined.js';

export interface ChrootOptions {
  /** Copy the host's /etc/resolv.conf in for the duration (restored afterwards). */
  network?: boolean;
  /** Seconds before a command run in the chroot is stopped. */
  timeout?: number;
  /** Stream commands' output to ours. */
  verbose?: boolean;
}

export interface ChrootRunOptions {
  /** Added to the clean environment commands get (PATH, HOME, LC_ALL, SYSPRIME_CHROOT). */
  env?: Record<string, string>;
  /** Seconds; defaults to the session's. */
  timeout?: number;
  allowFailure?: boolean;
  input?: string;
}

export interface ChrootSession {
  readonly root: string;
  /** Runs argv chrooted into the root, with a clean environment. */
  run(argv: readonly string[], opts?: ChrootRunOptions): Promise<RunResult>;
  /** Runs argv chrooted into the root on sysprime's terminal (`sysprime shell`), with a clean environment; its exit status. */
  interactive(argv: readonly string[], env?: Record<string, string>): Promise<number>;
}

/** Suffix of the tree's own file while ours stands in its place. */
const SAVED_SUFFIX = '.sysprime-saved';
const POLICY_RC_D = 'usr/sbin/policy-rc.d';
const RESOLV_CONF = 'etc/resolv.conf';
const POLICY_SCRIPT = '#!/bin/sh\n# Installed by sysprime while it updates this tree: no service may start.\nexit 101\n';
const CHROOT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const DEFAULT_TIMEOUT_S = 3600;

interface MountStep {
  rel: string;
  args: (target: string) => string[];
  /** Mode for the directory if the tree lacks it. */
  mode: number;
}

/** In mount order; torn down in reverse. */
const MOUNTS: readonly MountStep[] = [
  { rel: 'dev', args: (t) => ['--bind', '--make-private', '/dev', t], mode: 0o755 },
  { rel: 'dev/pts', args: (t) => ['--bind', '--make-private', '/dev/pts', t], mode: 0o755 },
  { rel: 'dev/shm', args: (t) => ['-t', 'tmpfs', '-o', 'mode=1777,nosuid,nodev', '--make-private', 'sysprime-shm', t], mode: 0o1777 },
  { rel: 'proc', args: (t) => ['-t', 'proc', '-o', 'nosuid,nodev,noexec', '--make-private', 'proc', t], mode: 0o555 },
  { rel: 'sys', args: (t) => ['--bind', '--make-private', '-o', 'ro', '/sys', t], mode: 0o555 },
  { rel: 'run', args: (t) => ['-t', 'tmpfs', '-o', 'mode=755,nosuid,nodev', '--make-private', 'sysprime-run', t], mode: 0o755 },
];

/** The chroot points, for recovery: anything mounted at or below them under a root is ours. */
const OUR_POINTS = ['dev', 'proc', 'sys', 'run'] as const;

/**
 * The record, in the tree's root, of the directories a session created
 * because the tree lacked them (a bare tree has no /dev, /proc, /sys, /run,
 * usr/sbin): written durably before each is made, so that the recovery of a
 * session killed with -9 removes them as the session itself would have.
 */
const CREATED_RECORD = '.sysprime-chroot-created';
/** The only directories a session creates, and so the only ones a record may name. */
const CREATABLE: ReadonlySet<string> = new Set([...MOUNTS.map((m) => m.rel), 'usr', 'usr/sbin', 'etc']);

/** The directories a record names (an earlier session's, when it died), in the order they were made. */
function readCreatedRecord(root: string): string[] {
  const text = readTextAt(root, `/${CREATED_RECORD}`);
  return text === null ? [] : text.split('\n').filter((rel) => CREATABLE.has(rel));
}

function writeCreatedRecord(root: string, rels: readonly string[]): void {
  if (rels.length === 0) withDirIn(root, '/', { create: false }, (dir) => unlinkIn(dir, CREATED_RECORD));
  else writeFileAt(root, `/${CREATED_RECORD}`, `${rels.join('\n')}\n`, { mode: 0o600 });
}

/**
 * Removes the directories a session created, deepest first, each only when
 * empty (through the confined writer: never through a link the chroot put
 * in place), then the record; a directory that could not be removed for
 * another reason (still a mount point) stays in the record for a later
 * recovery. A directory something filled meanwhile is the tree's now.
 */
function removeCreatedDirs(root: string, rels: readonly string[], done: string[]): void {
  const left: string[] = [];
  for (const rel of [...rels].reverse()) {
    const { parent, name } = parentAndName(rel);
    try {
      if (withDirIn(root, parent, { create: false }, (dir) => removeEmptyDirIn(dir, name)) === true) done.push(`removed ${join(root, rel)}`);
    } catch (err) {
      log.debug(`could not remove ${join(root, rel)}: ${messageOf(err)}`);
      left.unshift(rel);
    }
  }
  writeCreatedRecord(root, left);
}

async function canonicalRoot(root: string): Promise<string> {
  let real: string;
  try {
    real = await realpath(root);
  } catch (err) {
    throw new SysprimeError('NOT_FOUND', `cannot enter ${root}: it does not exist`, { cause: err });
  }
  if (real === '/') {
    throw new SysprimeError('REFUSED', 'refusing to chroot into / (the running system)', {
      hint: 'give the mount point of the environment being staged',
    });
  }
  const st = await lstat(real);
  if (!st.isDirectory()) throw new SysprimeError('REFUSED', `cannot enter ${real}: not a directory`);
  return real;
}

/** Creates a directory inside root, checking that nothing on the way is a symlink; recorded in `created` and the tree's record first. */
async function ensureDirInside(root: string, rel: string, mode: number, created: string[]): Promise<string> {
  const path = await safeInside(root, rel);
  try {
    const st = await lstat(path);
    if (st.isSymbolicLink() || !st.isDirectory()) {
      throw new SysprimeError('REFUSED', `${path} is not a directory; nothing is mounted on it`, {
        hint: 'the tree must have real directories at /dev, /proc, /sys and /run',
      });
    }
    return path;
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
  if (!created.includes(rel)) created.push(rel);
  writeCreatedRecord(root, created);
  await mkdir(path, { mode });
  await chmod(path, mode);
  return path;
}

async function umountWithRetries(target: string): Promise<void> {
  for (let attempt = 1; attempt <= 5; attempt++) {
    const res = await run('umount', [target], { allowFailure: true, timeout: 60_000 });
    if (res.exitCode === 0) return;
    if (/not mounted|no mount point/i.test(res.stderr)) return;
    log.debug(`umount ${target} (attempt ${attempt}): ${res.stderr.trim()}`);
    await new Promise((r) => setTimeout(r, 200 * attempt));
  }
  log.warn(`${target} stays busy; detaching it lazily`);
  await run('umount', ['--lazy', target], { allowFailure: true, timeout: 60_000 });
}

/** The directory of `rel` below root and its last component, for the confined writer. */
function parentAndName(rel: string): { parent: string; name: string } {
  joinInside('/', rel);
  const at = rel.lastIndexOf('/');
  return { parent: at < 0 ? '/' : `/${rel.slice(0, at)}`, name: rel.slice(at + 1) };
}

/**
 * Puts our file in place of the tree's, keeping the tree's beside it to
 * restore. Every step goes through the confined writer: what runs in the
 * chroot can replace a directory with a link before the restore, and the
 * restore must not follow it to the host.
 */
async function substitute(root: string, rel: string, content: string | { copyFrom: string }, mode: number): Promise<() => Promise<void>> {
  const { parent, name } = parentAndName(rel);
  // The host's own file (its resolver), read as the host sees it.
  const data = typeof content === 'string' ? Buffer.from(content) : await readFile(content.copyFrom);
  const hadOwn = withDirIn(root, parent, { create: false }, (dir) => {
    const own = lstatIn(dir, name) !== undefined;
    if (own) renameIn(dir, name, name + SAVED_SUFFIX);
    try {
      writeFileIn(dir, name, data, mode);
    } catch (err) {
      if (own) renameIn(dir, name + SAVED_SUFFIX, name);
      throw err;
    }
    return own;
  });
  if (hadOwn === undefined) throw new SysprimeError('REFUSED', `${parent} is missing in ${root}, so ${rel} cannot be put in place`);
  return async () => {
    withDirIn(root, parent, { create: false }, (dir) => {
      unlinkIn(dir, name);
      if (hadOwn) renameIn(dir, name + SAVED_SUFFIX, name);
    });
  };
}

/** Puts back a file a crashed session left substituted. */
async function restoreSaved(root: string, rel: string, done: string[]): Promise<void> {
  const { parent, name } = parentAndName(rel);
  const restored = withDirIn(root, parent, { create: false }, (dir) => {
    if (lstatIn(dir, name + SAVED_SUFFIX) === undefined) return false;
    unlinkIn(dir, name);
    renameIn(dir, name + SAVED_SUFFIX, name);
    return true;
  });
  if (restored === true) done.push(`restored ${join(root, rel)}`);
}

async function verifyNothingLeft(root: string, baseline: ReadonlySet<number>): Promise<void> {
  let extra = mountsAtOrBelow(await readMountinfo(), root).filter((m) => !baseline.has(m.id));
  if (extra.length === 0) return;
  log.warn(`mounts left under ${root}: ${extra.map((m) => m.mountPoint).join(', ')}; detaching them lazily`);
  for (const m of unmountOrder(extra)) await run('umount', ['--lazy', m.mountPoint], { allowFailure: true, timeout: 60_000 });
  extra = mountsAtOrBelow(await readMountinfo(), root).filter((m) => !baseline.has(m.id));
  if (extra.length > 0) {
    throw new SysprimeError('IO', `could not unmount ${extra.map((m) => m.mountPoint).join(', ')}`, {
      hint: `stop what uses them, then run: umount -R ${root}`,
    });
  }
}

export async function withChroot<T>(rootPath: string, opts: ChrootOptions, fn: (session: ChrootSession) => Promise<T>): Promise<T> {
  const root = await canonicalRoot(rootPath);
  const baseline = new Set(mountsAtOrBelow(await readMountinfo(), root).map((m) => m.id));
  const undo: Array<{ what: string; fn: () => Promise<void> }> = [];
  // An earlier session that died left its record: its directories are removed with this one's.
  const createdDirs: string[] = readCreatedRecord(root);
  const defaultTimeout = opts.timeout ?? DEFAULT_TIMEOUT_S;

  // env -i: nothing of our own environment (TMPDIR, sockets of the host's session) reaches the tree.
  // SYSPRIME_CHROOT tells the environment's own sysprime where it runs: its apt hook stands aside
  // (environments/apt-hook.ts), or staging's apt in the clone would make environments of the running system.
  const chrootArgs = (argv: readonly string[], extra: Record<string, string> = {}): string[] => {
    if (argv.length === 0) throw new SysprimeError('USAGE', 'nothing to run in the chroot');
    const env = { PATH: CHROOT_PATH, HOME: '/root', LC_ALL: 'C.UTF-8', SYSPRIME_CHROOT: '1', ...extra };
    return ['-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), 'chroot', root, ...argv];
  };
  const session: ChrootSession = {
    root,
    interactive: (argv, env) => runInteractive('env', chrootArgs(argv, env)),
    run: (argv, runOpts = {}) => {
      const args = chrootArgs(argv, runOpts.env);
      return run('env', args, {
        timeout: (runOpts.timeout ?? defaultTimeout) * 1000,
        ...(runOpts.allowFailure ? { allowFailure: true } : {}),
        ...(runOpts.input === undefined ? {} : { input: runOpts.input }),
        ...(opts.verbose ? { inherit: true } : {}),
      });
    },
  };

  let failure: unknown;
  let result: T | undefined;
  try {
    await run('mount', ['--bind', '--make-private', root, root], { timeout: 60_000 });
    undo.push({ what: `unmount ${root}`, fn: () => umountWithRetries(root) });
    for (const step of MOUNTS) {
      const target = await ensureDirInside(root, step.rel, step.mode, createdDirs);
      await run('mount', step.args(target), { timeout: 60_000 });
      undo.push({ what: `unmount ${target}`, fn: () => umountWithRetries(target) });
    }
    undo.push({ what: 'stop processes left in the tree', fn: async () => void (await stopProcessesIn(root)) });

    await ensureDirInside(root, 'usr', 0o755, createdDirs);
    await ensureDirInside(root, 'usr/sbin', 0o755, createdDirs);
    // What an earlier session could not restore first: never saved as the tree's own file.
    const leftovers: string[] = [];
    await restoreFiles(root, leftovers);
    for (const line of leftovers) log.warn(`an earlier session in ${root} left its files: ${line}`);
    undo.push({ what: `restore ${POLICY_RC_D}`, fn: await substitute(root, POLICY_RC_D, POLICY_SCRIPT, 0o755) });
    if (opts.network) {
      await ensureDirInside(root, 'etc', 0o755, createdDirs);
      undo.push({ what: `restore ${RESOLV_CONF}`, fn: await substitute(root, RESOLV_CONF, { copyFrom: '/etc/resolv.conf' }, 0o644) });
    }
    result = await fn(session);
  } catch (err) {
    failure = err;
  }

  const teardownErrors: string[] = [];
  for (const step of undo.reverse()) {
    try {
      await step.fn();
    } catch (err) {
      teardownErrors.push(`${step.what}: ${messageOf(err)}`);
    }
  }
  try {
    await verifyNothingLeft(root, baseline);
  } catch (err) {
    teardownErrors.push(messageOf(err));
  }
  try {
    removeCreatedDirs(root, createdDirs, []);
  } catch (err) {
    teardownErrors.push(`remove the directories it created: ${messageOf(err)}`);
  }

  if (failure !== undefined) {
    for (const line of teardownErrors) log.error(`cleaning up ${root}: ${line}`);
    throw failure;
  }
  if (teardownErrors.length > 0) {
    throw new SysprimeError('IO', `could not clean up after running in ${root}`, {
      detail: teardownErrors.join('\n'),
      hint: `run: sysprime doctor, or umount -R ${root}`,
    });
  }
  return result as T;
}

/**
 * Undoes what a crashed withChroot left under `root`: processes still
 * running in it, kernel filesystems mounted on its /dev, /proc, /sys and /run,
 * the self-bind of the root, the substituted policy-rc.d and resolv.conf,
 * and the directories it created (CREATED_RECORD). Touches nothing else
 * (an environment's own nested mounts stay). Returns what it did, one line
 * per action.
 */
export async function recoverChroot(rootPath: string): Promise<string[]> {
  const root = await canonicalRoot(rootPath);
  const done: string[] = [];
  const stopped = await stopProcessesIn(root);
  if (stopped.length > 0) done.push(`stopped processes ${stopped.join(' ')}`);

  const mounts = await readMountinfo();
  const ours = mounts.filter((m) => OUR_POINTS.some((p) => m.mountPoint === join(root, p) || m.mountPoint.startsWith(`${join(root, p)}/`)));
  for (const m of unmountOrder(ours)) {
    await umountWithRetries(m.mountPoint);
    done.push(`unmounted ${m.mountPoint}`);
  }
  // Only the topmost mount at root can be unmounted by path; stop at the first that is not a self-bind.
  for (let i = 0; i < 8; i++) {
    const now = await readMountinfo();
    const atRoot = now.filter((m) => m.mountPoint === root);
    const top = atRoot.find((m) => !atRoot.some((other) => other.parent === m.id));
    if (top === undefined || !isSelfBind(top, now)) break;
    await umountWithRetries(root);
    done.push(`unmounted the self-bind of ${root}`);
  }
  await restoreFiles(root, done);
  // Once nothing is mounted on them: the directories it created where the tree had none.
  removeCreatedDirs(root, readCreatedRecord(root), done);
  return done;
}

/**
 * Puts back the files a session substituted and did not restore (a kill -9,
 * a power cut, a reboot while it ran): sysprime's policy-rc.d removed, the
 * tree's own policy-rc.d and resolv.conf back from their `.sysprime-saved`
 * copies. Left in place, a booted environment would start no service on
 * upgrades, and a second session would save sysprime's file as the tree's.
 */
async function restoreFiles(root: string, done: string[]): Promise<void> {
  const policy = parentAndName(POLICY_RC_D);
  const removedPolicy = withDirIn(root, policy.parent, { create: false }, (dir) => {
    if (readFileIn(dir, policy.name)?.toString('utf8') !== POLICY_SCRIPT) return false;
    return unlinkIn(dir, policy.name);
  });
  if (removedPolicy === true) done.push(`removed ${join(root, POLICY_RC_D)}`);
  await restoreSaved(root, POLICY_RC_D, done);
  await restoreSaved(root, RESOLV_CONF, done);
}
