/**
 * Where sysprime keeps things in a pool, and the guards that keep every
 * destructive command inside `<pool>/ROOT/`.
 */
import { SysprimeError } from '../../errors.js';
import { checkName } from '../../names.js';

/** Namespace of every user property sysprime writes. */
export const NS = 'org.sysprime:';

/** zectl keeps its boot-environment metadata under this namespace. */
export const ZECTL_NS = 'org.zectl:';
/** ZFSBootMenu reads these from a boot environment (kernel command line, keyboard layout, ...). */
export const ZFSBOOTMENU_NS = 'org.zfsbootmenu:';

export const PROP = {
  /** On an environment: the generation it descends from. */
  generation: `${NS}generation`,
  /**
   * On a pristine snapshot, set locally. Snapshots inherit their dataset's
   * user properties, so `generation` on a snapshot says nothing; this one
   * marks a pristine and survives renames and promotes.
   */
  pristine: `${NS}pristine-generation`,
  /**
   * On an admin's snapshot (`sysprime snapshot`), set locally: the
   * generation of the environment when it was taken. Marks the snapshot as
   * one sysprime lists, prunes and clones from.
   */
  snapshot: `${NS}snapshot-generation`,
  /** The mountpoint an environment had before a private mount changed it (zfs-fuse). */
  savedMountpoint: `${NS}saved-mountpoint`,
  /**
   * Set locally on the state database's dataset and its parent when init
   * made them (`database`, `parent`): tells them from datasets of the same
   * name the admin made, which sysprime leaves alone. Local only: a child
   * inherits it.
   */
  stateHome: `${NS}state-home`,
  /**
   * On `<pool>/ROOT`, set locally by init: the pool holding each
   * environment's boot dataset (`<boot pool>/BOOT/<name>`, the OpenZFS
   * guides' bpool). Absent: the environments' /boot is inside their roots.
   */
  bootPool: `${NS}boot-pool`,
  /**
   * On a boot dataset, set locally: the environment it belongs to. Equal to
   * its own name but while a clone or rename is under way (written before
   * the move), so recover() can tell which way to finish or undo it, and a
   * dataset of `BOOT` without it is not sysprime's.
   */
  bootOf: `${NS}boot-of`,
} as const;

/** Properties sysprime manages itself; setMeta may not touch them and meta does not show them. */
export const INTERNAL_PROPS: ReadonlySet<string> = new Set(Object.values(PROP));

/** The snapshot of child REL (`var/lib`) that a recursive snapshot `<root>@<name>` took with it. */
export function childPristine(rootSnapshot: string, rel: string): string {
  const at = rootSnapshot.indexOf('@');
  return `${rootSnapshot.slice(0, at)}/${rel}${rootSnapshot.slice(at)}`;
}
export const PRISTINE_SNAPSHOT = 'sysprime-pristine';
export const COPY_SNAPSHOT_PREFIX = 'sysprime-copy-';
/** An export's copy snapshot names its process: `sysprime-copy-export-<pid>-<time>`. */
export const EXPORT_SNAPSHOT_PREFIX = `${COPY_SNAPSHOT_PREFIX}export-`;

/**
 * Whether a copy snapshot may be swept as unused: one nothing is cloned
 * from, unless it is the snapshot a live export is sending (export takes no
 * lock: it only reads, and an export piped into an import on the same
 * machine must not wait for it).
 */
export function sweepableCopy(shortName: string, alive: (pid: number) => boolean): boolean {
  if (!shortName.startsWith(COPY_SNAPSHOT_PREFIX)) return false;
  const exporter = /^(\d+)-/.exec(shortName.slice(EXPORT_SNAPSHOT_PREFIX.length));
  return !(shortName.startsWith(EXPORT_SNAPSHOT_PREFIX) && exporter !== null && alive(Number(exporter[1])));
}
/** Children of ROOT starting with '.' are never environments (names.ts forbids the dot). */
export const TEMPORARY_PREFIX = '.sysprime-tmp-';
/** Saved mountpoint value meaning "it was inherited": restored with `zfs inherit`. */
export const INHERITED_MOUNTPOINT = '-';

export function rootDataset(pool: string): string {
  return `${pool}/ROOT`;
}

/**
 * The state database's own dataset, made by init when `[state] dir` is
 * inside the root it adopts. Beside ROOT, never in it: a dataset below an
 * environment would be cloned, renamed and destroyed with it, and one among
 * ROOT's children would be taken for a root. Under a parent of sysprime's
 * own (`canmount=off`, `mountpoint=none`, like ROOT) rather than among the
 * guides' shared datasets (`<pool>/var/lib/...`): those mount where their
 * name says through inherited mountpoints, which fits only the default
 * state directory and only the layouts that have a `<pool>/var/lib`
 * (ZFSBootMenu's has none), and a name there is one the admin may want.
 * The dataset itself has the state directory as its local mountpoint, so
 * any `[state] dir` works, on any layout.
 */
export function stateHomeDataset(pool: string): string {
  return `${stateHomeParent(pool)}/state`;
}

export function stateHomeParent(pool: string): string {
  return `${pool}/sysprime`;
}

/** Where a boot pool keeps the boot datasets, one per root: `<boot pool>/BOOT`, as the guides name it. */
export function bootContainer(bootPool: string): string {
  return `${bootPool}/BOOT`;
}

/** Environment `name`'s boot dataset in the boot pool. */
export function bootDataset(bootPool: string, name: string): string {
  return `${bootContainer(bootPool)}/${checkName(name)}`;
}

export function environmentDataset(pool: string, name: string): string {
  return `${rootDataset(pool)}/${checkName(name)}`;
}

/**
 * The environment name of a dataset that is a direct, non-hidden child of
 * ROOT (or of `container`: a boot pool's BOOT), else null.
 */
export function environmentNameOf(pool: string, dataset: string, container: string = rootDataset(pool)): string | null {
  const prefix = `${container}/`;
  if (!dataset.startsWith(prefix)) return null;
  const rest = dataset.slice(prefix.length);
  if (rest.length === 0 || rest.includes('/') || rest.includes('@') || rest.startsWith('.')) return null;
  return rest;
}

export function isTemporaryDataset(pool: string, dataset: string, container: string = rootDataset(pool)): boolean {
  return dataset.startsWith(`${container}/${TEMPORARY_PREFIX}`) && !dataset.includes('@');
}

/** Dataset part of a snapshot name. */
export function holderOf(snapshot: string): string {
  const at = snapshot.indexOf('@');
  return at < 0 ? snapshot : snapshot.slice(0, at);
}

export function shortSnapshotName(snapshot: string): string {
  const at = snapshot.indexOf('@');
  return at < 0 ? '' : snapshot.slice(at + 1);
}

/**
 * The last check before anything is destroyed: the target must be strictly
 * inside `<pool>/ROOT/` (a dataset below it, or a snapshot of one), or
 * inside `container` when one is given (a boot pool's `BOOT`).
 */
export function assertInsideRoot(pool: string, id: string, container: string = rootDataset(pool)): string {
  const prefix = `${container}/`;
  const dataset = holderOf(id);
  const rest = dataset.startsWith(prefix) ? dataset.slice(prefix.length) : '';
  const components = rest.split('/');
  if (rest.length === 0 || components.some((c) => c === '' || c === '.' || c === '..') || /\s/.test(id)) {
    throw new SysprimeError('REFUSED', `refusing to destroy ${JSON.stringify(id)}: it is not inside ${prefix}`, {
      hint: 'sysprime only destroys environments and snapshots it manages under ROOT/',
    });
  }
  return id;
}
