/**
 * A store-built /usr is read-only at run time, as OSTree makes its
 * deployments' /usr: identical files are one inode with their store
 * object, so an edit in place of one would change the object and every
 * other path linked to it.
 *
 * A mount unit in the environment does it, `usr.mount`: a bind mount of
 * /usr onto itself, read-only (mount(8) makes `bind,ro` a bind and a
 * read-only remount), started for local-fs.target. Not an fstab line: an
 * initrd mounts a /usr line of the root's fstab itself (systemd's
 * fstab-generator before 254 and initramfs-tools alike), taking the bind's
 * source `/usr` from the initrd, so the system would come up with the
 * initrd's /usr. A unit under /etc/systemd/system is read only by the
 * booted system. The root filesystem below stays writable: sysprime reaches
 * an environment through its own mount of it.
 */
import { log } from '../../log.js';
import { lstatIn, readFileIn, readTextAt, symlinkIn, withDirIn, writeFileIn } from '../../os/confined.js';
import { parseFstab } from '../../os/mounts.js';

export const USR_MOUNT_UNIT = 'usr.mount';
const UNIT_DIR = '/etc/systemd/system';
const WANTS_DIR = `${UNIT_DIR}/local-fs.target.wants`;

export const USR_MOUNT_TEXT = `# Written by the sysprime store updater: the store owns /usr, whose files
# are hard links to its objects. Read-only, so that an edit in place cannot
# change a store object and every path linked to it (sysprime store verify).
[Unit]
Description=Read-only /usr (built by the sysprime store)
Documentation=man:sysprime(8)
DefaultDependencies=no
Before=local-fs.target

[Mount]
What=/usr
Where=/usr
Type=none
Options=bind,ro

[Install]
WantedBy=local-fs.target
`;

/**
 * Puts usr.mount into the tree at `root` and enables it, through the
 * confined writer. Left as it is: a unit the admin masked (a link there)
 * and a tree whose fstab mounts a /usr of its own (a unit of the same name
 * would take the place of that mount). Returns whether the unit is in place.
 */
export function installReadOnlyUsr(root: string): boolean {
  const ownUsr = parseFstab(readTextAt(root, '/etc/fstab') ?? '').find((e) => e.mountPoint === '/usr');
  if (ownUsr !== undefined) {
    log.warn(`${root}/etc/fstab mounts ${ownUsr.source} at /usr: the store's /usr is not made read-only there`);
    return false;
  }
  const placed = withDirIn(root, UNIT_DIR, { create: true, mode: 0o755 }, (dir) => {
    const st = lstatIn(dir, USR_MOUNT_UNIT);
    if (st !== undefined && !st.isFile()) {
      log.warn(`${root}${UNIT_DIR}/${USR_MOUNT_UNIT} is not a regular file (masked?): the store's /usr stays writable there`);
      return false;
    }
    if (readFileIn(dir, USR_MOUNT_UNIT)?.toString('utf8') !== USR_MOUNT_TEXT) writeFileIn(dir, USR_MOUNT_UNIT, Buffer.from(USR_MOUNT_TEXT, 'utf8'), 0o644, { uid: 0, gid: 0 });
    return true;
  });
  if (placed !== true) return false;
  withDirIn(root, WANTS_DIR, { create: true, mode: 0o755 }, (dir) => {
    if (lstatIn(dir, USR_MOUNT_UNIT) === undefined) symlinkIn(dir, USR_MOUNT_UNIT, `${UNIT_DIR}/${USR_MOUNT_UNIT}`);
  });
  return true;
}
