/**
 * The environment verbs as a library: the CLI and the daemon call these; each
 * checks names and safety rules before the backend runs anything, and records
 * what it did in the state database's history.
 */
import type { Context } from '../context.js';
import type { EnvironmentInfo, ForeignRoot } from '../backends/types.js';
import { SysprimeError } from '../errors.js';
import { PRISTINE_STATE, checkName, checkSnapshotName, parseStateRef } from '../names.js';
import { importUnfinished, unfinishedBy } from '../staging/mark.js';
import { bootloaderFor, syncBootEntries } from './boot-entries.js';
import { homeInto, planBootHome, unitsInto } from './boot-home.js';
import { ensureStateHome } from './state-home.js';
import { BOOT_START_UNIT, bootPartitionOf, kernelsBeforeCopy, kernelsInto, refuseZfsBootPool } from './boot-kernels.js';
import { recoverOperations, runOperation, type Json, type OperationSpec } from '../state/journal.js';
import { recordEvent } from '../state/events.js';
import { log } from '../log.js';
import { recoverPrune } from './prune.js';
import { recoverImports } from './import-finish.js';
import { forgetManifestsOfGone } from './kept-manifests.js';
import { refuseOpenShell } from './shell-lock.js';
import { checkDescription, descriptionOf, isPinned, AUTO_KEY, DESCRIPTION_KEY, PIN_KEY, PIN_VALUE } from './annotations.js';
import { acquireLock, withLock } from '../state/lock.js';
import { faultPoint } from '../process/fault.js';
import * as fs from 'node:fs';

export async function listEnvironments(ctx: Context): Promise<EnvironmentInfo[]> {
  const envs = await ctx.backend.listEnvironments();
  return envs.sort((a, b) => a.created.getTime() - b.created.getTime() || a.name.localeCompare(b.name));
}

/** Roots beside the environments that another tool made: listed, never destroyed, renamed or pruned. */
export async function listForeignRoots(ctx: Context): Promise<ForeignRoot[]> {
  return (await ctx.backend.listForeign?.()) ?? [];
}

export async function findEnvironment(ctx: Context, name: string): Promise<EnvironmentInfo> {
  checkName(name);
  const env = (await ctx.backend.listEnvironments()).find((e) => e.name === name);
  const foreign = env ? undefined : (await listForeignRoots(ctx)).find((f) => f.name === name);
  if (foreign) {
    throw new SysprimeError('REFUSED', `"${name}" (${foreign.id}) was not made or adopted by sysprime${foreign.madeBy !== null ? ` (it is ${foreign.madeBy}'s)` : ''}: it is left as it is`, {
      hint: 'manage it with the tool that made it',
    });
  }
  if (!env) {
    throw new SysprimeError('NOT_FOUND', `no environment named "${name}" on ${ctx.backend.describe()}`, { hint: 'see `sysprime list`' });
  }
  return env;
}

/** The running environment; on a pool that holds no running root, its default one. */
export function currentOf(envs: readonly EnvironmentInfo[]): EnvironmentInfo | undefined {
  return envs.find((e) => e.booted) ?? envs.find((e) => e.isDefault);
}

export async function currentEnvironment(ctx: Context): Promise<EnvironmentInfo> {
  const envs = await ctx.backend.listEnvironments();
  const cur = currentOf(envs);
  if (!cur) {
    throw new SysprimeError('NOT_FOUND', `${ctx.backend.describe()} has no booted or default environment`, {
      hint: envs.length === 0 ? 'run `sysprime init` first' : 'make one the default with `sysprime activate NAME`',
    });
  }
  return cur;
}

export interface InitOptions {
  /** Dataset or subvolume to adopt; '/' (default) adopts the running root. */
  adopt: string;
  /** Name of the environment; absent, the backend's choice (a ZFS root under ROOT keeps its own) or `default`. */
  name?: string;
}

