/**
 * Where things live inside the top-level subvolume, and how a subvolume path
 * is recognised as an environment, a pristine state or a leftover. Names that
 * start with "." or contain "@" can never be environment names (see
 * environments/names.ts), so the hidden entries below cannot collide with one.
 */

/** Plain directory (not a subvolume) holding the environments. */
export const ROOT_DIR = 'ROOT';
/** Plain directory holding the read-only pristine snapshots. */
export const PRISTINE_DIR = `${ROOT_DIR}/.pristine`;
/** Plain directory holding the admin's read-only snapshots of environments (`sysprime snapshot`), `<env>@<name>`. */
export const SNAPSHOT_DIR = `${ROOT_DIR}/.snapshots`;
/** Plain directory holding sysprime's metadata files. */
const META_DIR = `${ROOT_DIR}/.sysprime`;
export const ENV_META_DIR = `${META_DIR}/envs`;
export const PRISTINE_META_DIR = `${META_DIR}/pristine`;
export const SNAPSHOT_META_DIR = `${META_DIR}/snapshots`;
/** Written before an environment's subvolume is renamed, removed once its snapshots and metadata follow (rename.ts). */
export const RENAME_MARK = `${META_DIR}/renaming.json`;
/**
 * The state database's own subvolume, mounted at `[state] dir` in every
 * environment (init makes it when that directory is inside the adopted
 * root): inside sysprime's metadata directory, which no verb deletes.
 */
export const STATE_SUBVOLUME = `${META_DIR}/state`;

/**
 * Subvolumes are made (and destroyed) under this prefix and renamed into (or
 * out of) place, so a crash never leaves a half-made environment under its
 * real name; recover() deletes whatever still carries it.
 */
export const PARTIAL_PREFIX = '.partial-';

/** A pristine kept after its environment took a newer one: `<env>@<generation>`. */
export const RETIRED_SEPARATOR = '@';

export const environmentPath = (name: string): string => `${ROOT_DIR}/${name}`;
export const partialEnvironmentPath = (name: string): string => `${ROOT_DIR}/${PARTIAL_PREFIX}${name}`;
export const pristinePath = (base: string): string => `${PRISTINE_DIR}/${base}`;
export const partialPristinePath = (base: string): string => `${PRISTINE_DIR}/${PARTIAL_PREFIX}${base}`;
/**
 * A read-only snapshot of an environment taken to list its drift (btrfs send
 * needs a read-only source) and deleted right after. `@` never appears in an
 * environment name, so it cannot be taken for the partial of one.
 */
export const driftSnapshotPath = (name: string, pid: number): string => workingSnapshotPath(name, 'drift', pid);
/** `<env>@<name>`: `@` is in neither name, so the pair reads back unambiguously. */
export const snapshotBase = (env: string, name: string): string => `${env}${RETIRED_SEPARATOR}${name}`;
export const snapshotPath = (env: string, name: string): string => `${SNAPSHOT_DIR}/${snapshotBase(env, name)}`;
export const partialSnapshotPath = (env: string, name: string): string => `${SNAPSHOT_DIR}/${PARTIAL_PREFIX}${snapshotBase(env, name)}`;
/**
 * A plain directory `btrfs receive` writes into for `sysprime import`: the
 * received subvolume keeps the name it was sent under, which this
 * filesystem may hold already (an import killed before), so it lands in a
 * directory of this process's own. Subvolumes below it are partial.
 */
export const RECEIVE_DIR_PREFIX = `${PARTIAL_PREFIX}receive-`;
export const receiveDirPath = (pid: number, tag: string): string => `${ROOT_DIR}/${RECEIVE_DIR_PREFIX}${pid}-${tag}`;
/** The read-only snapshot `btrfs send` reads for `sysprime export`, deleted after. */
export const exportSnapshotPath = (name: string, pid: number): string => workingSnapshotPath(name, 'export', pid);
/** The read-only copy of the `index`th subvolume nested in an exported environment, beside the export's own. */
export const exportNestedPath = (name: string, pid: number, index: number): string => `${exportSnapshotPath(name, pid)}${NESTED_MARK}${index}`;

/** The verbs that take a read-only snapshot of an environment for the length of one process. */
const WORKING_KINDS = ['drift', 'export'] as const;
const NESTED_MARK = '-n';

function workingSnapshotPath(name: string, kind: (typeof WORKING_KINDS)[number], pid: number): string {
  return `${ROOT_DIR}/${PARTIAL_PREFIX}${name}${RETIRED_SEPARATOR}${kind}-${pid}`;
}

