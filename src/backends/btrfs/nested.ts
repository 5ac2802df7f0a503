/**
 * Nested subvolumes inside an environment. A Btrfs snapshot never descends
 * into them: they come out as empty directories. So each clone puts its
 * source's content ones back as snapshots of their own (`/usr/local`, an
 * openSUSE-style `/var`), leaves the shared ones (`/var/lib/docker`,
 * `/var/lib/machines` ...) where they are and says how to mount them, and
 * never touches snapper's `.snapshots`.
 */
import { lstat, mkdir, readdir, rmdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SysprimeError, errnoOf } from '../../errors.js';
import { log } from '../../log.js';
import { safeInside } from '../../updaters/rootpath.js';
import { nestedKindOf } from './layout.js';
import type { SubvolumeListEntry } from './parse.js';
import { snapshotSubvolume } from './progs.js';

export interface NestedPlan {
  /** Paths below the root (`usr/local`), shallowest first: snapshotted into a clone. */
  content: string[];
  /** Shared ones: an empty directory in a clone. */
  shared: string[];
  /** snapper's `.snapshots` and what is below it. */
  snapper: string[];
}

/**
 * The nested subvolumes below `rootRel` (a subvolume path relative to the top
 * level), sorted into what a clone does with them. What is below a shared
 * or snapper subvolume belongs to it and is not looked at on its own.
 */
export function planNested(rootRel: string, list: readonly SubvolumeListEntry[], shared: readonly string[]): NestedPlan {
  const plan: NestedPlan = { content: [], shared: [], snapper: [] };
  const inner = list
    .filter((s) => s.path.startsWith(`${rootRel}/`))
    .map((s) => s.path.slice(rootRel.length + 1))
    .sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b));
  const leftAlone: string[] = [];
  for (const p of inner) {
    if (leftAlone.some((q) => p.startsWith(`${q}/`))) continue;
    const kind = nestedKindOf(p, shared);
    plan[kind].push(p);
    if (kind !== 'content') leftAlone.push(p);
  }
  return plan;
}

/**
 * Put the content subvolumes of `plan` (found below the subvolume at
 * `sourceDir`) into the new tree `dest` as writable snapshots, and warn about
 * the shared ones, each with the fstab line that mounts it. `label` names the
 * new environment, `sourceRel` the source as a subvolume path, in messages.
 */
export async function placeNested(
  sourceDir: string,
  sourceRel: string,
  dest: string,
  label: string,
  plan: NestedPlan,
  uuid: () => Promise<string>,
  /** Where each content subvolume is taken from (an import's received ones): default, below `sourceDir`. */
  sourceOf: (inner: string) => string = (inner) => join(sourceDir, inner),
): Promise<void> {
  for (const inner of plan.content) {
    const target = await safeInside(dest, inner);
    try {
      // The snapshot of the parent left an empty directory where the nested subvolume was.
      await rmdir(target);
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'ENOENT') await mkdir(dirname(target), { recursive: true, mode: 0o755 });
      else if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR') {
        throw new SysprimeError('REFUSED', `/${inner} in ${label} is not empty, so the nested subvolume ${sourceRel}/${inner} cannot be put there`, {
          hint: `empty or move /${inner} in the environment the new one is made from, or make ${sourceRel}/${inner} a plain directory`,
          cause: err,
        });
      } else throw err;
    }
    await snapshotSubvolume(sourceOf(inner), target, false);
    log.info(`${label}: nested subvolume /${inner} snapshotted from ${sourceRel}/${inner}`);
  }
  for (const inner of plan.shared) {
    log.warn(
      `${label}: /${inner} is an empty directory: the subvolume ${sourceRel}/${inner} there is shared by every environment and is not copied; ` +
        `to see it in ${label}, mount it with the fstab line "UUID=${await uuid()} /${inner} btrfs subvol=/${sourceRel}/${inner} 0 0" ` +
        `(better: move it to the top level first, so no environment's destruction can take it)`,
    );
  }
}

/** Whether a tree holds anything but directories (a shared subvolume with data in it). */
export async function holdsFiles(dir: string): Promise<boolean> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (!e.isDirectory()) return true;
    const st = await lstat(join(dir, e.name));
    if (!st.isDirectory() || (await holdsFiles(join(dir, e.name)))) return true;
  }
  return false;
}