export async function initialise(ctx: Context, opts: InitOptions): Promise<EnvironmentInfo> {
  const existing = await ctx.backend.listEnvironments();
  if (existing.length > 0) {
    throw new SysprimeError('EXISTS', `${ctx.backend.describe()} is already initialised: it holds ${existing.map((e) => e.name).join(', ')}`, {
      hint: 'use `sysprime list`; `init` adopts the first environment only once',
    });
  }
  // Every check the backend can make before the first change (ensureLayout creates ROOT): bad input changes nothing.
  const name = ctx.backend.checkAdoption ? (await ctx.backend.checkAdoption(opts.adopt, opts.name)).name : checkName(opts.name ?? 'default');
  await refuseZfsBootPool(ctx, name);
  const home = await planBootHome(ctx);
  // The bootloader's move first: each of its steps leaves the machine booting as before.
  for (const done of (await home?.apply()) ?? []) log.info(done);
  await ctx.backend.ensureLayout();
  // Before anything is recorded: the database the environments share.
  const stateLines = await ensureStateHome(ctx);
  await ctx.backend.adopt(opts.adopt, name, 0);
  await homeInto(ctx, name, home, stateLines);
  // The installer's root has no kernels of its own when /boot is a partition: it gets the running system's.
  const partition = await bootPartitionOf(ctx, name);
  if (partition !== null) {
    await kernelsInto(ctx, name, partition, true);
    // Every environment then puts its own kernels on the partition as it boots (kernelsAtBoot).
    await unitsInto(ctx, name, [BOOT_START_UNIT]);
  }
  await ctx.backend.takePristine(name, 0);
  const after = [...(await ctx.backend.listEnvironments()), ...((await ctx.backend.listForeign?.()) ?? [])];
  // A default another tool's root holds stays: adopting one root does not take the boot away from another.
  if (!after.some((e) => e.booted || e.isDefault)) await ctx.backend.setDefault(name);
  await syncBootEntries(ctx);
  recordEvent(ctx.db, name, 'init', { adopted: opts.adopt, generation: 0 });
  return findEnvironment(ctx, name);
}

export async function refuseExisting(ctx: Context, name: string): Promise<void> {
  const envs = await ctx.backend.listEnvironments();
  if (envs.some((e) => e.name === name)) {
    throw new SysprimeError('EXISTS', `an environment named "${name}" already exists`, { hint: 'pick another name, or destroy the old one first' });
  }
}

// Each verb that changes environments or boot entries holds the lock, as
// staging and prune do: none of them runs in the middle of another (BUSY
// names who holds it). Unpinning needs none (see unpinEnvironment).
export interface CreateOptions {
  description?: string;
  /** What makes it on its own (`apt`: the apt hook); marked so retention counts it apart. */
  auto?: string;
  /**
   * Aborted: give up (AbortError) if the copy has not begun; once it has,
   * the environment is finished. The apt hook's, past its time: a copy
   * taken once apt has gone on would hold what dpkg is changing.
   */
  signal?: AbortSignal;
}

export async function createEnvironment(ctx: Context, name: string, from?: string, opts: CreateOptions = {}): Promise<EnvironmentInfo> {
  return withLock(ctx.db, 'creating an environment', () => createEnvironmentLocked(ctx, name, from, opts));
}

