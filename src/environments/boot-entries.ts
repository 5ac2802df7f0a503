/**
 * Keeping boot entries and environments in step: every verb that changes the
 * set of environments or the default ends by writing the whole set of
 * entries again (the bootloaders swap it in atomically), so the two never
 * drift apart.
 */
import type { Context } from '../context.js';
import type { EnvironmentInfo } from '../backends/types.js';
import type { Bootloader, SyncResult } from '../bootloaders/types.js';
import { createBootloader } from '../bootloaders/registry.js';
import { syncFromBackend } from '../bootloaders/from-backend.js';
import { rootMount } from '../backends/registry.js';
import { log } from '../log.js';

export function bootloaderFor(ctx: Context): Bootloader {
  const pool = ctx.config.zfs.pool ?? (ctx.backend.kind === 'zfs' ? rootMount()?.source.split('/')[0] : undefined);
  return createBootloader(ctx.config, pool ? { pool } : {});
}

/** Environments that should be bootable: all but one whose staging has not finished. */
export function bootable(envs: readonly EnvironmentInfo[], staged?: string): EnvironmentInfo[] {
  return envs.filter((e) => e.meta['staging'] !== 'in-progress' || e.name === staged);
}

export interface BootSyncOptions {
  /** A freshly staged environment: gets boot counting. */
  staged?: string;
  /** Leave these out (an environment about to be destroyed, or a staging being undone). */
  without?: readonly string[];
}

export async function syncBootEntries(ctx: Context, opts: BootSyncOptions = {}): Promise<SyncResult> {
  const loader = bootloaderFor(ctx);
  const all = await ctx.backend.listEnvironments();
  const envs = bootable(all, opts.staged).filter((e) => !(opts.without ?? []).includes(e.name));
  const current = envs.find((e) => e.booted) ?? envs.find((e) => e.isDefault);
  const def = envs.find((e) => e.isDefault) ?? current;
  if (!def) return { loader: loader.name, added: [], updated: [], kept: [], removed: [], warnings: ['no default environment: no entries written'] };
  const roots = new Map<string, Awaited<ReturnType<Context['backend']['bootRoot']>>>();
  if (loader.name !== 'none') for (const e of envs) roots.set(e.name, await ctx.backend.bootRoot(e.name));
  const result = await syncFromBackend(loader, ctx.backend, envs, {
    rootOf: (env) => roots.get(env.name)!,
    cmdline: ctx.config.boot.cmdline,
    defaultName: def.name,
    ...(current && current.name !== def.name ? { fallbackName: current.name } : {}),
    ...(opts.staged ? { staged: { name: opts.staged, tries: ctx.config.boot.tries } } : {}),
  });
  for (const w of result.warnings) log.warn(w);
  return result;
}
