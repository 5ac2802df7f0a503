/**
 * Keeping boot entries and environments in step: every verb that changes the
 * set of environments or the default ends by writing the whole set of
 * entries again (the bootloaders swap it in atomically), so the two never
 * drift apart. `bootDrift` runs the same sync without writing, so `doctor`
 * reports exactly what `doctor --fix` would change.
 */
import type { Context } from '../context.js';
import type { Config } from '../config/schema.js';
import type { EnvironmentInfo, RootLocation } from '../backends/types.js';
import { bootPartitionOf, kernelsAtBoot, kernelsInto } from './boot-kernels.js';
import type { BootDrift, Bootloader, SyncResult } from '../bootloaders/types.js';
import { createBootloader, type CreateOptions } from '../bootloaders/registry.js';
import { syncFromBackend } from '../bootloaders/from-backend.js';
import { rootMount, runsFromPool } from '../backends/registry.js';
import { SysprimeError, messageOf } from '../errors.js';
import { log } from '../log.js';
import { readFileSync } from 'node:fs';
import { whileBusy, withLock } from '../state/lock.js';
import { descriptionOf } from './annotations.js';
import { unfinishedBy } from '../staging/mark.js';

/** `[grub]` paths (GRUB's directory, /etc/default/grub, /etc/grub.d), when the configuration sets them. */
function grubPaths(config: Config): CreateOptions['grub'] {
  const keys = (config as Config & { grub?: { dir?: string; defaults?: string; scripts?: string } }).grub;
  return {
    ...(keys?.dir !== undefined ? { grubDir: keys.dir } : {}),
    ...(keys?.scripts !== undefined ? { grubD: keys.scripts } : {}),
  };
}

export async function bootloaderFor(ctx: Context): Promise<Bootloader> {
  const pool = ctx.config.zfs.pool ?? (ctx.backend.kind === 'zfs' ? rootMount()?.source.split('/')[0] : undefined);
  return createBootloader(ctx.config, { ...(pool ? { pool } : {}), grub: grubPaths(ctx.config) });
}

/** Environments that should be bootable: all but one whose staging or import has not finished (but the one being staged). */
export function bootable(envs: readonly EnvironmentInfo[], staged?: string): EnvironmentInfo[] {
  return envs.filter((e) => unfinishedBy(e) === null || e.name === staged);
}

export interface BootSyncOptions {
  /** A freshly staged environment: gets boot counting. */
  staged?: string;
  /** Leave these out (an environment about to be destroyed, or a staging being undone). */
  without?: readonly string[];
  /** Write nothing; the result's `drift` says what a sync would change. */
  dryRun?: boolean;
  /** The admin just chose the default (`activate`): a failed trial of it on record does not move it away. */
  chosenDefault?: boolean;
}

/**
 * The command line the running system booted with, when it runs from this
 * pool: an environment, or the installer's root that `init` adopts (its
 * arguments are the machine's; a rescue system's are not carried).
 * SYSPRIME_BOOTED_CMDLINE names a file to read instead, whatever runs.
 */
async function bootedCmdline(envs: readonly EnvironmentInfo[], pool: RootLocation | undefined): Promise<string | null> {
  const file = process.env['SYSPRIME_BOOTED_CMDLINE'];
  if (file !== undefined && file !== '') {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new SysprimeError('USAGE', `SYSPRIME_BOOTED_CMDLINE=${file} cannot be read: ${messageOf(err)}`, { hint: 'unset it to use /proc/cmdline' });
    }
  }
  if (!envs.some((e) => e.booted) && (pool === undefined || !(await runsFromPool(pool)))) return null;
  try {
    return readFileSync('/proc/cmdline', 'utf8');
  } catch {
    return null;
  }
}

export async function syncBootEntries(ctx: Context, opts: BootSyncOptions = {}): Promise<SyncResult> {
  const loader = await bootloaderFor(ctx);
  let all = await ctx.backend.listEnvironments();
  if (!opts.dryRun && !opts.chosenDefault && (await settleFailedDefault(ctx, loader, all)) !== null) all = await ctx.backend.listEnvironments();
  const without = opts.without ?? [];
  if (without.length > 0 && loader.capabilities.oneShot) {
    // ZFSBootMenu's one-shot moves bootfs, the backend's default, so the environment
    // to come back to is known only to the bootloader: it must not go away meanwhile.
    const state = await loader.inspect();
    const back = state.oneShotName !== null ? state.defaultName : null;
    if (back !== null && without.includes(back) && all.some((e) => e.name === back && !e.isDefault)) {
      throw new SysprimeError('REFUSED', `"${back}" is the default again after the one-shot boot of "${state.oneShotName}"`, {
        hint: `boot "${state.oneShotName}" first, or make another environment the default with \`sysprime activate\``,
      });
    }
  }
  const envs = bootable(all, opts.staged).filter((e) => !without.includes(e.name));
  const booted = envs.find((e) => e.booted);
  // With /boot on a partition of its own, the running environment's kernels are copied to its own tree first.
  const partition = booted === undefined || opts.dryRun ? null : await bootPartitionOf(ctx, booted.name);
  if (booted !== undefined && partition !== null) {
    // A /boot that cannot be brought in step (full, read-only) must not stop every verb that writes entries:
    // the entries read each environment's kernels from its own tree, not from the partition.
    try {
      await kernelsInto(ctx, booted.name, partition, false, all);
    } catch (err) {
      log.warn(`${partition} could not be brought in step with "${booted.name}"'s kernels (${messageOf(err)}); the boot entries are written anyway, and the next verb or boot tries again`);
    }
  }
  const current = booted ?? envs.find((e) => e.isDefault);
  const def = envs.find((e) => e.isDefault) ?? current;
  if (!def) {
    const what = 'no environment is the default (and none is running), so no entries are written';
    return { loader: loader.name, added: [], updated: [], kept: [], removed: [], warnings: [what], drift: envs.length > 0 && loader.name !== 'none' ? [{ kind: 'default', name: null, what }] : [] };
  }
  const roots = new Map<string, Awaited<ReturnType<Context['backend']['bootRoot']>>>();
  if (loader.name !== 'none') for (const e of envs) roots.set(e.name, await ctx.backend.bootRoot(e.name));
  const result = await syncFromBackend(loader, ctx.backend, envs, {
    rootOf: (env) => roots.get(env.name)!,
    descriptionOf,
    cmdline: ctx.config.boot.cmdline,
    booted: await bootedCmdline(all, roots.get(def.name)),
    defaultName: def.name,
    ...(current && current.name !== def.name ? { fallbackName: current.name } : {}),
    ...(opts.staged ? { staged: { name: opts.staged, tries: ctx.config.boot.tries } } : {}),
    ...(opts.dryRun ? { dryRun: true } : {}),
  });
  if (!opts.dryRun) for (const w of result.warnings) log.warn(w);
  return result;
}

