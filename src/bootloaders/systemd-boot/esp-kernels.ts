/**
 * Kernels and initramfs images on the ESP, one directory per environment
 * (`$ESP/sysprime/<name>/`), because systemd-boot reads only the ESP. A file
 * is copied only when the ESP's copy differs (size, then sha256), after a
 * check that all the copies fit, and the directories of environments that
 * have no entry any more are removed with their entries.
 */
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { SysprimeError, errnoOf } from '../../errors.js';
import type { BootEntry, EspUsage } from '../types.js';
import { copyDurable, fsyncPath, removeStaleTemps } from '../../os/durable.js';
import { freeBytes, sameContent } from '../esp-files.js';
import { bootFaultPoint } from '../fault.js';

export const KERNEL_DIR = 'sysprime';
/** Room kept free beyond the copies, for the entry files and the FAT's own needs. */
export const SPARE_BYTES = 256 * 1024;

export interface KernelCopy {
  name: string;
  source: string;
  dest: string;
  size: number;
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
    for (const source of [e.kernel.kernel, e.kernel.initrd]) {
      if (source === null) continue;
      const dest = join(esp, KERNEL_DIR, e.name, basename(source));
      if (await sameContent(source, dest)) continue;
      copies.push({ name: e.name, source, dest, size: statSync(source).size });
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
    await copyDurable(c.source, c.dest, {}, () => bootFaultPoint('systemd-boot', `copying-${k}`));
    bootFaultPoint('systemd-boot', `copied-${k}`);
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
