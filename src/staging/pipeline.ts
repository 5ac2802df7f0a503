/**
 * Staging: build generation N+1 beside the running system and make it
 * bootable, as journaled steps. Nothing here writes to the running
 * environment; every step that creates something has an undo that removes
 * it, and the same undo runs after a crash (see state/journal.ts).
 */
import { forgetGeneration, forgetGenerationsExcept, generationUpdate, recordGeneration } from '../state/generations.js';
import { changesFromTree, installedPackages, lineageAfter, updateIdentity } from './update-identity.js';
import { stateHomeProblem } from '../environments/state-home.js';
import type { Context } from '../context.js';
import type { EnvironmentInfo, PristineInfo } from '../backends/types.js';
import type { Updater, UpdateResult } from '../updaters/types.js';
import { AbortOperation, recoverOperations, runOperation, type Json, type OperationSpec, type StepProgress } from '../state/journal.js';
import { acquireLock } from '../state/lock.js';
import { currentOf } from '../environments/lifecycle.js';
import { recordEvent } from '../state/events.js';
import { checkName } from '../names.js';
import { checkDescription, DESCRIPTION_KEY } from '../environments/annotations.js';
import { STAGING_STARTED, stagingFinished } from './mark.js';
import { SysprimeError, isSysprimeError, messageOf } from '../errors.js';
import { log } from '../log.js';
import { mkdir, rmdir } from 'node:fs/promises';
import { statfsSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { stopProcessesIn } from '../process/reap.js';
import { recoverChroot } from '../updaters/chroot.js';
import { reintegrateAtStaging } from '../reintegrate/session.js';
import { installFirstBoot, newStagingId } from '../reintegrate/first-boot-note.js';
import { atRiskPaths, sharedDataOfEnvironment } from '../environments/shared.js';
import { bootloaderFor, syncBootEntries } from '../environments/boot-entries.js';
import { eventsOf } from '../state/events.js';
import { lastHealth } from '../health/history.js';
import { refuseZfsBootPool } from '../environments/boot-kernels.js';
import { SYSTEM_CONFIG } from '../config/load.js';
import { pruneEnvironments } from '../environments/prune.js';
import { forgetManifestsOfGone } from '../environments/kept-manifests.js';

export interface StageContext {
  ctx: Context;
  updater: Updater;
  verbose: boolean;
}

export interface StageParams extends Json {
  /** The environment whose admin changes are carried over. */
  from: string;
  /** Its generation: the base of the 3-way reintegration. */
  fromGeneration: number;
  /** The generation whose pristine snapshot is cloned (the newest one). */
  baseGeneration: number;
  generation: number;
  name: string;
  /**
   * This staging's id: the baseline the first boot compares against is kept
   * under it, and the first-boot note names it (a name can be renamed away
   * and staged again; the id stays with this staging's note).
   */
  staging: string;
  /** `stage --description`: set on the clone when it is made, so its boot entry's title carries it. */
  description?: string;
}

/**
 * Where the new environment is mounted while the updater runs: derived from
 * the pool and the name only, so recovery after a crash finds it, and two
 * pools on one machine never share it.
 */
function stagingMountPoint(s: StageContext, name: string): string {
  const pool = createHash('sha256').update(s.ctx.backend.describe()).digest('hex').slice(0, 8);
  return join(STAGING_MOUNT_BASE, `${s.ctx.backend.kind}-${pool}`, name);
}
const STAGING_MOUNT_BASE = '/run/sysprime/stage';

async function releaseStagingMount(s: StageContext, name: string): Promise<void> {
  const dir = stagingMountPoint(s, name);
  await stopProcessesIn(dir, { cwd: true });
  for (const line of await recoverChroot(dir).catch(() => [] as string[])) log.info(`recovered: ${line}`);
  const env = await exists(s, name);
  if (env?.mounted === dir) await s.ctx.backend.unmount(name);
  await rmdir(dir).catch(() => undefined);
}

/**
 * A package manager that fills the pool fails with its own words; say
 * instead which pool is full and how much room there is, so the admin knows
 * what to prune or grow.
 */
async function spaceAware<T>(s: StageContext, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const text = err instanceof SysprimeError ? `${err.message}\n${err.detail ?? ''}` : String(err);
    if (!/No space left on device|ENOSPC|Disk quota exceeded/i.test(text)) throw err;
    const space = await s.ctx.backend.space().catch(() => null);
    const left = space ? `: ${formatSize(space.free)} free of ${formatSize(space.size)}` : '';
    throw new SysprimeError('NO_SPACE', `${s.ctx.backend.describe()} is full${left}; the update did not fit`, {
      hint: 'free room with `sysprime prune` (or destroy old environments), or grow the pool, then stage again',
      ...(err instanceof SysprimeError && err.detail ? { detail: err.detail } : {}),
      cause: err,
    });
  }
}

