/**
 * The admin's snapshots on Btrfs (`sysprime snapshot`): read-only
 * subvolumes ROOT/.snapshots/<env>@<name>, each with its metadata file
 * (meta.ts) saying the environment and its generation. Made under a
 * `.partial-` name and renamed into place once the metadata is written;
 * deleted by renaming back to a `.partial-` name first, so a crash leaves
 * either a whole snapshot or one recover() deletes.
 *
 * Like a pristine, a snapshot holds no nested subvolumes (Btrfs stops a
 * snapshot at them): an environment made from it takes them from its
 * environment as it is then.
 */
import { rename } from 'node:fs/promises';
import { SysprimeError } from '../../errors.js';
import { log } from '../../log.js';
import { faultPoint } from '../../process/fault.js';
import type { SnapshotInfo } from '../types.js';
import { partialSnapshotPath, roleOf, snapshotBase, snapshotPath } from './layout.js';
import { readEnvironmentMeta, readSnapshotMeta, removeMetaFile, snapshotMetaFile, writeSnapshotMeta } from './meta.js';
import type { SubvolumeListEntry } from './parse.js';
import { deleteSubvolumeAt, showSubvolume, snapshotSubvolume } from './progs.js';
import { environmentPath } from './layout.js';
import type { BtrfsTop } from './top.js';

export interface SnapshotRecord extends SnapshotInfo {
  /** Absolute path of the subvolume. */
  path: string;
}

export async function snapshots(t: BtrfsTop, list: readonly SubvolumeListEntry[]): Promise<SnapshotRecord[]> {
  const out: SnapshotRecord[] = [];
  for (const s of list) {
    const role = roleOf(s.path);
    if (role.role !== 'snapshot') continue;
    const base = snapshotBase(role.environment, role.name);
    const meta = await readSnapshotMeta(t.top, base);
    if (meta === null) {
      log.warn(`${s.path} on ${t.describe()} has no sysprime metadata (${snapshotMetaFile(t.top, base)}); it is not listed as a snapshot`);
      continue;
    }
    const shown = await showSubvolume(t.abs(s.path));
    out.push({
      environment: role.environment,
      name: role.name,
      id: s.path,
      path: t.abs(s.path),
      generation: meta.generation,
      created: shown.created ?? new Date(0),
      createdOrder: s.id,
    });
  }
  return out.sort((a, b) => a.createdOrder - b.createdOrder);
}

export function snapshotOf(t: BtrfsTop, all: readonly SnapshotRecord[], environment: string, name: string): SnapshotRecord {
  const found = all.find((x) => x.environment === environment && x.name === name);
  if (found === undefined) {
    throw new SysprimeError('NOT_FOUND', `environment "${environment}" has no snapshot "${name}" on ${t.describe()}`, {
      hint: '`sysprime list --snapshots` shows the snapshots',
    });
  }
  return found;
}

/** Take snapshot NAME of environment ENV (which the caller found). */
export async function takeSnapshot(t: BtrfsTop, list: readonly SubvolumeListEntry[], environment: string, name: string): Promise<SnapshotRecord> {
  if (list.some((s) => s.path === snapshotPath(environment, name))) {
    throw new SysprimeError('EXISTS', `environment "${environment}" already has a snapshot "${name}" (${snapshotPath(environment, name)})`, {
      hint: 'choose another name; `sysprime list --snapshots` shows the ones taken',
    });
  }
  const env = await readEnvironmentMeta(t.top, environment);
  if (env === null) {
    throw new SysprimeError('BACKEND', `environment "${environment}" has no sysprime metadata, so its generation is unknown`, {
      hint: 'record it first (setGeneration), then take the snapshot',
    });
  }
  const partial = partialSnapshotPath(environment, name);
  await t.clearPartial(partial, list);
  await snapshotSubvolume(t.abs(environmentPath(environment)), t.abs(partial), true);
  const base = snapshotBase(environment, name);
  try {
    await writeSnapshotMeta(t.top, base, { generation: env.generation, environment });
    faultPoint('backend:btrfs', 'snapshot-written');
    await rename(t.abs(partial), t.abs(snapshotPath(environment, name)));
  } catch (err) {
    await removeMetaFile(snapshotMetaFile(t.top, base)).catch(() => undefined);
    await deleteSubvolumeAt(t.abs(partial)).catch(() => undefined);
    throw err;
  }
  const now = await t.subvolumes();
  return snapshotOf(t, await snapshots(t, now), environment, name);
}

/** Delete one snapshot: out of its name first, then the subvolume, then its metadata. */
export async function deleteSnapshot(t: BtrfsTop, snap: SnapshotRecord, list: readonly SubvolumeListEntry[]): Promise<void> {
  const partial = partialSnapshotPath(snap.environment, snap.name);
  await t.clearPartial(partial, list);
  await rename(snap.path, t.abs(partial));
  faultPoint('backend:btrfs', 'snapshot-renamed');
  await t.deleteSubvolumeTree(partial, await t.subvolumes());
  await removeMetaFile(snapshotMetaFile(t.top, snapshotBase(snap.environment, snap.name)));
}

/** After environment FROM became TO: its snapshots follow the name, metadata first (a crash leaves an orphan file recover() removes). */
export async function followRename(t: BtrfsTop, list: readonly SubvolumeListEntry[], from: string, to: string): Promise<void> {
  for (const snap of (await snapshots(t, list)).filter((x) => x.environment === from)) {
    if (list.some((s) => s.path === snapshotPath(to, snap.name))) {
      log.warn(`${snap.id} keeps its name: ${snapshotPath(to, snap.name)} exists already`);
      continue;
    }
    await writeSnapshotMeta(t.top, snapshotBase(to, snap.name), { generation: snap.generation, environment: to });
    await rename(snap.path, t.abs(snapshotPath(to, snap.name)));
    await removeMetaFile(snapshotMetaFile(t.top, snapshotBase(from, snap.name)));
  }
}
