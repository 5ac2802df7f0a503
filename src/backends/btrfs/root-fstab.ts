/**
 * Writes the `/` line of a new environment's fstab without its subvolume
 * selection (see fstab.ts for why). Only ever called on a subvolume that
 * nothing mounts (a clone being made, a subvolume being adopted), never on
 * the running root.
 */
import { SysprimeError } from '../../errors.js';
import { log } from '../../log.js';
import { lstatIn, readFileIn, withDirIn, writeFileIn } from '../../os/confined.js';
import { rootWithoutSubvolume } from './fstab.js';

/**
 * Drop `subvol=`/`subvolid=` from the `/` line of `<tree>/etc/fstab`; `label`
 * names the environment in messages. Returns the options removed (empty when
 * the file is absent or had none). A symlinked fstab is refused: sysprime
 * does not write through links inside an environment, and reads and writes
 * it through the confined writer (src/os/confined.ts).
 */
export async function detachRootSubvolume(tree: string, label: string): Promise<string[]> {
  return (
    withDirIn(tree, '/etc', { create: false }, (etc) => {
      const st = lstatIn(etc, 'fstab');
      if (st === undefined) return [];
      if (st.isSymbolicLink() || !st.isFile()) {
        throw new SysprimeError('REFUSED', `/etc/fstab of ${label} is not a regular file, so sysprime cannot make its / line fit the new environment`, {
          hint: 'make /etc/fstab a regular file in the environment you adopt or clone, then try again',
        });
      }
      const r = rootWithoutSubvolume((readFileIn(etc, 'fstab') ?? Buffer.alloc(0)).toString('latin1'));
      if (!r.changed) return [];
      writeFileIn(etc, 'fstab', Buffer.from(r.text, 'latin1'), st.mode & 0o7777, { uid: st.uid, gid: st.gid });
      log.info(`${label}: /etc/fstab mounts / without ${r.removed.join(',')}; the boot entry's rootflags=subvol= (or the default subvolume) chooses the root`);
      return r.removed;
    }) ?? []
  );
}