/**
 * The updaters name update.timeout themselves; a tool they ran that hit its
 * own limit does not: say which setting bounds the whole update.
 */
async function timeoutAware<T>(s: StageContext, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!isSysprimeError(err, 'TIMEOUT') || /update\.timeout/.test(err.message)) throw err;
    throw new SysprimeError('TIMEOUT', `${err.message} (the whole update may take update.timeout = ${s.ctx.config.update.timeout} s)`, {
      hint: err.hint ?? 'find what hangs in the detail (-v), or raise [update] timeout in sysprime.toml',
      ...(err.detail ? { detail: err.detail } : {}),
      cause: err,
    });
  }
}

/**
 * The bootloader checks that the kernels fit on the ESP before it copies
 * them, and says how much is free and needed. A copy that still runs out
 * of room (another writer, a FAT's own overhead) says only which file: add
 * what is free there now.
 */
async function espSpaceAware<T>(s: StageContext, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const esp = s.ctx.config.boot.esp;
    if (!isSysprimeError(err, 'NO_SPACE') || esp === undefined || / free/.test(err.message)) throw err;
    let free = '';
    try {
      const st = statfsSync(esp);
      free = `, ${formatSize(Number(st.bavail) * Number(st.bsize))} free of ${formatSize(Number(st.blocks) * Number(st.bsize))}`;
    } catch {
      // the message without the numbers is still right
    }
    throw new SysprimeError('NO_SPACE', `the ESP at ${esp} is full${free}: ${err.message}`, {
      hint: err.hint ?? 'destroy old environments (`sysprime prune`) so their kernels leave the ESP, or make the ESP larger',
      ...(err.detail ? { detail: err.detail } : {}),
      cause: err,
    });
  }
}

function formatSize(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : `${(n / 2 ** 20).toFixed(1)} MiB`;
}

/** Mount the new environment at its staging mount point for `fn`, and always release it. */
async function withStagingMount<T>(s: StageContext, name: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = stagingMountPoint(s, name);
  await mkdir(dir, { recursive: true });
  await s.ctx.backend.mount(name, dir);
  let result: T;
  try {
    result = await fn(dir);
  } catch (err) {
    // The step's own failure is what the admin must see; a release that
    // fails after it is left to the undo (which tries again).
    await releaseStagingMount(s, name).catch((e: unknown) => log.warn(`releasing ${dir}: ${messageOf(e)}`));
    throw err;
  }
  await releaseStagingMount(s, name);
  return result;
}

async function exists(s: StageContext, name: string): Promise<EnvironmentInfo | undefined> {
  return (await s.ctx.backend.listEnvironments()).find((e) => e.name === name);
}

