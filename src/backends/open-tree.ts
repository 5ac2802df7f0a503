import type { OpenTree } from './types.js';

/**
 * An OpenTree whose release runs once: callers release in `finally` blocks
 * and error paths that may overlap, and a second unmount or destroy of the
 * same dataset would fail or hit someone else's mount.
 */
export function releasedOnce(path: string, release: () => Promise<void>): OpenTree {
  let done: Promise<void> | null = null;
  return { path, release: () => (done ??= release()) };
}