const literal = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** receiveDirPath's names: the pid, then the tag. */
const RECEIVE_DIR_NAME = new RegExp(`^${literal(RECEIVE_DIR_PREFIX)}(\\d+)-[0-9a-f]+$`);
/** workingSnapshotPath's names, and exportNestedPath's: an environment name never holds the separator. */
const WORKING_SNAPSHOT_NAME = new RegExp(
  `^${literal(PARTIAL_PREFIX)}[^${literal(RETIRED_SEPARATOR)}]+${literal(RETIRED_SEPARATOR)}(?:${WORKING_KINDS.join('|')})-(\\d+)(?:${literal(NESTED_MARK)}\\d+)?$`,
);
/**
 * The process a partial subvolume (or receive directory) belongs to while it
 * works, when its name carries one: a drift or export snapshot, an import's
 * receive directory. recover() leaves those of a live process alone; any
 * other partial is what a dead run left.
 */
export function partialOwner(path: string): number | null {
  const parts = path.split('/');
  if (parts[0] !== ROOT_DIR || parts[1] === undefined) return null;
  const m = RECEIVE_DIR_NAME.exec(parts[1]) ?? (parts.length === 2 ? WORKING_SNAPSHOT_NAME.exec(parts[1]) : null);
  return m === null ? null : Number(m[1]);
}

export const retiredPristineBase = (env: string, generation: number): string => `${env}${RETIRED_SEPARATOR}${generation}`;

export type SubvolumeRole =
  | { role: 'environment'; name: string }
  | { role: 'pristine'; base: string; holder: string }
  | { role: 'snapshot'; environment: string; name: string }
  | { role: 'partial' }
  /** A subvolume inside an environment (systemd's /var/lib/machines ...). */
  | { role: 'nested'; environment: string }
  | { role: 'foreign' };

/** What a subvolume path (relative to the top level) is to sysprime. */
export function roleOf(path: string): SubvolumeRole {
  const parts = path.split('/');
  if (parts[0] !== ROOT_DIR || parts.length < 2) return { role: 'foreign' };
  const first = parts[1]!;
  if (first === '.pristine') {
    const base = parts[2];
    if (base === undefined || parts.length > 3) return { role: 'foreign' };
    if (base.startsWith(PARTIAL_PREFIX)) return { role: 'partial' };
    if (base.startsWith('.')) return { role: 'foreign' };
    return { role: 'pristine', base, holder: base.split(RETIRED_SEPARATOR)[0]! };
  }
  if (first === '.snapshots') {
    const base = parts[2];
    if (base === undefined || parts.length > 3) return { role: 'foreign' };
    if (base.startsWith(PARTIAL_PREFIX)) return { role: 'partial' };
    const at = base.indexOf(RETIRED_SEPARATOR);
    if (base.startsWith('.') || at <= 0 || at === base.length - 1) return { role: 'foreign' };
    return { role: 'snapshot', environment: base.slice(0, at), name: base.slice(at + 1) };
  }
  if (first.startsWith(RECEIVE_DIR_PREFIX) && parts.length === 3) return { role: 'partial' };
  if (first.startsWith(PARTIAL_PREFIX)) return { role: parts.length === 2 ? 'partial' : 'foreign' };
  if (first.startsWith('.')) return { role: 'foreign' };
  return parts.length === 2 ? { role: 'environment', name: first } : { role: 'nested', environment: first };
}

/**
 * Nested subvolumes inside an environment that hold data every environment
 * shares (containers, machine images): never snapshotted into a clone.
 */
export const DEFAULT_SHARED_SUBVOLUMES: readonly string[] = ['/var/lib/docker', '/var/lib/machines', '/var/lib/portables'];

/** snapper's directory of numbered snapshots, `.snapshots/<N>/snapshot`. */
const SNAPPER_DIR = '.snapshots';

export type NestedKind =
  /** Part of the environment's content (`/usr/local`, an openSUSE-style `/var`): snapshotted with it. */
  | 'content'
  /** Shared by every environment: left where it is, an empty directory in a clone. */
  | 'shared'
  /** snapper's snapshots: never copied, walked or deleted by sysprime. */
  | 'snapper';

/**
 * What a nested subvolume is to the environment that holds it; `inner` is its
 * path below the environment's root, no leading slash (`usr/local`).
 */
export function nestedKindOf(inner: string, shared: readonly string[]): NestedKind {
  if (inner === SNAPPER_DIR || inner.startsWith(`${SNAPPER_DIR}/`)) return 'snapper';
  const abs = `/${inner}`;
  const isBelow = (s: string): boolean => {
    const dir = s.replace(/\/+$/, '');
    return abs === dir || abs.startsWith(`${dir}/`);
  };
  if (shared.some(isBelow)) return 'shared';
  return 'content';
}