export const STAGE: OperationSpec<StageContext> = {
  kind: 'stage',
  steps: [
    {
      name: 'clone',
      title: 'clone the pristine snapshot',
      async run(s, p) {
        const params = p as StageParams;
        await s.ctx.backend.cloneFromPristine(params.baseGeneration, params.name, params.from);
        await s.ctx.backend.setMeta(params.name, { ...STAGING_STARTED, ...(params.description !== undefined ? { [DESCRIPTION_KEY]: params.description } : {}) });
      },
      async undo(s, p) {
        const params = p as StageParams;
        const env = await exists(s, params.name);
        if (!env) return;
        if (env.booted || env.isDefault) throw new SysprimeError('REFUSED', `will not destroy ${params.name}: it is booted or the default`);
        if (env.mounted !== null) await s.ctx.backend.unmount(params.name).catch(() => undefined);
        await s.ctx.backend.destroyEnvironment(params.name);
      },
    },
    {
      name: 'update',
      title: 'apply the updates inside the new environment',
      async run(s, p) {
        const params = p as StageParams;
        const { result, packages } = await withStagingMount(s, params.name, async (dir) => {
          // dpkg's database before the update, to tell its package changes when the updater does not.
          const installed = installedPackages(dir);
          const update = async (): Promise<UpdateResult> => {
            const options = { root: dir, timeout: s.ctx.config.update.timeout, verbose: s.verbose };
            if (!s.updater.readsLiveTrees) return s.updater.apply(options);
            const live = await s.ctx.backend.openEnvironment(params.from);
            try {
              const pristine = await s.ctx.backend.openPristine(params.fromGeneration);
              try {
                return await s.updater.apply({ ...options, liveRoot: live.path, pristineRoot: pristine.path });
              } finally {
                await pristine.release();
              }
            } finally {
              await live.release();
            }
          };
          const done = await spaceAware(s, () => timeoutAware(s, update));
          return { result: done, packages: done.packages.length > 0 ? done.packages : changesFromTree(installed, dir) };
        });
        // The updaters' own summary says "nothing to update" already; said once.
        if (!result.changed) throw new AbortOperation(/^nothing to update\b/.test(result.summary) ? result.summary : `nothing to update (${result.summary})`);
        // What the fleet calls this update, and every update this generation is built on (see update-identity.ts).
        const identity = updateIdentity(packages);
        const base = generationUpdate(s.ctx.db, params.baseGeneration)?.lineage ?? [];
        recordGeneration(s.ctx.db, { generation: params.generation, update: identity, lineage: lineageAfter(base, identity), packages });
        return { update: result as unknown as Json, identity };
      },
      async undo(s, p) {
        forgetGeneration(s.ctx.db, (p as StageParams).generation);
        // After a crash the updater may still run (an orphan keeps writing
        // into the clone) and the clone may still be mounted: stop and
        // unmount before the clone's own undo destroys it. What cannot be
        // undone here (a full pool refuses property changes) the clone's
        // destruction settles, so it is a warning, not a failure.
        try {
          await releaseStagingMount(s, (p as StageParams).name);
          for (const line of await s.ctx.backend.recover()) log.info(`recovered: ${line}`);
        } catch (err) {
          log.warn(`releasing the staging mount: ${messageOf(err)}; destroying the clone settles it`);
        }
      },
    },
    {
      name: 'pristine',
      title: 'snapshot the result as the new pristine state',
      async run(s, p) {
        const params = p as StageParams;
        await s.ctx.backend.setGeneration(params.name, params.generation);
        const snap: PristineInfo = await s.ctx.backend.takePristine(params.name, params.generation);
        return { pristine: snap.id };
      },
      async undo(s, p) {
        const params = p as StageParams;
        // While the clone exists the snapshot is its base (Btrfs refuses to
        // delete it); the clone's own undo destroys both.
        if (await exists(s, params.name)) return;
        const snaps = await s.ctx.backend.listPristines();
        if (snaps.some((x) => x.generation === params.generation)) await s.ctx.backend.destroyPristine(params.generation);
      },
    },
    {
      name: 'reintegrate',
      title: "carry the admin's changes over",
      async run(s, p) {
        const params = p as StageParams;
        const done = await withStagingMount(s, params.name, (dir) => reintegrateAtStaging(s.ctx, params, dir));
        // What was not carried is kept with the step so the summary (and the
        // daemon's log) can name it, not only the report inside the environment.
        // A skip the plan chose (a socket) is policy, not a loss; a skip met
        // while applying (the path changed, a link blocked it) is a loss.
        const notCarried = done.report.items
          .filter((i) => i.outcome === 'failed' || (i.outcome === 'skipped' && i.action !== 'skip'))
          .map((i) => ({ path: i.path, outcome: i.outcome, detail: i.detail }));
        return { reintegration: done.report.counts, report: done.reportFile, notCarried };
      },
      // Nothing to undo: the clone's undo removes the environment it wrote into.
    },
    {
      name: 'first-boot',
      title: 'install the first-boot unit',
      async run(s, p) {
        const params = p as StageParams;
        // Found again as the reintegration step found them, so the first boot carries the same paths the same way.
        const shared = atRiskPaths(await sharedDataOfEnvironment(s.ctx, params.from));
        await withStagingMount(s, params.name, async (dir) => {
          installFirstBoot(dir, {
            version: 1,
            staging: params.staging,
            from: params.from,
            fromGeneration: params.fromGeneration,
            name: params.name,
            generation: params.generation,
            stagedAt: new Date().toISOString(),
            config: s.ctx.config.source === 'defaults' || s.ctx.config.source === SYSTEM_CONFIG ? null : s.ctx.config.source,
            shared,
          });
        });
      },
    },
    {
      name: 'entry',
      title: 'write the boot entry',
      async run(s, p) {
        const params = p as StageParams;
        const result = await espSpaceAware(s, () => syncBootEntries(s.ctx, { staged: params.name }));
        return { entry: { loader: result.loader, added: result.added } };
      },
      async undo(s, p) {
        await syncBootEntries(s.ctx, { without: [(p as StageParams).name] });
      },
    },
    {
      name: 'activate',
      title: 'make it the default when [boot] activate_staged is set',
      async run(s, p) {
        const params = p as StageParams;
        if (!s.ctx.config.boot.activateStaged) return { activated: false };
        const previous = (await s.ctx.backend.listEnvironments()).find((e) => e.isDefault)?.name ?? null;
        await s.ctx.backend.setDefault(params.name);
        await syncBootEntries(s.ctx, { staged: params.name });
        return { activated: true, previousDefault: previous };
      },
      async undo(s, p, data) {
        const previous = data['previousDefault'];
        const envs = await s.ctx.backend.listEnvironments();
        const def = envs.find((e) => e.isDefault);
        if (def?.name === (p as StageParams).name) {
          const back = typeof previous === 'string' ? previous : (p as StageParams).from;
          if (envs.some((e) => e.name === back)) await s.ctx.backend.setDefault(back);
        }
      },
    },
    {
      name: 'finish',
      title: 'mark the environment staged',
      async run(s, p) {
        const params = p as StageParams;
        await s.ctx.backend.setMeta(params.name, stagingFinished(params.from));
      },
    },
  ],
};