async function createEnvironmentLocked(ctx: Context, name: string, from: string | undefined, opts: CreateOptions): Promise<EnvironmentInfo> {
  // Bad input changes nothing, not even a recovery.
  checkName(name);
  const description = opts.description === undefined ? null : checkDescription(opts.description);
  opts.signal?.throwIfAborted();
  await recoverFirst(ctx);
  // What a create killed halfway left (a temporary clone, its copy snapshot, a `.partial-` subvolume) goes:
  // a clone is made under a temporary name and takes its own last, so there is nothing else to finish or undo.
  for (const line of await ctx.backend.recover()) log.info(`recovered: ${line}`);
  const state = from === undefined ? null : parseStateRef(from);
  if (state !== null && state.name !== PRISTINE_STATE) checkSnapshotName(state.name);
  const source = state !== null ? await findEnvironment(ctx, state.environment) : from === undefined ? await currentEnvironment(ctx) : await findEnvironment(ctx, from);
  await refuseExisting(ctx, name);
  // With the clone, before it takes its name: an environment killed right after is whole, its mark and description
  // with it (one without its `auto` mark would count against `keep` and push the admin's own out), and the entries
  // written after carry the description in the boot menu from the start.
  const meta = { ...(description !== null ? { [DESCRIPTION_KEY]: description } : {}), ...(opts.auto !== undefined ? { [AUTO_KEY]: opts.auto } : {}) };
  let generation = source.generation;
  if (state === null) await kernelsBeforeCopy(ctx, source);
  if (state === null) await ctx.backend.cloneFromEnvironment(source.name, name, { meta, ...(opts.signal !== undefined ? { signal: opts.signal } : {}) });
  else {
    if (state.name === PRISTINE_STATE) {
      if (source.pristine === null) {
        throw new SysprimeError('NOT_FOUND', `the pristine snapshot of generation ${source.generation}, the generation of "${source.name}", is gone`, {
          hint: 'prune removes the pristine of a generation no environment has; `sysprime list --snapshots` shows the snapshots there are',
        });
      }
      // The nested subvolumes a read-only pristine cannot hold (Btrfs) come from the environment named.
      await ctx.backend.cloneFromPristine(source.generation, name, source.name);
    } else {
      const snap = (await ctx.backend.listSnapshots()).find((x) => x.environment === source.name && x.name === state.name);
      if (snap === undefined) {
        throw new SysprimeError('NOT_FOUND', `environment "${source.name}" has no snapshot "${state.name}"`, {
          hint: `\`sysprime list --snapshots\` shows the snapshots; ${source.name}@${PRISTINE_STATE} is the pristine state of its generation`,
        });
      }
      await ctx.backend.cloneFromSnapshot(source.name, snap.name, name);
      generation = snap.generation;
    }
    // An older state's clone takes its description just after (the apt hook, whose mark must come with the clone, never makes one).
    if (Object.keys(meta).length > 0) await ctx.backend.setMeta(name, meta);
  }
  // Killed here, the environment is whole; the next verb that writes boot entries writes its entry too.
  faultPoint('create', 'cloned');
  await syncBootEntries(ctx);
  recordEvent(ctx.db, name, 'create', {
    from: from ?? source.name,
    generation,
    ...(description !== null ? { description } : {}),
    ...(opts.auto !== undefined ? { auto: opts.auto } : {}),
  });
  return findEnvironment(ctx, name);
}

/** Set the description of an environment (an empty text clears it), and write the boot entries whose titles carry it. */
export async function describeEnvironment(ctx: Context, name: string, text: string): Promise<EnvironmentInfo> {
  return withLock(ctx.db, 'describing an environment', () => describeEnvironmentLocked(ctx, name, text));
}

async function describeEnvironmentLocked(ctx: Context, name: string, text: string): Promise<EnvironmentInfo> {
  const description = checkDescription(text);
  checkName(name);
  await recoverFirst(ctx);
  await findEnvironment(ctx, name);
  await ctx.backend.setMeta(name, { [DESCRIPTION_KEY]: description });
  await syncBootEntries(ctx);
  recordEvent(ctx.db, name, 'describe', { description });
  return findEnvironment(ctx, name);
}

export interface PinChange {
  env: EnvironmentInfo;
  /** False when it already was as asked. */
  changed: boolean;
}

/**
 * Pin an environment: prune keeps it, destroy refuses it without --force.
 * Under the lock, so a prune that planned without the pin cannot be
 * destroying it meanwhile: while one runs, pinning waits for nobody and
 * says who holds the lock (BUSY).
 */
export async function pinEnvironment(ctx: Context, name: string): Promise<PinChange> {
  checkName(name);
  const lock = acquireLock(ctx.db, 'pinning an environment');
  try {
    const env = await findEnvironment(ctx, name);
    // A clone of a staging cut short is undone (destroyed) by the next recovery, pin or not: saying "pinned" would be a lie.
    refuseUnfinished(env);
    if (isPinned(env)) return { env, changed: false };
    await ctx.backend.setMeta(name, { [PIN_KEY]: PIN_VALUE });
    recordEvent(ctx.db, name, 'pin', {});
    return { env: await findEnvironment(ctx, name), changed: true };
  } finally {
    lock.release();
  }
}

/** Unpin it: retention treats it as any other again. Needs no lock: a prune planned with the pin only keeps it once more. */
export async function unpinEnvironment(ctx: Context, name: string): Promise<PinChange> {
  const env = await findEnvironment(ctx, name);
  if (!isPinned(env)) return { env, changed: false };
  await ctx.backend.setMeta(name, { [PIN_KEY]: null });
  recordEvent(ctx.db, name, 'unpin', {});
  return { env: await findEnvironment(ctx, name), changed: true };
}

