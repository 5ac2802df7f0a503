/**
 * The one list of boot entries, computed from the environments before any
 * bootloader sees it (the idea OSTree follows: the core writes entries, each
 * bootloader translates them). An environment without a kernel gets no entry
 * and a warning instead: booting it would fail at the firmware's prompt.
 */
import type { BootDrift, BootEntry, BootEnvironment, KernelPair } from './types.js';
import { findKernel } from './kernels.js';

export const ENTRY_PREFIX = 'sysprime-';

/**
 * `gen-4 (generation 4, 2026-11-22)`, or with a description
 * `gen-4: before the 6.12 kernel (generation 4, 2026-11-22)`: the name
 * first, so the entry is known by it however the menu cuts a long line.
 * Plain text; each bootloader escapes it for its own format.
 */
function entryTitle(env: Pick<BootEnvironment, 'name' | 'generation' | 'created' | 'description'>): string {
  const day = Number.isNaN(env.created.getTime()) ? 'unknown date' : env.created.toISOString().slice(0, 10);
  const description = env.description ?? null;
  return `${env.name}${description !== null && description !== '' ? `: ${description}` : ''} (generation ${env.generation}, ${day})`;
}

function joinArgs(...parts: string[]): string {
  return parts
    .map((p) => p.trim())
    .filter((p) => p.length > 0)
    .join(' ');
}

export interface ComputedEntries {
  entries: BootEntry[];
  warnings: string[];
  /** Environments that have no kernel, so no entry. */
  withoutKernel: string[];
}

/**
 * Entries for the environments, newest generation first. `find` locates the
 * kernel of a tree (injectable so pure tests need no files).
 */
export function computeEntries(envs: readonly BootEnvironment[], find: (tree: string) => KernelPair | null = findKernel): ComputedEntries {
  const entries: BootEntry[] = [];
  const warnings: string[] = [];
  const withoutKernel: string[] = [];
  const seen = new Set<string>();
  for (const env of envs) {
    if (seen.has(env.name)) {
      warnings.push(`environment "${env.name}" was listed twice; it gets one entry`);
      continue;
    }
    seen.add(env.name);
    const kernel = find(env.tree);
    if (!kernel) {
      warnings.push(`environment "${env.name}" has no kernel in /boot (no vmlinuz-*): it gets no boot entry`);
      withoutKernel.push(env.name);
      continue;
    }
    entries.push({
      id: `${ENTRY_PREFIX}${env.name}`,
      name: env.name,
      generation: env.generation,
      created: env.created,
      title: entryTitle(env),
      options: joinArgs(env.rootArgs, env.cmdline),
      cmdline: env.cmdline.trim(),
      root: env.root,
      kernel,
    });
  }
  entries.sort((a, b) => b.generation - a.generation || b.created.getTime() - a.created.getTime() || a.name.localeCompare(b.name));
  return { entries, warnings, withoutKernel };
}

/** The drift record for each environment that has no kernel. */
export function noKernelDrift(names: readonly string[]): BootDrift[] {
  return names.map((name) => ({ kind: 'no-kernel', name, what: `"${name}" has no kernel in its /boot (no vmlinuz-*), so it cannot get a boot entry` }));
}
