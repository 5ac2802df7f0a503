/**
 * What makes an existing root impossible to adopt, read from its properties
 * alone (pure, so each case is tested without a pool that can produce it:
 * zfs-fuse has no encryption).
 */
import { SysprimeError } from '../../errors.js';
import { prop, type DatasetRecord } from './parse.js';

export function adoptionProblem(record: DatasetRecord): SysprimeError | null {
  const type = prop(record, 'type');
  if (type !== null && type !== 'filesystem') {
    return new SysprimeError('REFUSED', `cannot adopt ${record.name}: it is a ${type}, not a file system`, {
      hint: 'adopt the file system that holds the root',
    });
  }
  // OpenZFS: an encrypted root whose key is not loaded cannot be mounted, snapshotted usefully or staged.
  const encryption = prop(record, 'encryption');
  if (encryption !== null && encryption !== 'off' && prop(record, 'keystatus') === 'unavailable') {
    const keyRoot = prop(record, 'encryptionroot') ?? record.name;
    return new SysprimeError('REFUSED', `cannot adopt ${record.name}: it is encrypted and the key of ${keyRoot} is not loaded`, {
      hint: `load it with \`zfs load-key ${keyRoot}\`, then run sysprime init again`,
    });
  }
  return null;
}
