/**
 * Keeping a walk below its root (`-R`). Entries found by walking are below
 * it by construction (no link is followed); paths given by name, a rules
 * subtree or an `-I` list, are not: the kernel follows a link in the middle
 * of a path, and `..` climbs out. Solaris' bart lets both through; here they
 * are refused, so a manifest never describes a file outside its root.
 */
import { lstatSync } from 'node:fs';
import { displayPath, toFsPath } from './types.js';

/**
 * Why the path `comps` below `prefix` would leave it, or undefined when it
 * stays inside (or does not exist, which the caller reports itself).
 */
export function escapeOf(prefix: string, comps: readonly string[]): string | undefined {
  const dots = comps.find((c) => c === '.' || c === '..');
  if (dots !== undefined) return `has a '${dots}' component, which could leave the root`;
  for (let i = 1; i < comps.length; i++) {
    const above = '/' + comps.slice(0, i).join('/');
    const st = lstatSync(toFsPath(prefix + above), { throwIfNoEntry: false });
    if (st === undefined || !st.isDirectory()) {
      if (st?.isSymbolicLink()) return `passes through the symbolic link ${displayPath(above)}, which is not followed`;
      return undefined;
    }
  }
  return undefined;
}
