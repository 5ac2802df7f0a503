/**
 * The pristine snapshots of a Btrfs filesystem: read-only subvolumes
 * ROOT/.pristine/<name>, each with its metadata file (meta.ts) saying its
 * generation. A snapshot without one is not used.
 */
import { rename } from 'node:fs/promises';
import { SysprimeError } from '../../errors.js';
import { log } from '../../log.js';
import type { PristineInfo } from '../types.js';
import { pristinePath, roleOf } from './layout.js';
import { pristineMetaFile, readPristineMeta, removeMetaFile, writePristineMeta } from './meta.js';
import type { SubvolumeListEntry } from './parse.js';
import { showSubvolume } from './progs.js';
import type { BtrfsTop } from './top.js';

export interface PristineRecord extends PristineInfo {
  base: string;
  path: string;
}

export async function pristines(t: BtrfsTop, list: readonly SubvolumeListEntry[]): Promise<PristineRecord[]> {
  const envNames = new Set(list.flatMap((s) => { const r = roleOf(s.path); return r.role === 'environment' ? [r.name] : []; }));
  const out: PristineRecord[] = [];
  for (const s of list) {
    const role = roleOf(s.path);
    if (role.role !== 'pristine') continue;
    const meta = await readPristineMeta(t.top, role.base);
    if (meta === null) {
      log.warn(`${s.path} on ${t.describe()} has no sysprime metadata (${pristineMetaFile(t.top, role.base)}); it is not used as a pristine state`);
      continue;
    }
    const shown = await showSubvolume(t.abs(s.path));
    out.push({
      id: s.path,
      base: role.base,
      path: t.abs(s.path),
      generation: meta.generation,
      created: shown.created ?? new Date(0),
      holder: envNames.has(role.holder) ? role.holder : null,
    });
  }
  return out;
}

export function pristineOf(t: BtrfsTop, all: readonly PristineRecord[], generation: number): PristineRecord {
  const p = all.find((x) => x.generation === generation);
  if (p === undefined) {
    throw new SysprimeError('NOT_FOUND', `${t.describe()} has no pristine snapshot of generation ${generation}`, {
      hint: 'see `sysprime list`; pristine states of pruned generations are gone',
    });
  }
  return p;
}

/** Move a pristine snapshot to another base name, metadata first (a crash leaves an orphan file, which recover() removes). */
export async function renamePristine(t: BtrfsTop, from: string, to: string, source: string): Promise<void> {
  const meta = await readPristineMeta(t.top, from);
  if (meta === null) {
    throw new SysprimeError('BACKEND', `${pristinePath(from)} has no sysprime metadata`, {
      hint: `delete it (btrfs subvolume delete ${t.abs(pristinePath(from))}) or write ${pristineMetaFile(t.top, from)} by hand`,
    });
  }
  await writePristineMeta(t.top, to, { generation: meta.generation, source });
  await rename(t.abs(pristinePath(from)), t.abs(pristinePath(to)));
  await removeMetaFile(pristineMetaFile(t.top, from));
}

export async function deletePristine(t: BtrfsTop, p: PristineRecord, list: readonly SubvolumeListEntry[]): Promise<void> {
  await t.deleteSubvolumeTree(p.id, list);
  await removeMetaFile(pristineMetaFile(t.top, p.base));
}
