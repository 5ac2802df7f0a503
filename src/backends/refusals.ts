/**
 * What every backend refuses, worded once: both backends call these with
 * what they read of the filesystem, so a refusal has the same code and the
 * same words on ZFS and on Btrfs (the contract test checks the codes).
 * The rules themselves are written on the `Backend` interface (types.ts).
 */
import { SysprimeError } from '../errors.js';
import type { ListingLimit } from './types.js';

/** How an environment is in use when a backend is asked to change it. */
export interface InUse {
  /** Where it is mounted now ('/' when it is the running root). */
  mountPoints: readonly string[];
  /** It is the filesystem's boot default (ZFS bootfs, Btrfs default subvolume). */
  isDefault: boolean;
}

/** destroyEnvironment: never the running root, a mounted environment or the boot default. */
export function refuseDestroy(name: string, use: InUse): void {
  if (use.mountPoints.length > 0) {
    const running = use.mountPoints.includes('/');
    throw new SysprimeError('REFUSED', `environment "${name}" is mounted at ${use.mountPoints.join(', ')}`, {
      hint: running ? 'it is the running system: boot another environment first' : `run \`sysprime umount ${name}\` first`,
    });
  }
  if (use.isDefault) {
    throw new SysprimeError('REFUSED', `environment "${name}" is the filesystem's default`, {
      hint: 'make another one the default with `sysprime activate OTHER` first',
    });
  }
}

/** renameEnvironment: never the running root (its next boot names it) nor a mounted environment. */
export function refuseRename(name: string, mountPoints: readonly string[]): void {
  if (mountPoints.includes('/')) {
    throw new SysprimeError('REFUSED', `"${name}" is the running environment; renaming it would break its next boot`, {
      hint: 'rename it from another environment',
    });
  }
  if (mountPoints.length > 0) {
    throw new SysprimeError('REFUSED', `environment "${name}" is mounted at ${mountPoints.join(', ')}`, {
      hint: `run \`sysprime umount ${name}\` first`,
    });
  }
}

/**
 * mount: true when it is mounted at `dir` already (nothing to do); refuses
 * the running root and an environment mounted somewhere else.
 */
export function mountedThereAlready(name: string, mountPoints: readonly string[], dir: string): boolean {
  if (mountPoints.includes('/')) {
    throw new SysprimeError('REFUSED', `environment "${name}" is the running root: it cannot be mounted elsewhere`, {
      hint: 'boot another environment first',
    });
  }
  if (mountPoints.includes(dir)) return true;
  if (mountPoints.length > 0) {
    throw new SysprimeError('BUSY', `environment ${name} is already mounted at ${mountPoints.join(', ')}`, {
      hint: `unmount it first: sysprime umount ${name}`,
    });
  }
  return false;
}

/** unmount: never the running root. */
export function refuseUnmountingRoot(name: string, mountPoints: readonly string[]): void {
  if (mountPoints.includes('/')) {
    throw new SysprimeError('REFUSED', `environment "${name}" is the running root: it cannot be unmounted`, {
      hint: 'boot another environment first',
    });
  }
}

/** Why a listing of changes past its limit is not used (ListingLimit): the caller walks instead. */
export function listingTooLong(limit: ListingLimit): string {
  return `more than about ${limit.changes} changes: walking the tree is cheaper than reading them all again`;
}
