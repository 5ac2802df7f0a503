/**
 * The glue between the filesystem seam and this one: make each environment's
 * tree readable through the backend, describe it as a BootEnvironment, sync
 * the bootloader, and release every tree again, whatever happens.
 */
import type { Backend, EnvironmentInfo, OpenTree } from '../backends/types.js';
import type { BootEnvironment, Bootloader, RootLocation, SyncOptions, SyncResult } from './types.js';
import { rootArgsFor } from './bls.js';
import { composeCmdline } from './cmdline.js';
import { readTextAt } from '../os/confined.js';

export interface SyncFromBackendOptions extends SyncOptions {
  /** How the bootloader reaches an environment's root (the Btrfs UUID, the ZFS dataset). */
  rootOf(env: EnvironmentInfo): RootLocation;
  /** `[boot] cmdline`. */
  cmdline: string;
  /** The running system's command line, when it runs from one of these environments (cmdline.ts). */
  booted?: string | null;
  /** The admin's description of an environment, for its entry's title; absent: none. */
  descriptionOf?(env: EnvironmentInfo): string | null;
}

export async function syncFromBackend(loader: Bootloader, backend: Backend, envs: readonly EnvironmentInfo[], opts: SyncFromBackendOptions): Promise<SyncResult> {
  const { rootOf, cmdline, booted, descriptionOf, ...syncOpts } = opts;
  if (loader.name === 'none') return loader.sync([], syncOpts);
  const opened: OpenTree[] = [];
  try {
    const list: BootEnvironment[] = [];
    for (const env of envs) {
      const tree = await backend.openEnvironment(env.name);
      opened.push(tree);
      const root = rootOf(env);
      const args = composeCmdline({ booted: booted ?? null, environment: readTextAt(tree.path, '/etc/kernel/cmdline'), config: cmdline });
      const description = descriptionOf?.(env) ?? null;
      list.push({ name: env.name, generation: env.generation, created: env.created, description, rootArgs: rootArgsFor(root), cmdline: args, root, tree: tree.path });
    }
    return await loader.sync(list, syncOpts);
  } finally {
    for (const t of opened.reverse()) await t.release().catch(() => undefined);
  }
}
