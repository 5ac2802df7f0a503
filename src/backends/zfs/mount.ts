/**
 * Mounting a dataset whose mountpoint is `/` somewhere else, and undoing it.
 *
 * OpenZFS: `mount -t zfs -o zfsutil` mounts it at any directory and leaves the
 * property alone. zfs-fuse has no mount helper and refuses
 * `zfs mount -o mountpoint=` for `/`, so the mountpoint property itself is
 * pointed at the directory for the time of the mount; the value it had is
 * saved first in a user property, so a crash in between can be undone by
 * recover().
 *
 * An environment with child datasets (zsys) is mounted as a tree: the
 * environment first, then each child that can be mounted at its place in the
 * tree, parents first; unmounted deepest first. On zfs-fuse the children
 * inherit the changed mountpoint, so `zfs mount` puts them in place.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SysprimeError } from '../../errors.js';
import { run } from '../../process/run.js';
import { altrootOf, readOne, zfs } from './commands.js';
import { INHERITED_MOUNTPOINT, PROP } from './layout.js';
import { localProp, mountTargetsOf, prop, withoutAltroot } from './parse.js';
import { readMounts } from '../../os/mounts.js';
import type { ZfsCapabilities } from './probe.js';
import { KEY_PROPS, lockedKeyProblem } from './adoption.js';

export async function mountedAt(dataset: string): Promise<string[]> {
  return mountTargetsOf(await readMounts(), dataset);
}

/** A child of an environment to mount with it: `path` is its place in the environment's tree (`/var/lib`). */
export interface ChildMount {
  dataset: string;
  path: string;
}

/** Mount an environment and its children at `dir`; on failure nothing of it stays mounted. */
export async function mountTree(dataset: string, children: readonly ChildMount[], dir: string, caps: ZfsCapabilities, opts: { readonly?: boolean } = {}): Promise<void> {
  const landing = await mountDataset(dataset, dir, caps, opts);
  try {
    for (const c of children) {
      const at = join(dir, c.path);
      if (caps.mountHelper) {
        await run('mount', ['-t', 'zfs', ...(await helperOptions(c.dataset, opts.readonly === true)), c.dataset, at]);
        continue;
      }
      // The child inherits the mountpoint just set on the environment: `zfs mount` puts it below the landing directory.
      const targets = await mountedAt(c.dataset);
      const own = join(landing, c.path);
      if (!targets.includes(own)) await zfs(['mount', c.dataset]);
      if (own !== at && !targets.includes(at)) await run('mount', ['--bind', own, at]);
    }
  } catch (err) {
    await unmountTree(dataset, children).catch(() => undefined);
    throw err;
  }
}

/** Unmount an environment's children (deepest first) and then the environment, as unmountDataset does. */
export async function unmountTree(dataset: string, children: readonly ChildMount[]): Promise<void> {
  for (const c of [...children].reverse()) {
    const record = await readOne(c.dataset, ['mountpoint']);
    const own = record === null ? null : prop(record, 'mountpoint');
    const targets = (await mountedAt(c.dataset)).filter((t) => t !== '/');
    // Binds and private mounts first; the mount at the child's own mountpoint (zfs-fuse) goes through zfs.
    for (const t of [...targets].reverse()) if (t !== own) await run('umount', [t]);
    if (own !== null && targets.includes(own)) await zfs(['unmount', c.dataset]);
  }
  await unmountDataset(dataset);
}

/**
 * The `-o` of `mount -t zfs` (OpenZFS's mount.zfs) for a dataset whose
 * mountpoint property is `mountpoint`: `zfsutil` mounts one whose mountpoint
 * ZFS manages at any directory, and mount.zfs refuses such a dataset without
 * it; a `legacy` one (mounted from fstab, as the older Root on ZFS guides left
 * their boot datasets) is refused *with* it ("cannot be mounted using 'zfs
 * mount'"), so it gets none.
 */
export function mountHelperOptions(mountpoint: string | null, readonly: boolean): string[] {
  const options = [...(mountpoint === 'legacy' ? [] : ['zfsutil']), ...(readonly ? ['ro'] : [])];
  return options.length === 0 ? [] : ['-o', options.join(',')];
}

/**
 * OpenZFS's mount options for the dataset, read with its key status in the
 * same `zfs get`: a dataset whose key is not loaded is refused in one line
 * naming the key to load (mount.zfs would only say permission denied).
 */