export interface StageOptions {
  from?: string;
  name?: string;
  /** One line of printable text, as `create --description`. */
  description?: string;
  dryRun?: boolean;
  verbose?: boolean;
  progress?: StepProgress;
}

/** A path of the admin's changes that staging did not carry over, and why. */
export interface NotCarried {
  /** Byte string, as in manifests. */
  path: string;
  outcome: 'failed' | 'skipped';
  detail: string;
}

export interface StagedReintegration {
  counts: Record<string, number>;
  /** The report's path inside the new environment. */
  report: string;
  /** Failed items, and items skipped while applying (not by the plan's choice), in plan order. */
  notCarried: NotCarried[];
}

export type StageOutcome =
  | {
      kind: 'staged';
      name: string;
      generation: number;
      from: string;
      update: UpdateResult;
      /** The update's fleet-wide identity (update-identity.ts); null when its packages could not be told. */
      identity: string | null;
      reintegration: StagedReintegration;
      pruned: string[];
      recovered: string[];
    }
  | { kind: 'up-to-date'; reason: string; recovered: string[] }
  | { kind: 'dry-run'; name: string; generation: number; from: string; baseGeneration: number; steps: string[]; recovered: string[] };

/** Finish the cleanup of stagings a dead process left behind. */
export async function recoverStaging(ctx: Context, updater: Updater): Promise<string[]> {
  return recoverOperations(ctx.db, STAGE, { ctx, updater, verbose: false });
}

/** The environments and pristine states as one listing saw them; each is a `zfs list` on ZFS. */
interface Listed {
  envs: EnvironmentInfo[];
  pristines: PristineInfo[];
}

async function planStage(ctx: Context, opts: StageOptions, listed?: Listed): Promise<StageParams> {
  const envs = listed?.envs ?? (await ctx.backend.listEnvironments());
  const from = opts.from === undefined ? currentOf(envs) : envs.find((e) => e.name === checkName(opts.from!));
  if (!from) {
    throw new SysprimeError('NOT_FOUND', opts.from ? `no environment named "${opts.from}"` : 'there is no running or default environment to stage from', {
      hint: opts.from ? 'see `sysprime list`' : 'run `sysprime init` first',
    });
  }
  const pristines = listed?.pristines ?? (await ctx.backend.listPristines());
  if (!pristines.some((p) => p.generation === from.generation)) {
    throw new SysprimeError('NOT_FOUND', `the pristine snapshot of generation ${from.generation} (of "${from.name}") is missing`, {
      hint: 'run `sysprime doctor`; without it the admin\'s changes cannot be told from the update\'s',
    });
  }
  // Updates chain: the newest pristine state is the base, so a machine that
  // has not rebooted for a week gets one new environment built on the last.
  const baseGeneration = Math.max(...pristines.map((p) => p.generation));
  const generation = Math.max(baseGeneration, ...envs.map((e) => e.generation)) + 1;
  const name = checkName(opts.name ?? `gen-${generation}`);
  if (envs.some((e) => e.name === name)) {
    throw new SysprimeError('EXISTS', `an environment named "${name}" already exists`, { hint: 'pass --name, or destroy the old one' });
  }
  const description = opts.description === undefined ? null : checkDescription(opts.description);
  return { from: from.name, fromGeneration: from.generation, baseGeneration, generation, name, staging: newStagingId(), ...(description !== null ? { description } : {}) };
}

