/**
 * Renaming an environment on Btrfs is more than one step: its metadata
 * under the new name, the subvolume's rename (the moment the new name
 * exists), then its snapshots, its pristine snapshots' names and the old
 * metadata. A kill between those left the snapshots under the old name,
 * listed for an environment that no longer exists. So a mark
 * (`ROOT/.sysprime/renaming.json`, written durably) says which rename is
 * under way until all of it is done, and recover() finishes it when the
 * subvolume moved, or forgets it (and the new name's metadata) when it did
 * not.
 */
import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { log } from '../../log.js';
import { faultPoint } from '../../process/fault.js';
import { replaceFile } from '../../os/durable.js';
import { RENAME_MARK, environmentPath, retiredPristineBase, RETIRED_SEPARATOR } from './layout.js';
import { envMetaFile, readEnvironmentMeta, removeMetaFile, writeEnvironmentMeta } from './meta.js';
import type { SubvolumeListEntry } from './parse.js';
import { pristines, renamePristine } from './pristines.js';
import { followRename } from './snapshots.js';
import type { BtrfsTop } from './top.js';

interface RenameMark {
  from: string;
  to: string;
}

const markFile = (t: BtrfsTop): string => join(t.top, RENAME_MARK);

async function readMark(t: BtrfsTop): Promise<RenameMark | null> {
  let text: string;
  try {
    text = await readFile(markFile(t), 'utf8');
  } catch {
    return null;
  }
  try {
    const doc = JSON.parse(text) as Partial<RenameMark>;
    return typeof doc.from === 'string' && typeof doc.to === 'string' ? { from: doc.from, to: doc.to } : null;
  } catch {
    return null;
  }
}

/** Rename environment `from` to `to` (both checked, `from` unmounted, `to` free), its snapshots and pristines with it. */
export async function renameEnvironmentTree(t: BtrfsTop, list: readonly SubvolumeListEntry[], from: string, to: string): Promise<void> {
  replaceFile(markFile(t), `${JSON.stringify({ from, to })}\n`, { mode: 0o644 });
  const meta = await readEnvironmentMeta(t.top, from);
  if (meta !== null) await writeEnvironmentMeta(t.top, to, meta);
  faultPoint('backend:btrfs', 'rename-marked');
  await rename(t.abs(environmentPath(from)), t.abs(environmentPath(to)));
  faultPoint('backend:btrfs', 'rename-renamed');
  await followEnvironment(t, list, from, to);
}

/** What follows the subvolume's rename: the old metadata, the snapshots, the pristine snapshots' names; then the mark. */
async function followEnvironment(t: BtrfsTop, list: readonly SubvolumeListEntry[], from: string, to: string): Promise<void> {
  await removeMetaFile(envMetaFile(t.top, from));
  await followRename(t, await t.subvolumes(), from, to);
  // Its pristine snapshots follow the name, so takePristine finds them again.
  const all = await pristines(t, list);
  for (const p of all.filter((x) => x.base === from || x.base.startsWith(`${from}${RETIRED_SEPARATOR}`))) {
    const target = to + p.base.slice(from.length);
    const squatter = all.find((x) => x.base === target);
    if (squatter !== undefined) {
      // Left by a destroyed environment of the same name and still needed by others: keep it, retired.
      await renamePristine(t, target, retiredPristineBase(to, squatter.generation), to);
    }
    await renamePristine(t, p.base, target, to);
  }
  await removeMetaFile(markFile(t));
}

/** Finish or forget a rename a kill interrupted (see the top of this file); returns what was done. */
export async function recoverRename(t: BtrfsTop): Promise<string[]> {
  const mark = await readMark(t);
  if (mark === null) return [];
  const list = await t.subvolumes();
  const has = (name: string): boolean => list.some((s) => s.path === environmentPath(name));
  if (has(mark.to) && !has(mark.from)) {
    await followEnvironment(t, list, mark.from, mark.to);
    return [`finished renaming environment ${mark.from} to ${mark.to}: its snapshots and pristine snapshots follow the name`];
  }
  if (has(mark.from) && !has(mark.to)) {
    // The subvolume never moved: the new name's metadata (written first) goes, the environment keeps its name.
    await removeMetaFile(envMetaFile(t.top, mark.to));
    await removeMetaFile(markFile(t));
    return [`undid the rename of environment ${mark.from} to ${mark.to}, which had not begun`];
  }
  log.warn(`a rename of ${mark.from} to ${mark.to} was interrupted, and ${has(mark.from) ? 'both names exist' : 'neither name exists'}: left as it is`);
  await removeMetaFile(markFile(t));
  return [];
}
