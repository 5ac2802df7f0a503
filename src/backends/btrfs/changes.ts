/**
 * What changed between a pristine snapshot and an environment, or between
 * two pristine snapshots, as `btrfs send --no-data -p` lists it.
 */
import { checkName } from '../../names.js';
import type { ChangeListing, ListingLimit, PathChange } from '../types.js';
import { listingTooLong } from '../refusals.js';
import { driftSnapshotPath, environmentPath } from './layout.js';
import { shareLineage } from './parse.js';
import { pristineOf, pristines } from './pristines.js';
import { sendDump, showSubvolume, snapshotSubvolume } from './progs.js';
import { parseSendDump } from './send-dump.js';
import type { BtrfsTop } from './top.js';

/**
 * What a --no-data send stream spends on one change, about: an unlink of a
 * short name is 26 bytes, a file made again some 50 bytes for each of its
 * several records (measured on btrfs-progs 6.2). The stream is stopped past
 * the limit's changes times this.
 */
const BYTES_PER_CHANGE = 40;

export async function changesSincePristine(t: BtrfsTop, name: string, generation: number, limit?: ListingLimit): Promise<ChangeListing> {
  checkName(name);
  await t.view();
  const list = await t.subvolumes();
  const env = t.findEnvironmentEntry(list, name);
  const pristine = pristineOf(t, await pristines(t, list), generation);
  const [envShown, pristineShown] = await Promise.all([showSubvolume(t.abs(env.path)), showSubvolume(pristine.path)]);
  if (!pristineShown.readonly) return { ok: false, reason: `${pristine.id} is not read-only` };
  if (!shareLineage(envShown, pristineShown)) {
    return { ok: false, reason: `${env.path} and ${pristine.id} are not snapshots of one another or of a common subvolume` };
  }
  // send needs a read-only source: a snapshot of the environment as it is now, under a
  // `.partial-` name so recover() deletes it if this process dies before it does.
  const temp = driftSnapshotPath(name, process.pid);
  await t.clearPartial(temp, list);
  await snapshotSubvolume(t.abs(env.path), t.abs(temp), true);
  let changes: PathChange[];
  try {
    const dump = await sendDump(pristine.path, t.abs(temp), limit && limit.changes * BYTES_PER_CHANGE);
    if (dump === null) return { ok: false, reason: listingTooLong(limit!) };
    changes = parseSendDump(dump);
  } finally {
    // Deleting it takes a quarter of a second: drift reads what changed meanwhile.
    t.deleteLater(temp);
  }
  // Nested subvolumes are not in the stream (nor in a snapshot): their roots are looked at again.
  for (const s of list) {
    if (s.path.startsWith(`${env.path}/`)) changes.push({ kind: 'modified', path: Buffer.from(s.path.slice(env.path.length), 'utf8').toString('latin1') });
  }
  return { ok: true, changes, source: `btrfs send --no-data -p ${pristine.id}` };
}

export async function changesBetweenPristines(t: BtrfsTop, from: number, to: number, limit?: ListingLimit): Promise<ChangeListing> {
  await t.view();
  const list = await t.subvolumes();
  const all = await pristines(t, list);
  const older = pristineOf(t, all, from);
  const newer = pristineOf(t, all, to);
  const [olderShown, newerShown] = await Promise.all([showSubvolume(older.path), showSubvolume(newer.path)]);
  for (const [p, shown] of [[older, olderShown], [newer, newerShown]] as const) {
    if (!shown.readonly) return { ok: false, reason: `${p.id} is not read-only` };
  }
  // Staging snapshots the new pristine state from a clone of the old one: related through
  // that clone (its holder), whose parent is the old snapshot. Between unrelated subvolumes
  // send would list nearly every file, so the caller walks instead.
  let related = shareLineage(olderShown, newerShown);
  if (!related && newer.holder !== null && newerShown.parentUuid !== null) {
    const holder = list.find((s) => s.path === environmentPath(newer.holder!));
    const holderShown = holder === undefined ? undefined : await showSubvolume(t.abs(holder.path));
    related = holderShown !== undefined && holderShown.uuid === newerShown.parentUuid && shareLineage(holderShown, olderShown);
  }
  if (!related) return { ok: false, reason: `${newer.id} does not descend from ${older.id}` };
  const dump = await sendDump(older.path, newer.path, limit && limit.changes * BYTES_PER_CHANGE);
  if (dump === null) return { ok: false, reason: listingTooLong(limit!) };
  const changes = parseSendDump(dump);
  return { ok: true, changes, source: `btrfs send --no-data -p ${older.id} ${newer.id}` };
}
