/**
 * Btrfs has no user properties, so sysprime keeps its metadata as small JSON
 * files in the top-level subvolume (ROOT/.sysprime/), one per environment and
 * one per pristine snapshot: the filesystem carries its own story, and a
 * snapshot of an environment never drags stale metadata along.
 *
 * Every write is atomic (temporary file, fsync, rename, fsync of the
 * directory), so a crash leaves the old file or the new one, never half of
 * one; the temporary files a crash can leave are removed by recover().
 */
import { readFile, readdir, rm, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fsyncPath, isDurableTemp, replaceFile } from '../../os/durable.js';
import { SysprimeError, errnoOf, messageOf } from '../../errors.js';
import { ENV_META_DIR, PRISTINE_META_DIR, SNAPSHOT_META_DIR } from './layout.js';

const FORMAT_VERSION = 1;

export interface EnvironmentMeta {
  generation: number;
  meta: Record<string, string>;
}

export interface PristineMeta {
  generation: number;
  /** The environment it was taken from, as it was named then. */
  source: string;
}

export interface SnapshotMeta {
  /** The environment's generation when the snapshot was taken. */
  generation: number;
  /** The environment it is a snapshot of. */
  environment: string;
}

/** Temporary names of versions before the durable writer; its own are found by isDurableTemp(). */
const OLD_TEMP_RE = /^\..+\.tmp-\d+-[0-9a-f]+$/;

export function envMetaFile(top: string, name: string): string {
  return join(top, ENV_META_DIR, `${name}.json`);
}

export function pristineMetaFile(top: string, base: string): string {
  return join(top, PRISTINE_META_DIR, `${base}.json`);
}

export function snapshotMetaFile(top: string, base: string): string {
  return join(top, SNAPSHOT_META_DIR, `${base}.json`);
}

export async function ensureMetaDirs(top: string): Promise<void> {
  await mkdir(join(top, ENV_META_DIR), { recursive: true });
  await mkdir(join(top, PRISTINE_META_DIR), { recursive: true });
  await mkdir(join(top, SNAPSHOT_META_DIR), { recursive: true });
}

async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  try {
    replaceFile(path, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o644 });
  } catch (err) {
    throw new SysprimeError('IO', `cannot write sysprime metadata ${path}: ${messageOf(err)}`, { cause: err });
  }
}

async function readJson(path: string): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw new SysprimeError('IO', `cannot read sysprime metadata ${path}: ${messageOf(err)}`, { cause: err });
  }
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // reported below with the same message as a wrong shape
  }
  throw corrupt(path, 'it is not a JSON object');
}

function corrupt(path: string, why: string): SysprimeError {
  return new SysprimeError('BACKEND', `sysprime metadata ${path} is damaged: ${why}`, {
    hint: 'restore it from a backup, or fix it by hand (see docs/backend-btrfs.md for its format)',
  });
}

function generationOf(path: string, doc: Record<string, unknown>): number {
  const g = doc['generation'];
  if (typeof g !== 'number' || !Number.isSafeInteger(g) || g < 0) throw corrupt(path, '"generation" is not a whole number');
  return g;
}

export async function readEnvironmentMeta(top: string, name: string): Promise<EnvironmentMeta | null> {
  const path = envMetaFile(top, name);
  const doc = await readJson(path);
  if (doc === null) return null;
  const meta: Record<string, string> = {};
  const raw = doc['meta'] ?? {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw corrupt(path, '"meta" is not an object');
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') throw corrupt(path, `"meta.${k}" is not a string`);
    meta[k] = v;
  }
  return { generation: generationOf(path, doc), meta };
}

export async function writeEnvironmentMeta(top: string, name: string, value: EnvironmentMeta): Promise<void> {
  await writeJsonAtomic(envMetaFile(top, name), { version: FORMAT_VERSION, generation: value.generation, meta: value.meta });
}

export async function readPristineMeta(top: string, base: string): Promise<PristineMeta | null> {
  const path = pristineMetaFile(top, base);
  const doc = await readJson(path);
  if (doc === null) return null;
  const source = doc['source'];
  if (typeof source !== 'string') throw corrupt(path, '"source" is not a string');
  return { generation: generationOf(path, doc), source };
}

export async function writePristineMeta(top: string, base: string, value: PristineMeta): Promise<void> {
  await writeJsonAtomic(pristineMetaFile(top, base), { version: FORMAT_VERSION, generation: value.generation, source: value.source });
}

export async function readSnapshotMeta(top: string, base: string): Promise<SnapshotMeta | null> {
  const path = snapshotMetaFile(top, base);
  const doc = await readJson(path);
  if (doc === null) return null;
  const environment = doc['environment'];
  if (typeof environment !== 'string') throw corrupt(path, '"environment" is not a string');
  return { generation: generationOf(path, doc), environment };
}

export async function writeSnapshotMeta(top: string, base: string, value: SnapshotMeta): Promise<void> {
  await writeJsonAtomic(snapshotMetaFile(top, base), { version: FORMAT_VERSION, generation: value.generation, environment: value.environment });
}

export async function removeMetaFile(path: string): Promise<void> {
  await rm(path, { force: true });
  try {
    fsyncPath(dirname(path));
  } catch {
    // removed either way; a crash brings back at most a file recover() reads again
  }
}

/** Names (without `.json`) of the metadata files in one of the two directories. */
export async function listMetaNames(top: string, which: 'envs' | 'pristine' | 'snapshots'): Promise<string[]> {
  const dir = join(top, which === 'envs' ? ENV_META_DIR : which === 'pristine' ? PRISTINE_META_DIR : SNAPSHOT_META_DIR);
  try {
    return (await readdir(dir)).filter((f) => f.endsWith('.json') && !f.startsWith('.')).map((f) => f.slice(0, -'.json'.length));
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return [];
    throw err;
  }
}

/** Remove temporary files an interrupted write left; returns their paths. */
export async function removeTempFiles(top: string): Promise<string[]> {
  const removed: string[] = [];
  for (const rel of [ENV_META_DIR, PRISTINE_META_DIR, SNAPSHOT_META_DIR]) {
    const dir = join(top, rel);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') continue;
      throw err;
    }
    for (const n of names.filter((f) => OLD_TEMP_RE.test(f) || isDurableTemp(f))) {
      await rm(join(dir, n), { force: true });
      removed.push(join(dir, n));
    }
  }
  return removed;
}