/**
 * Why there was nothing to stage when the newest pristine state, the one
 * staging builds on, is a failed update: every environment of its
 * generation used up its boot tries or failed its health checks. Its
 * packages are already the newest, so nothing is staged until a newer one
 * comes or the failed generation goes (destroying its last environment
 * takes its pristine state too); the admin is told which. Null otherwise.
 */
async function failedBase(ctx: Context, generation: number): Promise<string | null> {
  const envs = (await ctx.backend.listEnvironments()).filter((e) => e.generation === generation);
  if (envs.length === 0) return null;
  const boot = await bootloaderFor(ctx)
    .then((l) => l.inspect())
    .catch(() => null);
  const failed = envs.flatMap((e) => {
    if (boot?.entries.some((b) => b.name === e.name && b.counting.state === 'bad')) return [`"${e.name}" used up its boot tries`];
    if (lastHealth(eventsOf(ctx.db, e.name))?.result === 'bad') return [`"${e.name}" failed its health checks`];
    return [];
  });
  if (failed.length < envs.length) return null;
  return `generation ${generation}, the newest pristine state, which staging builds on, failed (${failed.join(', ')}): nothing newer to update to yet; destroy ${envs.map((e) => `"${e.name}"`).join(' and ')} (\`sysprime destroy NAME\`) to stage from the generation before it again`;
}

export async function stage(ctx: Context, updater: Updater, opts: StageOptions = {}): Promise<StageOutcome> {
  const lock = acquireLock(ctx.db, 'staging');
  try {
    const recovered = await recoverStaging(ctx, updater);
    // What an undone staging left (its clone is gone, its manifests not) is forgotten before a new one is kept.
    let listed: Listed | undefined;
    if (!opts.dryRun) {
      // Nothing below changes either list before the plan is made, so the sweep and the plan read the same ones.
      const pristines = await ctx.backend.listPristines();
      const envs = await ctx.backend.listEnvironments();
      listed = { envs, pristines };
      await forgetManifestsOfGone(ctx, listed);
      // A generation is gone when neither its pristine state nor an environment of it is left.
      forgetGenerationsExcept(ctx.db, [...pristines.map((x) => x.generation), ...envs.map((e) => e.generation)]);
    }
    const params = await planStage(ctx, opts, listed);
    // Before the clone: its boot entry would take a ZFS boot pool's dataset for a /boot partition.
    await refuseZfsBootPool(ctx, params.from);
    if (opts.dryRun) {
      await updater.probe();
      // The id belongs to a staging that runs; a dry run's would name nothing.
      const { staging: _id, ...shown } = params;
      return { kind: 'dry-run', ...shown, steps: STAGE.steps.map((s) => s.title), recovered };
    }
    await updater.probe();
    const stateProblem = await stateHomeProblem(ctx);
    if (stateProblem !== null) log.warn(stateProblem);
    const result = await runOperation(ctx.db, STAGE, { ctx, updater, verbose: opts.verbose === true }, params, opts.progress);
    if (!result.completed) {
      const why = await failedBase(ctx, params.baseGeneration).catch(() => null);
      return { kind: 'up-to-date', reason: why === null ? result.reason : `${result.reason}; ${why}`, recovered };
    }
    recordEvent(ctx.db, params.name, 'staged', { from: params.from, generation: params.generation });
    // Retention runs after, still under the lock; its failure does not undo a good staging.
    let pruned: string[] = [];
    try {
      pruned = (await pruneEnvironments(ctx)).destroyed;
    } catch (err) {
      log.warn(`retention after staging failed: ${messageOf(err)}; run \`sysprime prune\``);
    }
    return {
      kind: 'staged',
      name: params.name,
      generation: params.generation,
      from: params.from,
      update: result.data['update'] as UpdateResult,
      identity: (result.data['identity'] ?? null) as string | null,
      reintegration: {
        counts: (result.data['reintegration'] ?? {}) as Record<string, number>,
        report: String(result.data['report']),
        notCarried: (result.data['notCarried'] ?? []) as unknown as NotCarried[],
      },
      pruned,
      recovered,
    };
  } finally {
    lock.release();
  }
}
