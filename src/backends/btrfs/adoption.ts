/** What the Btrfs backend can adopt as an environment, checked before anything is written. */
import { SysprimeError } from '../../errors.js';
import { isAtOrBelow, mountAt } from '../../os/mounts.js';
import { ROOT_DIR } from './layout.js';
import type { SubvolumeListEntry } from './parse.js';
import { showSubvolume } from './progs.js';
import { isDirectory, slashed, type BtrfsTop, type FsView } from './top.js';

/**
 * What `adopt(source)` would take, and whether it must be snapshotted; refuses
 * (before anything is written) a source that cannot become an environment.
 */
export async function adoptSource(t: BtrfsTop, fs: FsView, list: readonly SubvolumeListEntry[], source: string): Promise<{ rel: string; topLevel: boolean; mustSnapshot: boolean }> {
  let rel: string;
  if (source === '/') {
    const root = mountAt(fs.all, '/');
    if (root === undefined || root.fsType !== 'btrfs' || root.dev !== fs.topMount.dev) {
      throw new SysprimeError('BACKEND', `the running root is not on ${t.describe()}`, {
        hint: 'set [btrfs] top to the top-level subvolume of the filesystem that holds /, or name the subvolume to adopt',
      });
    }
    rel = root.root.replace(/^\/+/, '');
  } else {
    rel = source.replace(/^\/+|\/+$/g, '');
    if (rel === '' || rel.split('/').some((p) => p === '.' || p === '..' || p === '')) {
      throw new SysprimeError('USAGE', `"${source}" is not a subvolume path relative to the top-level subvolume`, {
        hint: 'name it as `btrfs subvolume list` prints it, like "@", or pass "/" for the running root',
      });
    }
  }
  if (rel === ROOT_DIR || rel.startsWith(`${ROOT_DIR}/`)) {
    throw new SysprimeError('REFUSED', `${rel} is already below ${ROOT_DIR}/`, { hint: 'use `sysprime rename` for an environment' });
  }
  const topLevel = rel === '';
  if (topLevel) return { rel, topLevel, mustSnapshot: true };
  if (!list.some((s) => s.path === rel)) {
    const what = source === '/' ? `the running root (${rel} on ${t.describe()})` : rel;
    if (await isDirectory(t.abs(rel))) {
      throw new SysprimeError('REFUSED', `${what} is a plain directory, not a subvolume, so it cannot be snapshotted as an environment`, {
        hint: `adopt the subvolume that holds it (see \`btrfs subvolume list ${t.top}\`), or move the system into a subvolume of its own first`,
      });
    }
    throw new SysprimeError('NOT_FOUND', `no subvolume ${rel} on ${t.describe()}`, { hint: `see \`btrfs subvolume list ${t.top}\`` });
  }
  const mounted = fs.mounts.some((m) => isAtOrBelow(m.root, slashed(rel)));
  const readonly = (await showSubvolume(t.abs(rel))).readonly;
  // A mounted subvolume (the running root) must stay where its mounts and fstab expect it; a read-only one would give a read-only environment.
  return { rel, topLevel, mustSnapshot: mounted || readonly };
}
