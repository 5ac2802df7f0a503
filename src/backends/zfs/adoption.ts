/**
 * What makes an existing root impossible to adopt, read from its properties
 * alone (pure, so each case is tested without a pool that can produce it:
 * zfs-fuse has no encryption).
 */
import { SysprimeError } from '../../errors.js';
import { prop, type DatasetRecord, type EnvironmentChild } from './parse.js';

export function adoptionProblem(record: DatasetRecord): SysprimeError | null {
  const type = prop(record, 'type');
  if (type !== null && type !== 'filesystem') {
    return new SysprimeError('REFUSED', `cannot adopt ${record.name}: it is a ${type}, not a file system`, {
      hint: 'adopt the file system that holds the root',
    });
  }
  // OpenZFS: an encrypted root whose key is not loaded cannot be mounted, snapshotted usefully or staged.
  const keyRoot = lockedKeyOf(record);
  if (keyRoot !== null) {
    return new SysprimeError('REFUSED', `cannot adopt ${record.name}: it is encrypted and the key of ${keyRoot} is not loaded`, {
      hint: `load it with \`zfs load-key ${keyRoot}\`, then run sysprime init again`,
    });
  }
  return null;
}

/** The properties lockedKeyOf reads (OpenZFS only: zfs-fuse knows none of them). */
export const KEY_PROPS = ['encryption', 'keystatus', 'encryptionroot'] as const;

/**
 * The encryption root whose key is not loaded, when the dataset is encrypted
 * and locked; else null. Clones share their origin's encryption root, so
 * every environment made from an encrypted root is locked and unlocked with
 * it: one `zfs load-key` opens them all.
 */
export function lockedKeyOf(record: DatasetRecord): string | null {
  const encryption = prop(record, 'encryption');
  if (encryption === null || encryption === 'off' || prop(record, 'keystatus') !== 'unavailable') return null;
  return prop(record, 'encryptionroot') ?? record.name;
}

/** Refusal of `doing` ("mount", "clone") on a dataset whose key is not loaded, or null. */
export function lockedKeyProblem(record: DatasetRecord, doing: string): SysprimeError | null {
  const keyRoot = lockedKeyOf(record);
  if (keyRoot === null) return null;
  return new SysprimeError('REFUSED', `cannot ${doing} ${record.name}: it is encrypted and the key of ${keyRoot} is not loaded`, {
    hint: `load it with \`zfs load-key ${keyRoot}\` (every environment made from it shares that key), then try again`,
  });
}

/**
 * Children of a root that sysprime cannot carry into new environments. A
 * child is mounted where its name puts it below the environment (what
 * inheriting the mountpoint does, as zsys lays it out): one with a mountpoint
 * of its own would, in a clone, be mounted over the running system's
 * directory by any `zfs mount`, and on zfs-fuse could not be mounted inside a
 * private mount at all. A volume has no files to carry.
 */
export function childrenProblem(dataset: string, children: readonly EnvironmentChild[]): SysprimeError | null {
  const volume = children.find((c) => c.type !== null && c.type !== 'filesystem');
  if (volume !== undefined) {
    return new SysprimeError('REFUSED', `cannot use ${dataset}: its child ${volume.name} is a ${volume.type}, which sysprime cannot carry into new environments`, {
      hint: `move it outside ${dataset} (zfs rename ${volume.name} <pool>/${volume.rel.replace(/\//g, '-')}), then try again`,
    });
  }
  const own = children.find((c) => c.localMountpoint !== null);
  if (own !== undefined) {
    return new SysprimeError('REFUSED', `cannot use ${dataset}: its child ${own.name} has a mountpoint of its own (${own.localMountpoint}); sysprime mounts an environment's children where their names put them below it`, {
      hint: `let it inherit (zfs inherit mountpoint ${own.name}) if /${own.rel} is where it belongs, or move it outside ${dataset} as a shared dataset; then try again`,
    });
  }
  return null;
}
