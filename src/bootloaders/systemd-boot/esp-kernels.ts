/**
 * Kernels and initramfs images on the ESP, one directory per environment
 * (`$ESP/sysprime/<name>/`), because systemd-boot reads only the ESP. A file
 * is copied only when the ESP's copy differs (size, then sha256), after a
 * check that all the copies fit, and the directories of environments that
 * have no entry any more are removed with their entries.
 */
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { withFileAt } from '../../os/confined.js';
import { SysprimeError, errnoOf } from '../../errors.js';
import type { BootEntry, EspUsage } from '../types.js';
import { copyDurable, fsyncPath, removeStaleTemps } from '../../os/durable.js';
import { freeBytes, sameContent } from '../esp-files.js';
import { faultPoint } from '../../process/fault.js';

const KERNEL_DIR = 'sysprime';
/** Room kept free beyond the copies, for the entry files and the FAT's own needs. */
export const SPARE_BYTES = 256 * 1024;

export interface KernelCopy {
  name: string;
  source: string;
  dest: string;
  size: number;
  /** Where the source is read from: inside an environment's tree, or a plain path. */
  from: SourceOf;
}

type SourceOf = { tree: string; inTree: string } | { path: string };

/**
 * Run `fn` on the source as it is now. A kernel inside an environment is
 * opened through the confined reader, so a link planted there (or swapped in
 * after the kernel was found) is never followed to a file of the running
 * system, which would then land on the ESP.
 */
async function readSource<T>(name: string, from: SourceOf, fn: (path: string, size: number) => Promise<T>): Promise<T> {
  if ('path' in from) return fn(from.path, statSync(from.path).size);
  // Wrapped: a function that returns nothing must not read as a file that was not there.
  const done = await withFileAt(from.tree, from.inTree, async (path, size) => ({ value: await fn(path, size) }));
  if (done === undefined) {
    throw new SysprimeError('REFUSED', `${from.inTree} of "${name}" is not a regular file (a link is not followed)`, {
      hint: 'put the kernel and initramfs in the environment\'s /boot as files, then run `sysprime doctor --fix`',
    });
  }
  return done.value;
}

export interface KernelPlan {
  /** ESP-relative paths for the entry: `/sysprime/<name>/vmlinuz-<v>`. */
  paths: Map<string, { linux: string; initrd: string | null }>;
  copies: KernelCopy[];
  bytesNeeded: number;
}

export async function planKernelCopies(esp: string, entries: readonly BootEntry[]): Promise<KernelPlan> {
  const paths = new Map<string, { linux: string; initrd: string | null }>();
  const copies: KernelCopy[] = [];
  for (const e of entries) {
    const rel = (file: string): string => `/${KERNEL_DIR}/${e.name}/${basename(file)}`;
    paths.set(e.name, { linux: rel(e.kernel.kernel), initrd: e.kernel.initrd === null ? null : rel(e.kernel.initrd) });
    const k = e.kernel;
    for (const [source, inTree] of [[k.kernel, k.kernelInTree], [k.initrd, k.initrdInTree]] as const) {
      if (source === null || inTree === null) continue;
      const dest = join(esp, KERNEL_DIR, e.name, basename(source));
      const from: SourceOf = k.tree !== undefined ? { tree: k.tree, inTree } : { path: source };
      const { same, size } = await readSource(e.name, from, async (path, size) => ({ same: await sameContent(path, dest), size }));
      if (same) continue;
      copies.push({ name: e.name, source, dest, size, from });
    }
  }
  return { paths, copies, bytesNeeded: copies.reduce((n, c) => n + c.size, 0) };
}

export function checkSpace(esp: string, plan: KernelPlan, free: (path: string) => number = freeBytes): void {
  if (plan.bytesNeeded === 0) return;
  const available = free(esp);
  if (plan.bytesNeeded + SPARE_BYTES > available) {
    const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
    const who = [...new Set(plan.copies.map((c) => c.name))].join(', ');
    throw new SysprimeError('NO_SPACE', `the ESP at ${esp} has ${mib(available)} free, and the kernels of ${who} need ${mib(plan.bytesNeeded + SPARE_BYTES)}`, {
      hint: 'destroy old environments (`sysprime prune`) so their kernels leave the ESP, or make the ESP larger; nothing was written',
    });
  }
}

export async function copyKernels(esp: string, plan: KernelPlan): Promise<void> {
  const dirs = new Set<string>();
  let n = 0;
  for (const c of plan.copies) {
    const dir = join(esp, KERNEL_DIR, c.name);
    mkdirSync(dir, { recursive: true });
    const k = ++n;
    // Crash points (fault.ts): the copy whole under its temporary name, then renamed into place.
    await readSource(c.name, c.from, (path) => copyDurable(path, c.dest, {}, () => faultPoint('boot:systemd-boot', `copying-${k}`)));
    faultPoint('boot:systemd-boot', `copied-${k}`);
    dirs.add(dir);
  }
  for (const d of dirs) fsyncPath(d);
  if (dirs.size > 0) fsyncPath(join(esp, KERNEL_DIR));
}

/** Remove kernel directories of environments without an entry, and old kernels in the others. */
export function pruneKernels(esp: string, plan: KernelPlan): string[] {
  const base = join(esp, KERNEL_DIR);
  let dirs: string[];
  try {
    dirs = readdirSync(base);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return [];
    throw err;
  }
  const removed: string[] = [];
  for (const d of dirs) {
    const keep = plan.paths.get(d);
    const dir = join(base, d);
    if (!keep) {
      rmSync(dir, { recursive: true, force: true });
      removed.push(`${KERNEL_DIR}/${d}`);
      continue;
    }
    removeStaleTemps(dir);
    const wanted = new Set([keep.linux, keep.initrd].filter((p): p is string => p !== null).map((p) => basename(p)));
    for (const f of readdirSync(dir)) {
      if (wanted.has(f)) continue;
      rmSync(join(dir, f), { recursive: true, force: true });
      removed.push(`${KERNEL_DIR}/${d}/${f}`);
    }
  }
  fsyncPath(base);
  return removed;
}

/** Free space on the ESP and the bytes of each environment's kernel directory (for retention). */
export function espUsage(esp: string, free: (path: string) => number = freeBytes): EspUsage {
  const base = join(esp, KERNEL_DIR);
  const perEnvironment = new Map<string, number>();
  let names: string[] = [];
  try {
    names = readdirSync(base);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
  for (const name of names) {
    let bytes = 0;
    for (const f of readdirSync(join(base, name), { withFileTypes: true })) if (f.isFile()) bytes += statSync(join(base, name, f.name)).size;
    perEnvironment.set(name, bytes);
  }
  return { free: Math.max(0, free(esp) - SPARE_BYTES), need: Math.max(0, ...perEnvironment.values()), perEnvironment };
}