async function helperOptions(dataset: string, readonly: boolean): Promise<string[]> {
  const record = await readOne(dataset, ['mountpoint', ...KEY_PROPS]);
  if (record === null) throw new SysprimeError('NOT_FOUND', `dataset ${dataset} does not exist`);
  const locked = lockedKeyProblem(record, 'mount');
  if (locked !== null) throw locked;
  return mountHelperOptions(prop(record, 'mountpoint'), readonly);
}

/** Returns where the dataset's own mount is: `dir`, or below the altroot when `dir` is a bind of it. */
export async function mountDataset(dataset: string, dir: string, caps: ZfsCapabilities, opts: { readonly?: boolean } = {}): Promise<string> {
  if (!dir.startsWith('/') || dir === '/') {
    throw new SysprimeError('USAGE', `cannot mount ${dataset} at ${JSON.stringify(dir)}: the directory must be an absolute path other than /`);
  }
  await mkdir(dir, { recursive: true });
  if (caps.mountHelper) {
    await run('mount', ['-t', 'zfs', ...(await helperOptions(dataset, opts.readonly === true)), dataset, dir]);
    return dir;
  }
  const record = await readOne(dataset, ['mountpoint', PROP.savedMountpoint]);
  if (record === null) throw new SysprimeError('NOT_FOUND', `dataset ${dataset} does not exist`);
  const pool = dataset.split('/')[0] as string;
  // With an altroot (a pool imported with -R to prepare a machine) the property is taken below it: a directory
  // elsewhere is reached by mounting below the altroot and binding that mount where it was asked for.
  const altroot = await altrootOf(pool);
  const value = withoutAltroot(dir, altroot);
  const landing = altroot !== null && value === dir ? join(altroot, dir) : dir;
  // A saved value already there comes from an interrupted mount: it is the true original.
  if (localProp(record, PROP.savedMountpoint) === null) {
    const shown = localProp(record, 'mountpoint');
    const original = shown === null ? INHERITED_MOUNTPOINT : withoutAltroot(shown, altroot);
    await zfs(['set', `${PROP.savedMountpoint}=${original}`, dataset]);
  }
  await zfs(['set', `mountpoint=${value}`, dataset]);
  try {
    const targets = await mountedAt(dataset);
    if (!targets.includes(landing)) await zfs(['mount', dataset]);
    if (landing !== dir && !targets.includes(dir)) await run('mount', ['--bind', landing, dir]);
  } catch (err) {
    await unmountDataset(dataset);
    throw err;
  }
  return landing;
}

/** Unmount every mount of the dataset except `/`, and put a changed mountpoint back. */
export async function unmountDataset(dataset: string): Promise<void> {
  const record = await readOne(dataset, ['mountpoint', PROP.savedMountpoint]);
  if (record === null) throw new SysprimeError('NOT_FOUND', `dataset ${dataset} does not exist`);
  const targets = (await mountedAt(dataset)).filter((t) => t !== '/');
  const current = localProp(record, PROP.savedMountpoint) !== null ? prop(record, 'mountpoint') : null;
  // Binds of a mount below the altroot first: the dataset's own mount goes last, through zfs.
  for (const t of targets) if (t !== current) await run('umount', [t]);
  if (current !== null && targets.includes(current)) await zfs(['unmount', dataset]);
  await restoreMountpoint(dataset);
}

/** Put back the mountpoint saved before a private mount; false when none was saved. */
export async function restoreMountpoint(dataset: string): Promise<boolean> {
  const record = await readOne(dataset, [PROP.savedMountpoint]);
  const saved = record === null ? null : localProp(record, PROP.savedMountpoint);
  if (saved === null) return false;
  // Setting `/` back on a mounted dataset would remount it over the running root (OpenZFS).
  const still = (await mountedAt(dataset)).filter((t) => t !== '/');
  if (still.length > 0) {
    throw new SysprimeError('BUSY', `cannot put back the mountpoint of ${dataset}: it is still mounted at ${still.join(', ')}`, {
      hint: `unmount it first: zfs unmount ${dataset}`,
    });
  }
  if (saved === INHERITED_MOUNTPOINT) await zfs(['inherit', 'mountpoint', dataset]);
  else await zfs(['set', `mountpoint=${saved}`, dataset]);
  await zfs(['inherit', PROP.savedMountpoint, dataset]);
  return true;
}
