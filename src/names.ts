/**
 * Environment names become dataset and subvolume path components, mount
 * directory names and boot entry file names, so they are checked once, here,
 * before anything runs.
 */
import { SysprimeError } from './errors.js';

const MAX_NAME = 64;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;
const RESERVED = new Set(['.', '..', 'ROOT', 'sysprime']);

/** The reason a name cannot be used, or null when it can. */
export function nameProblem(name: string): string | null {
  if (name.length === 0) return 'it is empty';
  if (name.length > MAX_NAME) return `it is ${name.length} characters long (at most ${MAX_NAME})`;
  if (name.startsWith('-')) return 'it starts with "-" and would read as an option';
  if (name.startsWith('.')) return 'it starts with "."';
  if (name.includes('/')) return 'it contains "/"';
  if (name.includes('..')) return 'it contains ".."';
  if (name.includes('@')) return 'it contains "@" (ZFS snapshot separator)';
  if (RESERVED.has(name)) return 'it is reserved';
  // systemd-boot reads a trailing +N or +N-M in an entry's file name as a boot counter.
  if (/\+\d+(-\d+)?$/.test(name)) return 'it ends in "+<number>", which boot loaders read as a boot counter';
  if (!NAME_RE.test(name)) return 'it may use only letters, digits and . _ + - (starting with a letter or digit)';
  return null;
}

export function checkName(name: string): string {
  const problem = nameProblem(name);
  if (problem !== null) {
    throw new SysprimeError('INVALID_NAME', `environment name ${JSON.stringify(name)} cannot be used: ${problem}`, {
      hint: 'use letters, digits and . _ + - only, like "debian-2026-11-22"',
    });
  }
  return name;
}

/**
 * Snapshot names (`sysprime snapshot ENV NAME`) become the part after `@` of
 * a ZFS snapshot and a Btrfs subvolume name, so they follow the rules of
 * environment names; `sysprime-` is left to sysprime's own snapshots
 * (`sysprime-pristine`, the copies behind `create`), whose names ZFS keeps
 * in the same namespace, and `pristine` names the pristine state of an
 * environment's generation in `create --from ENV@pristine`.
 */
export function snapshotNameProblem(name: string): string | null {
  const problem = nameProblem(name);
  if (problem !== null) return problem;
  if (name.startsWith('sysprime-')) return 'names starting with "sysprime-" are kept for sysprime\'s own snapshots';
  if (name === PRISTINE_STATE) return 'ENV@pristine names the pristine state of the environment\'s generation';
  return null;
}

export function checkSnapshotName(name: string): string {
  const problem = snapshotNameProblem(name);
  if (problem !== null) {
    throw new SysprimeError('INVALID_NAME', `snapshot name ${JSON.stringify(name)} cannot be used: ${problem}`, {
      hint: 'use letters, digits and . _ + - only, like "before-php-8"',
    });
  }
  return name;
}

/**
 * `ENV@NAME`, an older state of an environment: one of its snapshots, or
 * `ENV@pristine`, the pristine state of its generation. The environment
 * name is checked here; the state is checked by whoever knows which it is.
 * Null when there is no `@`.
 */
export function parseStateRef(ref: string): { environment: string; name: string } | null {
  const at = ref.indexOf('@');
  if (at < 0) return null;
  return { environment: checkName(ref.slice(0, at)), name: ref.slice(at + 1) };
}

/** The state name of `ENV@pristine`. */
export const PRISTINE_STATE = 'pristine';
