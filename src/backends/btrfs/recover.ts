/**
 * What an interrupted run leaves on a Btrfs filesystem, undone: private
 * mounts, temporary files, `.partial-` subvolumes, metadata of subvolumes
 * that are gone.
 */
import { readdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isAtOrBelow } from '../../os/mounts.js';
import { processAlive } from '../../process/alive.js';
import { ENV_META_DIR, PARTIAL_PREFIX, RECEIVE_DIR_PREFIX, PRISTINE_DIR, PRISTINE_META_DIR, ROOT_DIR, SNAPSHOT_DIR, SNAPSHOT_META_DIR, environmentPath, partialOwner, pristinePath, roleOf } from './layout.js';
import { envMetaFile, listMetaNames, pristineMetaFile, removeMetaFile, removeTempFiles, snapshotMetaFile } from './meta.js';
import { recoverRename } from './rename.js';
import { slashed, type BtrfsTop } from './top.js';

export async function recover(t: BtrfsTop): Promise<string[]> {
  const done: string[] = [];
  let fs = await t.view();
  const isPartialRoot = (root: string): boolean =>
    root.startsWith(slashed(`${ROOT_DIR}/${PARTIAL_PREFIX}`)) || root.startsWith(slashed(`${PRISTINE_DIR}/${PARTIAL_PREFIX}`));
  const stale = fs.mounts.filter(
    (m) => m.mountPoint !== '/' && m.root.startsWith(slashed(`${ROOT_DIR}/`)) && (isAtOrBelow(m.mountPoint, t.privateDir) || isPartialRoot(m.root)),
  );
  for (const m of stale.sort((a, b) => a.mountPoint.split('/').length - b.mountPoint.split('/').length)) {
    fs = await t.view();
    if (!fs.all.some((x) => x.id === m.id)) continue; // went with a parent already
    for (const mp of await t.unmountTree(fs, m.mountPoint)) done.push(`unmounted ${mp}`);
  }

  for (const f of await removeTempFiles(t.top)) done.push(`removed temporary file ${f}`);

  let list = await t.subvolumes();
  // A live drift's or export's snapshot, or a live import's receive, is at work, not left over (export takes no lock).
  const working = (path: string): boolean => {
    const owner = partialOwner(path);
    return owner !== null && processAlive(owner);
  };
  for (const s of list.filter((x) => roleOf(x.path).role === 'partial' && !working(x.path))) {
    await t.deleteSubvolumeTree(s.path, list);
    done.push(`deleted half-made subvolume ${s.path}`);
    list = await t.subvolumes();
  }

  // A rename cut short: finished or forgotten before the metadata of missing names is swept below.
  done.push(...(await recoverRename(t)));
  list = await t.subvolumes();

  // The directories imports receive into, emptied above.
  for (const d of await readdir(t.abs(ROOT_DIR)).catch(() => [] as string[])) {
    if (!d.startsWith(RECEIVE_DIR_PREFIX) || working(`${ROOT_DIR}/${d}`)) continue;
    await rmdir(t.abs(`${ROOT_DIR}/${d}`)).then(
      () => done.push(`removed ${ROOT_DIR}/${d}, left by an import`),
      () => undefined,
    );
  }

  const paths = new Set(list.map((s) => s.path));
  for (const n of await listMetaNames(t.top, 'envs')) {
    if (!paths.has(environmentPath(n))) {
      await removeMetaFile(envMetaFile(t.top, n));
      done.push(`removed metadata of missing environment ${join(ENV_META_DIR, `${n}.json`)}`);
    }
  }
  for (const n of await listMetaNames(t.top, 'pristine')) {
    if (!paths.has(pristinePath(n))) {
      await removeMetaFile(pristineMetaFile(t.top, n));
      done.push(`removed metadata of missing pristine snapshot ${join(PRISTINE_META_DIR, `${n}.json`)}`);
    }
  }
  for (const n of await listMetaNames(t.top, 'snapshots')) {
    if (!paths.has(`${SNAPSHOT_DIR}/${n}`)) {
      await removeMetaFile(snapshotMetaFile(t.top, n));
      done.push(`removed metadata of missing snapshot ${join(SNAPSHOT_META_DIR, `${n}.json`)}`);
    }
  }
  return done;
}
