/**
 * The first-boot note: what staging leaves inside the new environment for
 * its first boot (`/var/lib/sysprime/first-boot.json`), with the unit that
 * runs it. Every read and write is confined to the environment's tree
 * (src/os/confined.ts): its content is not trusted, and a link it holds is
 * never followed.
 *
 * The note names the staging it came from by a staging id, unique to each
 * staging, and the baseline the first boot compares against (the running
 * system's manifest at staging) is kept under that id. The note travels with
 * the tree: a rename keeps it, and every copy made before the first boot
 * gets its own, naming the same staging. So the baseline is needed exactly
 * as long as some environment's tree still holds a note naming its id
 * (src/environments/kept-manifests.ts); a later staging under the same name
 * gets another id and never replaces it.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { displayPath } from '../bart/types.js';
import { SysprimeError, messageOf } from '../errors.js';
import { log } from '../log.js';
import { lstatIn, readFileIn, readlinkIn, symlinkIn, unlinkIn, withDirIn, writeFileIn } from '../os/confined.js';

export const FIRST_BOOT_NOTE = '/var/lib/sysprime/first-boot.json';
export const FIRST_BOOT_UNIT = 'sysprime-reintegrate.service';
const UNIT_SOURCE = fileURLToPath(new URL(`../../../share/systemd/${FIRST_BOOT_UNIT}`, import.meta.url));

/** What the first boot needs to know, written into the new environment at staging. */
export interface FirstBootNote {
  version: 1;
  /**
   * The staging that wrote the note (newStagingId), the key of the baseline
   * its first boot compares against. Absent in notes written before stagings
   * had ids: their baseline is keyed by `name`.
   */
  staging?: string;
  /** The environment whose changes are carried over. */
  from: string;
  fromGeneration: number;
  /** The new environment, as it was named at staging, and its generation. */
  name: string;
  generation: number;
  stagedAt: string;
  /** The configuration file staging used, when it was not the default one. */
  config: string | null;
  /**
   * The shared paths inside the root at staging: the first boot carries
   * them the same way (absent in notes written before they were carried).
   */
  shared?: string[];
}

/**
 * A new staging id. A UUID: unique across stagings, renames and pools, and
 * never mistaken for the staged name an older note's baseline is keyed by
 * (nobody names an environment by a random UUID).
 */
export function newStagingId(): string {
  return randomUUID();
}

/** The key of the baseline a note's first boot compares against: its staging id, or for an older note the staged name. */
export function baselineKey(note: Pick<FirstBootNote, 'staging' | 'name'>): string {
  return note.staging ?? note.name;
}

const UNIT_DIR = '/etc/systemd/system';
const WANTS_DIR = `${UNIT_DIR}/sysinit.target.wants`;
const NOTE_DIR = dirname(FIRST_BOOT_NOTE);
const FAILED_NOTE = 'first-boot.failed.json';

/**
 * Why the first-boot unit cannot be installed in the tree at `target`, or
 * undefined when it can. A link at the unit's name is the admin's (drift
 * carried it over): a link to /dev/null is `systemctl mask`, anything else
 * points where sysprime does not write. Either way it stays as it is.
 */
export function firstBootBlocker(target: string, from: string): string | undefined {
  return withDirIn(target, UNIT_DIR, { create: false }, (dir) => {
    if (lstatIn(dir, FIRST_BOOT_UNIT)?.isSymbolicLink() !== true) return undefined;
    const dest = readlinkIn(dir, FIRST_BOOT_UNIT);
    const consequence = `the first boot will not carry over what changes on "${from}" after staging; run \`sysprime reintegrate --from ${from}\` after booting it, or unmask the unit before the next staging`;
    if (dest === '/dev/null') return `${UNIT_DIR}/${FIRST_BOOT_UNIT} is masked (a link to /dev/null), so sysprime installed no first-boot note: ${consequence}`;
    return `${UNIT_DIR}/${FIRST_BOOT_UNIT} is a symbolic link to ${displayPath(dest)}, which sysprime does not write through, so it installed no first-boot note: ${consequence}`;
  });
}

/**
 * Write the first-boot note and enable the unit inside the new environment,
 * every write confined to it (src/os/confined.ts). When a link the admin
 * made holds the unit's name (a masked unit) nothing is installed: returns
 * why, which is also logged as a warning.
 */
export function installFirstBoot(target: string, note: FirstBootNote): { installed: true } | { installed: false; why: string } {
  const why = firstBootBlocker(target, note.from);
  if (why !== undefined) {
    log.warn(why);
    return { installed: false, why };
  }
  withDirIn(target, NOTE_DIR, { create: true }, (dir) => writeFileIn(dir, basename(FIRST_BOOT_NOTE), Buffer.from(JSON.stringify(note, null, 2) + '\n'), 0o644));
  // The unit is sysprime's own file from its package, not from any environment.
  const unit = readFileSync(UNIT_SOURCE);
  withDirIn(target, UNIT_DIR, { create: true }, (dir) => writeFileIn(dir, FIRST_BOOT_UNIT, unit, 0o644));
  withDirIn(target, WANTS_DIR, { create: true }, (dir) => symlinkIn(dir, FIRST_BOOT_UNIT, `${UNIT_DIR}/${FIRST_BOOT_UNIT}`));
  return { installed: true };
}

/**
 * Remove the note and the unit from an environment (the first boot is
 * done). A link at the unit's name is the admin's (a mask) and stays.
 */
export function removeFirstBoot(target: string, outcome: 'done' | 'failed', detail: unknown): void {
  withDirIn(target, NOTE_DIR, { create: outcome === 'failed' }, (dir) => {
    // Keep what happened for the admin; the unit's condition no longer holds, so it does not loop.
    if (outcome === 'failed') writeFileIn(dir, FAILED_NOTE, Buffer.from(JSON.stringify(detail, null, 2) + '\n'), 0o644);
    unlinkIn(dir, basename(FIRST_BOOT_NOTE));
  });
  withDirIn(target, WANTS_DIR, { create: false }, (dir) => {
    if (lstatIn(dir, FIRST_BOOT_UNIT)?.isSymbolicLink() === true) unlinkIn(dir, FIRST_BOOT_UNIT);
  });
  withDirIn(target, UNIT_DIR, { create: false }, (dir) => {
    if (lstatIn(dir, FIRST_BOOT_UNIT)?.isFile() === true) unlinkIn(dir, FIRST_BOOT_UNIT);
  });
}

/** The note staging left in the tree at `target`, or null; never read through a link. */
export function readFirstBootNote(target: string): FirstBootNote | null {
  const unreadable = (why: string) => new SysprimeError('STATE', `${FIRST_BOOT_NOTE} is unreadable: ${why}`);
  const text = withDirIn(target, NOTE_DIR, { create: false }, (dir) => {
    const st = lstatIn(dir, basename(FIRST_BOOT_NOTE));
    if (st === undefined) return undefined;
    if (!st.isFile()) throw unreadable('it is not a regular file (a symbolic link is not followed)');
    return readFileIn(dir, basename(FIRST_BOOT_NOTE))?.toString('utf8');
  });
  if (text === undefined) return null;
  try {
    const note = JSON.parse(text) as FirstBootNote;
    if (note.version !== 1) throw new Error(`unknown version ${String(note.version)}`);
    if (note.staging !== undefined && (typeof note.staging !== 'string' || note.staging === '')) throw new Error('its staging id is not a string');
    return note;
  } catch (err) {
    throw unreadable(messageOf(err));
  }
}