/** The default environment whose trial failed while the bootloader boots another one, and that one; null otherwise. */
async function fallenBack(loader: Bootloader, envs: readonly EnvironmentInfo[]): Promise<{ failed: string; to: string } | null> {
  if (!loader.capabilities.counting) return null;
  const def = envs.find((e) => e.isDefault);
  if (def === undefined) return null;
  const state = await loader.inspect();
  const failed = state.entries.find((e) => e.name === def.name)?.counting.state === 'bad';
  const to = state.defaultName;
  if (!failed || to === null || to === def.name || !envs.some((e) => e.name === to)) return null;
  return { failed: def.name, to };
}

/**
 * A default environment whose trial failed (its tries used up, the failure
 * on record) while the bootloader fell back to another one by itself: that
 * one becomes the filesystem default too. Otherwise a sync would point the
 * bootloader at the failed environment again, which then boots without
 * counting, every time. Returns the change made, or null.
 */
async function settleFailedDefault(ctx: Context, loader: Bootloader, envs: readonly EnvironmentInfo[]): Promise<{ failed: string; to: string } | null> {
  const f = await fallenBack(loader, envs);
  if (f === null) return null;
  await ctx.backend.setDefault(f.to);
  log.warn(`"${f.failed}" failed to boot (its tries are used up) and the machine fell back to "${f.to}": "${f.to}" is the default again`);
  return f;
}

/**
 * After a boot completes (`boot-hook complete`): when the bootloader fell
 * back from a failed trial, the environment it fell back to becomes the
 * default, and the entries are written for it, so `list` and `status` say
 * what boots and the failed one can be destroyed. Only then does it take
 * the lock (waiting while another sysprime holds it); an ordinary boot
 * changes nothing.
 */
export async function settleAfterBoot(ctx: Context): Promise<string[]> {
  const loader = await bootloaderFor(ctx);
  if ((await fallenBack(loader, await ctx.backend.listEnvironments())) === null) return [];
  return whileBusy(
    () =>
      withLock(ctx.db, 'settling the default after a fallback', async () => {
        const f = await settleFailedDefault(ctx, loader, await ctx.backend.listEnvironments());
        if (f === null) return [];
        await syncBootEntries(ctx);
        return [`"${f.failed}" failed its trial; "${f.to}" is the default`];
      }),
    { waitMs: 5 * 60 * 1000 },
  );
}

export interface BootProblem {
  kind: BootDrift['kind'] | 'bootloader' | 'default-no-tries';
  what: string;
}

/**
 * Where the bootloader and the environments disagree: everything a sync
 * would change (entries missing, orphaned or stale, kernels gone, the wrong
 * default, ZFSBootMenu properties), environments that cannot get an entry,
 * and the bootloader's own warnings.
 */
export async function bootDrift(ctx: Context): Promise<BootProblem[]> {
  const state = await (await bootloaderFor(ctx)).inspect();
  const dry = await syncBootEntries(ctx, { dryRun: true });
  const problems: BootProblem[] = [...dry.drift.map((d) => ({ kind: d.kind, what: d.what })), ...state.warnings.map((w) => ({ kind: 'bootloader' as const, what: w }))];
  // A default entry whose tries are used up is not what boots next: the bootloader falls back to another one
  // (and predicts that one as its default, so the default environment is asked of the backend).
  const defaultEnv = (await ctx.backend.listEnvironments()).find((e) => e.isDefault)?.name;
  const def = state.entries.find((e) => e.name === defaultEnv);
  const c = def?.counting;
  if (def !== undefined && c !== undefined && (c.state === 'bad' || (c.state === 'counting' && c.left === 0))) {
    problems.push({
      kind: 'default-no-tries',
      what: `the default entry "${def.name}" has 0 boot tries left: the next boot falls back to another entry; find out why it did not boot, then activate the environment that should`,
    });
  }
  return problems;
}

/**
 * sysprime-boot-start.service, early in every boot: the bootloader's hook
 * (a one-shot choice undone), then the running environment's kernels onto a
 * /boot partition that holds another's. Both run whatever the other did;
 * the first failure is raised after them (the unit fails, the boot goes on).
 */
export async function bootStartHook(ctx: Context): Promise<string[]> {
  const lines: string[] = [];
  let failure: unknown = null;
  try {
    lines.push(...((await (await bootloaderFor(ctx)).bootStarted?.()) ?? []));
  } catch (err) {
    failure = err;
  }
  try {
    lines.push(...(await kernelsAtBoot(ctx)));
  } catch (err) {
    failure ??= err;
  }
  if (failure !== null) throw failure;
  return lines;
}