interface ActivateParams extends Json {
  name: string;
  /** The filesystem default before; null when there was none. */
  previous: string | null;
}

/**
 * `activate` writes two things that must agree: the filesystem's default
 * (ZFS bootfs, the Btrfs default subvolume) and the boot entries' default.
 * Journaled, so a crash between the two is found by the next `activate`
 * (or `doctor`) and undone: the old default is set again and the entries
 * are written to match it. The undo of the first step writes both, so the
 * second step needs none, and any prefix of the steps undoes to the old state.
 */
export const ACTIVATE: OperationSpec<Context> = {
  kind: 'activate',
  steps: [
    {
      name: 'filesystem-default',
      title: 'make it the filesystem default',
      async run(ctx, p) {
        await ctx.backend.setDefault((p as ActivateParams).name);
      },
      async undo(ctx, p) {
        const { name, previous } = p as ActivateParams;
        const envs = await ctx.backend.listEnvironments();
        const def = envs.find((e) => e.isDefault);
        if (previous !== null && def?.name === name && envs.some((e) => e.name === previous)) await ctx.backend.setDefault(previous);
        await syncBootEntries(ctx);
      },
    },
    {
      name: 'boot-default',
      title: 'make its boot entry the default',
      async run(ctx, p) {
        await syncBootEntries(ctx, { chosenDefault: true });
        // Choosing the environment a one-shot boot waits for makes it the default for good: the one-shot goes.
        // (On ZFSBootMenu the one-shot already moved bootfs there, so the sync alone cannot tell the two apart.)
        const loader = await bootloaderFor(ctx);
        const { name } = p as ActivateParams;
        if (loader.capabilities.oneShot && (await loader.inspect()).oneShotName === name) await loader.setDefault(name);
      },
      // Undone by the first step's undo, which writes the entries again.
    },
  ],
};

/**
 * Undo environment verbs a dead process left half-done (`activate`,
 * `prune`), and finish the imports it left with their environment received
 * (import-finish.ts). The verbs that change environments or entries call it
 * first, so the next one after a crash repairs it without help.
 */
export async function recoverEnvironmentVerbs(ctx: Context): Promise<string[]> {
  return [...(await recoverOperations(ctx.db, ACTIVATE, ctx)), ...(await recoverPrune(ctx)), ...(await recoverImports(ctx))];
}

/** recoverEnvironmentVerbs, each line said on stderr: what a verb that changes environments runs first, under the lock. */
export async function recoverFirst(ctx: Context): Promise<void> {
  for (const line of await recoverEnvironmentVerbs(ctx)) log.warn(`recovered: ${line}`);
}

export async function activateEnvironment(ctx: Context, name: string): Promise<EnvironmentInfo> {
  return withLock(ctx.db, 'activating an environment', () => activateEnvironmentLocked(ctx, name));
}

async function activateEnvironmentLocked(ctx: Context, name: string): Promise<EnvironmentInfo> {
  await recoverFirst(ctx);
  const env = await findEnvironment(ctx, name);
  refuseUnfinished(env);
  const previous = (await ctx.backend.listEnvironments()).find((e) => e.isDefault)?.name ?? null;
  const params: ActivateParams = { name, previous };
  await runOperation(ctx.db, ACTIVATE, ctx, params);
  recordEvent(ctx.db, name, 'activate', {});
  return { ...env, isDefault: true };
}

/** Boot an environment at the next boot only; the default stays. */
export async function activateOnce(ctx: Context, name: string): Promise<EnvironmentInfo> {
  return withLock(ctx.db, 'setting the next boot', () => activateOnceLocked(ctx, name));
}

