/**
 * Finding the kernel an environment boots: the newest `vmlinuz-<version>` in
 * its `/boot`, ordered the way dpkg orders versions (so `6.1.0-13` is newer
 * than `6.1.0-9`, and `6.2~rc1` older than `6.2`), with the initramfs of the
 * same version when there is one.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { isSysprimeError } from '../errors.js';
import { lstatIn, withDirIn } from '../os/confined.js';
import type { KernelPair } from './types.js';

function order(c: string | undefined): number {
  if (c === undefined) return 0;
  if (c >= '0' && c <= '9') return 0;
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return c.charCodeAt(0);
  if (c === '~') return -1;
  return c.charCodeAt(0) + 256;
}

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';

/** dpkg's comparison of one version part (upstream or revision): alternating non-digit and digit runs. */
function compareFragment(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const ac = order(i < a.length ? a[i] : undefined);
      const bc = order(j < b.length ? b[j] : undefined);
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (a[i] === '0') i++;
    while (b[j] === '0') j++;
    let firstDiff = 0;
    while (isDigit(a[i]) && isDigit(b[j])) {
      if (firstDiff === 0) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(a[i])) return 1;
    if (isDigit(b[j])) return -1;
    if (firstDiff !== 0) return firstDiff;
  }
  return 0;
}

function splitVersion(v: string): { epoch: number; upstream: string; revision: string } {
  const colon = v.indexOf(':');
  const epoch = colon > 0 && /^\d+$/.test(v.slice(0, colon)) ? Number(v.slice(0, colon)) : 0;
  const rest = colon > 0 && /^\d+$/.test(v.slice(0, colon)) ? v.slice(colon + 1) : v;
  const dash = rest.lastIndexOf('-');
  return dash >= 0 ? { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) } : { epoch, upstream: rest, revision: '' };
}

/** Negative when a is older than b, 0 when equal, positive when newer (dpkg --compare-versions). */
export function compareVersions(a: string, b: string): number {
  const va = splitVersion(a);
  const vb = splitVersion(b);
  if (va.epoch !== vb.epoch) return va.epoch - vb.epoch;
  const up = compareFragment(va.upstream, vb.upstream);
  if (up !== 0) return up;
  return compareFragment(va.revision, vb.revision);
}

const KERNEL_RE = /^vmlinuz-(.+)$/;
const INITRD_NAMES = (v: string): string[] => [`initrd.img-${v}`, `initramfs-${v}.img`];

/**
 * From the names of the regular files in a `/boot`, the newest kernel version
 * and its initramfs name. Pure: the caller lists the directory.
 */
export function pickNewestKernel(files: readonly string[]): { version: string; kernel: string; initrd: string | null } | null {
  const present = new Set(files);
  const versions = files
    .map((f) => KERNEL_RE.exec(f)?.[1])
        // dpkg's unpacked-but-not-renamed files (`.dpkg-new`, `.dpkg-tmp` ...) and backups are not kernels to boot.
    .filter((v): v is string => v !== undefined && !v.endsWith('.old') && !v.endsWith('.bak') && !/\.dpkg-[a-z]+$/.test(v));
  if (versions.length === 0) return null;
  const newest = versions.sort(compareVersions).at(-1)!;
  const initrd = INITRD_NAMES(newest).find((n) => present.has(n)) ?? null;
  return { version: newest, kernel: `vmlinuz-${newest}`, initrd };
}

/**
 * The newest kernel of the tree at `tree`, or null when its `/boot` has none.
 * The tree is an environment, read through the confined reader: a `/boot`
 * that is a link, and kernels that are links, do not count, since an
 * absolute target resolves on the running system instead.
 */
export function findKernel(tree: string): KernelPair | null {
  let names: string[];
  try {
    names =
      withDirIn(tree, '/boot', { create: false }, (dir) => readdirSync(dir.self).filter((n) => lstatIn(dir, n)?.isFile() === true)) ?? [];
  } catch (err) {
    // No tree there, or a /boot that is a link or not a directory: no kernel to boot from it.
    if (isSysprimeError(err, 'REFUSED') || isSysprimeError(err, 'NOT_FOUND')) return null;
    throw err;
  }
  const picked = pickNewestKernel(names);
  if (!picked) return null;
  const boot = join(tree, 'boot');
  return {
    version: picked.version,
    kernel: join(boot, picked.kernel),
    initrd: picked.initrd === null ? null : join(boot, picked.initrd),
    kernelInTree: `/boot/${picked.kernel}`,
    initrdInTree: picked.initrd === null ? null : `/boot/${picked.initrd}`,
    tree,
  };
}
