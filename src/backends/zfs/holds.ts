/**
 * sysprime's hold on its pristine snapshots (`zfs hold`).
 *
 * A pristine snapshot is the base of the next staging and the baseline of
 * drift: without it the admin's changes cannot be told from an update's.
 * ZFS refuses to destroy a held snapshot ("dataset is busy"), and so does
 * everything built on `zfs destroy`: another boot-environment tool, a
 * `zfs destroy -r` by hand. So every pristine snapshot, its children's and
 * its boot half carry the hold `sysprime` from the moment they are taken,
 * and sysprime releases it itself right before it destroys one (prune,
 * destroy, a destroyed generation). Releasing is what "being told" means.
 *
 * A kill between a snapshot and its hold, or between a release and the
 * destroy, leaves a pristine snapshot without it: recover() (run by every
 * verb that changes environments, and `doctor --fix`) holds every marked
 * pristine snapshot that has no hold at all. A snapshot someone else holds
 * (`zfs hold keep ...`) is theirs to release: destroying it is refused with
 * their hold named, before anything is destroyed.
 *
 * Both OpenZFS and zfs-fuse (pool version 18 and later) have holds and the
 * `userrefs` property; `zfs holds` (which tags) is not in zfs-fuse, so the
 * count is what is read and the tag is the one sysprime set.
 */
import { SysprimeError } from '../../errors.js';
import { zfs } from './commands.js';
import { PROP } from './layout.js';
import { isSnapshot, localProp, prop, type DatasetRecord } from './parse.js';

export const HOLD_TAG = 'sysprime';

/** The property that counts a snapshot's holds: read it with the records passed to the functions below. */
export const HOLD_COUNT = 'userrefs';

function holds(r: DatasetRecord): number {
  const n = Number(prop(r, HOLD_COUNT) ?? '0');
  return Number.isFinite(n) ? n : 0;
}

/** Hold `snapshot` and, with `recursive`, the snapshots of the same name below it (one atomic `zfs hold -r`). */
export async function holdPristine(snapshot: string, recursive = false): Promise<void> {
  const r = await zfs(['hold', ...(recursive ? ['-r'] : []), HOLD_TAG, snapshot], { allowFailure: true });
  // Held already (a run that was killed after its hold): what was wanted.
  if (r.exitCode !== 0 && !/tag already exists/i.test(r.stderr)) {
    throw new SysprimeError('BACKEND', `cannot hold ${snapshot}: ${r.stderr.trim().split('\n')[0] ?? `exit status ${r.exitCode}`}`, {
      hint: 'a pristine snapshot without the hold is held by the next sysprime verb (or `sysprime doctor --fix`)',
    });
  }
}

/** Marked pristine snapshots among `records` (read with `type`, the pristine mark and HOLD_COUNT) that nobody holds. */
export function unheldPristines(records: readonly DatasetRecord[]): string[] {
  return records.filter((r) => isSnapshot(r) && localProp(r, PROP.pristine) !== null && holds(r) === 0).map((r) => r.name);
}

/**
 * Release sysprime's hold on the snapshots among `records` (read with `type`
 * and HOLD_COUNT) whose names `destroyed` accepts, before they are destroyed.
 * A snapshot held by another tag is refused (REFUSED) before any hold is
 * released, naming the snapshot and how to see its holds.
 */
export async function releaseForDestroy(records: readonly DatasetRecord[], destroyed: (name: string) => boolean): Promise<void> {
  const held = records.filter((r) => isSnapshot(r) && holds(r) > 0 && destroyed(r.name));
  // Ours counts one; more than that is someone else's too.
  const shared = held.find((r) => holds(r) > 1);
  if (shared !== undefined) throw foreignHold(shared.name);
  const released: string[] = [];
  for (const r of held) {
    const out = await zfs(['release', HOLD_TAG, r.name], { allowFailure: true });
    if (out.exitCode === 0) {
      released.push(r.name);
      continue;
    }
    if (/no such tag/i.test(out.stderr)) {
      // The one hold is not ours: give back the ones released so far, so that the refusal changes nothing.
      for (const name of released) await holdPristine(name);
      throw foreignHold(r.name);
    }
    // Gone meanwhile: nothing to release.
    if (/does not exist|could not find/i.test(out.stderr)) continue;
    throw new SysprimeError('BACKEND', `cannot release sysprime's hold on ${r.name}: ${out.stderr.trim().split('\n')[0] ?? `exit status ${out.exitCode}`}`);
  }
}

function foreignHold(snapshot: string): SysprimeError {
  return new SysprimeError('REFUSED', `${snapshot} is held by \`zfs hold\` with a tag other than sysprime's: ZFS keeps it while that hold is there`, {
    hint: `see its holds with \`zfs holds ${snapshot}\`, and release the one that is not "${HOLD_TAG}" (\`zfs release <tag> ${snapshot}\`) if it may go`,
  });
}