async function activateOnceLocked(ctx: Context, name: string): Promise<EnvironmentInfo> {
  await recoverFirst(ctx);
  const env = await findEnvironment(ctx, name);
  refuseUnfinished(env);
  const loader = await bootloaderFor(ctx);
  if (!loader.capabilities.oneShot) {
    throw new SysprimeError('REFUSED', `a one-shot boot needs a bootloader that supports it; ${loader.describe()} does not`, {
      hint: loader.name === 'none' ? 'set [boot] loader = "systemd-boot", "grub" or "zfsbootmenu" in sysprime.toml' : 'use `sysprime activate` and activate the old default again after the boot',
    });
  }
  await syncBootEntries(ctx);
  await loader.setOneShot(name);
  recordEvent(ctx.db, name, 'activate-once', {});
  return env;
}

export function refuseUnfinished(env: EnvironmentInfo): void {
  switch (unfinishedBy(env)) {
    case 'staging':
      throw new SysprimeError('REFUSED', `"${env.name}" is still being staged (or its staging was interrupted)`, {
        hint: 'wait for the staging to finish; `sysprime stage` or `sysprime status` cleans up an interrupted one',
      });
    case 'import':
      throw new SysprimeError('REFUSED', `"${env.name}" is still being imported (or its import was interrupted): its pristine state is not taken yet`, {
        hint: 'wait for the import to finish; `sysprime doctor --fix`, or any verb that changes environments, finishes an interrupted one',
      });
    case null:
      return;
  }
}

/** What destroy took with the environment: the names of its snapshots. */
export interface Destroyed {
  snapshots: string[];
}

export async function destroyEnvironment(ctx: Context, name: string, opts: { force?: boolean } = {}): Promise<Destroyed> {
  return withLock(ctx.db, 'destroying an environment', () => destroyEnvironmentLocked(ctx, name, opts));
}

async function destroyEnvironmentLocked(ctx: Context, name: string, opts: { force?: boolean }): Promise<Destroyed> {
  refuseOpenShell(ctx, name, 'destroy');
  await recoverFirst(ctx);
  const env = await findEnvironment(ctx, name);
  if (env.booted) {
    throw new SysprimeError('REFUSED', `"${name}" is the running environment and cannot be destroyed`, {
      hint: 'boot another environment first',
    });
  }
  if (env.isDefault) {
    throw new SysprimeError('REFUSED', `"${name}" is the default boot environment and cannot be destroyed`, {
      hint: 'make another one the default with `sysprime activate OTHER` first',
    });
  }
  if (env.mounted !== null) {
    throw new SysprimeError('REFUSED', `"${name}" is mounted at ${env.mounted}`, { hint: `run \`sysprime umount ${name}\` first` });
  }
  // Last: --force would not help with the refusals above.
  if (isPinned(env) && opts.force !== true) {
    const description = descriptionOf(env);
    throw new SysprimeError('REFUSED', `"${name}" is pinned${description !== null ? ` (${description})` : ''}: it is not destroyed without --force`, {
      hint: `unpin it first (\`sysprime unpin ${name}\`), or destroy it with \`sysprime destroy --force ${name}\``,
    });
  }
  // Entry first: a crash in between leaves an environment without an entry
  // (harmless, `doctor` adds it back), never an entry that cannot boot.
  await syncBootEntries(ctx, { without: [name] });
  // Its snapshots go with it (Backend.destroyEnvironment): named, so the admin is told.
  const snapshots = (await ctx.backend.listSnapshots()).filter((x) => x.environment === name).map((x) => x.name);
  await ctx.backend.destroyEnvironment(name);
  recordEvent(ctx.db, name, 'destroy', { generation: env.generation, ...(snapshots.length > 0 ? { snapshots } : {}) });
  await forgetManifestsOfGone(ctx);
  return { snapshots };
}

export async function renameEnvironment(ctx: Context, from: string, to: string): Promise<EnvironmentInfo> {
  return withLock(ctx.db, 'renaming an environment', () => renameEnvironmentLocked(ctx, from, to));
}

async function renameEnvironmentLocked(ctx: Context, from: string, to: string): Promise<EnvironmentInfo> {
  refuseOpenShell(ctx, from, 'rename');
  await recoverFirst(ctx);
  checkName(to);
  const env = await findEnvironment(ctx, from);
  if (env.booted) {
    throw new SysprimeError('REFUSED', `"${from}" is the running environment; renaming it would break its next boot`, {
      hint: 'rename it from another environment',
    });
  }
  if (env.mounted !== null) {
    throw new SysprimeError('REFUSED', `"${from}" is mounted at ${env.mounted}`, { hint: `run \`sysprime umount ${from}\` first` });
  }
  await refuseExisting(ctx, to);
  await syncBootEntries(ctx, { without: [from] });
  await ctx.backend.renameEnvironment(from, to);
  await syncBootEntries(ctx);
  recordEvent(ctx.db, to, 'rename', { from });
  // The old name's manifests describe a name that is gone (a later environment of that name is another tree).
  await forgetManifestsOfGone(ctx);
  return findEnvironment(ctx, to);
}

/** Default for `sysprime mount`; private mounts of the backends live elsewhere under /run/sysprime. */
export const MOUNT_BASE = '/run/sysprime/mount';

/** Top-level directories of a running system: mounting over one hides it from every program. */
// /mnt and /media are where mounts go: only their contents count (a non-empty one is refused).
const SYSTEM_DIRS = ['/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/libx32', '/opt', '/proc', '/root', '/run', '/sbin', '/srv', '/sys', '/tmp', '/usr', '/var'];
/** Trees whose every directory belongs to the running system. */
const SYSTEM_TREES = ['/bin', '/boot', '/dev', '/etc', '/lib', '/lib32', '/lib64', '/libx32', '/proc', '/sbin', '/sys', '/usr', '/var/lib', '/var/log', '/var/cache'];

/**
 * Why a mount point must not be used without --force, or null: a system
 * directory (it would hide what the running system uses), or a directory
 * that holds something (it would be hidden until the unmount).
 */
export function mountPointProblem(target: string): string | null {
  const { realpathSync, readdirSync, statSync } = fs;
  const st = statSync(target, { throwIfNoEntry: false });
  if (st === undefined) return null;
  if (!st.isDirectory()) return `${target} is not a directory`;
  const real = realpathSync(target);
  const shown = real === target ? target : `${target} (${real})`;
  if (SYSTEM_DIRS.includes(real) || SYSTEM_TREES.some((t) => real.startsWith(`${t}/`))) return `${shown} is a directory of the running system`;
  if (readdirSync(real).length > 0) return `${shown} is not empty`;
  return null;
}

export async function mountEnvironment(ctx: Context, name: string, dir?: string, opts: { force?: boolean } = {}): Promise<string> {
  let env = await findEnvironment(ctx, name);
  if (env.booted) throw new SysprimeError('REFUSED', `"${name}" is the running environment, already mounted at /`);
  // Its pristine state will be taken of the tree as it arrived: nothing may change it before.
  if (importUnfinished(env)) refuseUnfinished(env);
  if (env.mounted !== null) {
    // A private mount whose process died (a crash in the middle of a verb) is no reason to refuse: undo it first.
    for (const line of await ctx.backend.recover()) log.info(`recovered: ${line}`);
    env = await findEnvironment(ctx, name);
  }
  if (env.mounted !== null) throw new SysprimeError('REFUSED', `"${name}" is already mounted at ${env.mounted}`);
  const target = dir ?? `${MOUNT_BASE}/${name}`;
  if (!target.startsWith('/')) throw new SysprimeError('USAGE', `mount point ${target} must be an absolute path`);
  const problem = mountPointProblem(target);
  if (problem !== null && (opts.force !== true || problem.endsWith('is not a directory'))) {
    throw new SysprimeError('REFUSED', `not mounting "${name}" there: ${problem}`, {
      hint: problem.endsWith('is not a directory') ? 'name an empty directory' : 'name an empty directory of its own, or pass --force if hiding what is there is what you want',
    });
  }
  fs.mkdirSync(target, { recursive: true });
  await ctx.backend.mount(name, target);
  recordEvent(ctx.db, name, 'mount', { at: target });
  return target;
}

export async function unmountEnvironment(ctx: Context, name: string): Promise<void> {
  refuseOpenShell(ctx, name, 'unmount');
  const env = await findEnvironment(ctx, name);
  if (env.booted) throw new SysprimeError('REFUSED', `"${name}" is the running environment`);
  if (env.mounted === null) throw new SysprimeError('REFUSED', `"${name}" is not mounted`);
  await ctx.backend.unmount(name);
  recordEvent(ctx.db, name, 'umount', {});
}
