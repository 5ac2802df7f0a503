/**
 * The filesystem seam. A backend knows how one filesystem keeps environments
 * (writable roots) and pristine snapshots (read-only states of a generation),
 * and nothing about staging, boot entries or manifests.
 *
 * Environments are named by sysprime names (validated by src/names.ts
 * before any backend call); the backend maps a name to its own identity (a
 * dataset, a subvolume path).
 *
 * Who refuses what. Every backend refuses the same things with the same
 * codes (worded once in refusals.ts; test/real/backends/contract.test.ts
 * runs the same expectations against ZFS and Btrfs). The verbs of
 * environments/lifecycle.ts check these first for a friendlier message;
 * the backend checks again because prune and staging's undo call it
 * directly:
 * - a name that is not a valid environment name: INVALID_NAME;
 * - an environment that does not exist (or a pristine of a generation that
 *   has none): NOT_FOUND; one another tool made (ZFS): REFUSED;
 * - a name that is taken (create, clone, rename onto it): EXISTS; a
 *   generation that has its pristine already (takePristine): EXISTS;
 * - destroyEnvironment: REFUSED while it is mounted anywhere, the running
 *   root included, or is the filesystem's boot default. Nothing is
 *   unmounted for the caller: a mount is someone's (the admin's
 *   `sysprime mount`, a staging in progress), and who made it unmounts it.
 *   Mounts a crashed run left behind are removed by recover();
 * - renameEnvironment: REFUSED while it is the running root or mounted;
 * - mount: REFUSED for the running root, BUSY while mounted at another
 *   directory, nothing to do when mounted at that directory already;
 * - unmount: REFUSED for the running root, nothing to do when not mounted;
 * - takeSnapshot: NOT_FOUND for a missing environment, INVALID_NAME for a
 *   snapshot name names.ts refuses, EXISTS for one the environment has;
 *   destroySnapshot: NOT_FOUND for one that is not there, and (ZFS only,
 *   where a clone depends on its origin) REFUSED while an environment was
 *   cloned from it; cloneFromSnapshot: NOT_FOUND, EXISTS as for clones;
 * - destroyPristine: REFUSED while something still needs it. What "needs"
 *   means differs where the filesystems differ: on ZFS a clone of the
 *   snapshot (ZFS cannot destroy a snapshot a dataset depends on, even
 *   after the clone moved to a later generation); on Btrfs an environment
 *   of that generation (snapshots are independent of each other).
 */
import type { BackendKind } from '../config/schema.js';

export interface CloneOptions {
  /** Metadata of the new environment, as setMeta takes it (no null: nothing to clear). */
  meta?: Record<string, string>;
  /** Aborted: give up before the copy (AbortError), change nothing. */
  signal?: AbortSignal;
}

/** The send streams an export holds, in this order (a backend's sendParts, import's receive). */
export const SEND_PARTS = ['pristine', 'environment', 'nested', 'boot-pristine', 'boot'] as const;
export type SendPart = (typeof SEND_PARTS)[number];

/** What an export of one environment holds. */
export interface SendPlan {
  parts: SendPart[];
  /**
   * The nested subvolumes of its own (Btrfs) or child datasets (ZFS, zsys)
   * the `nested` part holds, in its order (paths below the root, parents
   * first).
   */
  nested: string[];
  /** ZFS: those of `nested` never mounted (canmount=off: their directories are their parent's, as zsys's `usr` and `var`). */
  unmounted?: string[];
}

export interface EnvironmentInfo {
  name: string;
  /** The backend's own identity: `pool/ROOT/name` or `ROOT/name`. */
  id: string;
  /** Generation whose pristine snapshot this environment descends from. */
  generation: number;
  /** When the dataset or subvolume was created (the filesystems keep whole seconds). */
  created: Date;
  /**
   * Creation order within one pool or filesystem (ZFS createtxg, Btrfs
   * subvolume id): tells apart environments made within the same second.
   */
  createdOrder: number;
  /** Bytes only this environment holds, or null when the filesystem cannot say. */
  spaceUnique: number | null;
  /** Where it is mounted now ('/' when it is the running root), or null. */
  mounted: string | null;
  /** Identity of the pristine snapshot of its generation, null when it is gone. */
  pristine: string | null;
  /** It is the running root. */
  booted: boolean;
  /** The filesystem's boot default (ZFS bootfs, Btrfs default subvolume). */
  isDefault: boolean;
  /** Other sysprime metadata kept with the environment. */
  meta: Record<string, string>;
}

/** A root beside the environments that sysprime did not make or adopt: listed, never destroyed, renamed or pruned. */
export interface ForeignRoot {
  name: string;
  /** The backend's own identity, as for environments. */
  id: string;
  /** The tool whose metadata it carries (`zectl`), or null when none is recognised. */
  madeBy: string | null;
  isDefault: boolean;
  booted: boolean;
}

export interface PristineInfo {
  /** `pool/ROOT/name@sysprime-pristine...` or `ROOT/.pristine/name`. */
  id: string;
  generation: number;
  created: Date;
  /** The environment that holds it (ZFS: the dataset it is a snapshot of). */
  holder: string | null;
}

/**
 * A named, read-only state of an environment the admin took
 * (`sysprime snapshot`): kept with the environment, renamed with it and
 * destroyed with it, and the source of `create --from ENV@NAME`.
 */
export interface SnapshotInfo {
  /** The environment it is a snapshot of. */
  environment: string;
  /** Its own name, unique among the environment's snapshots. */
  name: string;
  /** `pool/ROOT/<env>@<name>` or `ROOT/.snapshots/<env>@<name>`. */
  id: string;
  /** The environment's generation when it was taken: an environment made from it has this one. */
  generation: number;
  created: Date;
  /** Creation order within the pool or filesystem (ZFS createtxg, Btrfs subvolume id). */
  createdOrder: number;
}

/** How a bootloader reaches an environment's root from outside it. */
export type RootLocation =
  /** `subvolume` is relative to the top-level subvolume: `ROOT/<name>`. */
  | { fs: 'btrfs'; uuid: string; subvolume: string }
  /**
   * `dataset` is `<pool>/ROOT/<name>`. `boot`: the environment's boot
   * dataset `<boot pool>/BOOT/<name>` (mounted at its /boot), where the
   * machine has a boot pool; GRUB reads the kernels there.
   */
  | { fs: 'zfs'; pool: string; dataset: string; boot?: { pool: string; dataset: string } };

export interface PoolSpace {
  /** Bytes the pool or filesystem holds in all. */
  size: number;
  /** Bytes still free. */
  free: number;
}

/**
 * The state database's own subvolume or dataset (see `Backend.stateHome`).
 * init calls `ensure()`, copies the database into it, closes it, removes
 * the root's copy when the home was mounted beside the state directory
 * (`beside`), then calls `finish()`.
 */
export interface StateHome {
  /** The subvolume or dataset, for messages. */
  id: string;
  /** Already mounted at the state directory in the running system, with nothing left for `finish()` to do. */
  ready: boolean;
  /**
   * The line every environment's fstab needs to mount it (Btrfs), or null
   * when the filesystem mounts it by itself in every environment (ZFS: a
   * dataset with its mountpoint and canmount=on, mounted at boot by
   * zfs-mount.service).
   */
  fstabLine: string | null;
  /**
   * Create it if missing and mount it in the running system: at the state
   * directory (Btrfs, which mounts over the root's copy of the database and
   * leaves it hidden there), or, where the mount needs that directory empty
   * (ZFS), at `beside`, a directory next to it, until `finish()` moves it.
   * Returns what it did.
   */
  ensure(): Promise<{ done: string[]; beside: string | null }>;
  /**
   * With the database copied in and closed (and, after a mount `beside` it,
   * the root's copy gone from the state directory): whatever is left to
   * make it the state directory now and in every environment (ZFS: mounted
   * there, then canmount=on). Returns what it did.
   */
  finish?(): Promise<string[]>;
}

/** A directory tree made reachable for reading or writing; release() undoes what was needed for it. */
export interface OpenTree {
  path: string;
  release(): Promise<void>;
}

/**
 * One change the filesystem itself reports between a pristine snapshot and
 * an environment. Paths are byte strings (latin1, as in manifests) below the
 * environment's root, `/` being the root itself. A listing may name paths
 * that no longer exist (temporary names, later renames): whoever uses it
 * reads the final state from disk, so a path too many costs a lookup, and a
 * path too few would be a wrong answer.
 */
export type PathChange =
  /** Contents or metadata of the entry itself. */
  | { kind: 'modified'; path: string }
  /** A new entry; a directory brings everything below it. */
  | { kind: 'created'; path: string }
  /** The entry (and a directory's contents) went away. */
  | { kind: 'removed'; path: string }
  | { kind: 'renamed'; path: string; to: string };

/** What the filesystem lists as changed, or why it cannot say (the caller then walks the tree). */
export type ChangeListing = { ok: true; changes: PathChange[]; source: string } | { ok: false; reason: string };

/**
 * How far a listing of changes is worth reading: past about `changes`
 * changes (records of the listing: a file made again is several in a send
 * stream), reading them costs more than walking the tree (an update that
 * replaced /usr lists every file of it, and `btrfs send` takes several times
 * a walk's time over mass deletions). Each backend stops its listing
 * command once its output is about that long and answers `ok: false`.
 */
export interface ListingLimit {
  changes: number;
}

export interface Backend {
  readonly kind: BackendKind;
  /** Human name for messages: "zfs pool tank", "btrfs at /mnt/top". */
  describe(): string;
  /** Check the tools and that the pool or filesystem is there; never writes. */
  probe(): Promise<void>;
  /**
   * What names the filesystem or pool itself, wherever it is mounted and
   * whatever it is called: `btrfs UUID`, `zfs pool GUID`. The state database
   * belongs to one (src/environments/state-owner.ts). Costs no process after
   * probe() where the filesystem is mounted or the pool imported.
   */
  identity(): Promise<string>;
  /** Create the ROOT container if it is missing (used by init). */
  ensureLayout(): Promise<void>;

  listEnvironments(): Promise<EnvironmentInfo[]>;
  listPristines(): Promise<PristineInfo[]>;

  /**
   * Make an existing dataset or subvolume the environment NAME: ZFS renames
   * it under ROOT/ and sets its properties; Btrfs snapshots it under ROOT/ (a
   * running root cannot be moved). `source` is the backend identity; for the
   * running root pass '/'.
   */
  adopt(source: string, name: string, generation: number): Promise<void>;
  /**
   * Check, changing nothing (not even the layout), that `adopt(source, …)`
   * can succeed, and name the environment it would make: NAME when given,
   * else the backend's choice (ZFS: the dataset's own name when it is
   * already `ROOT/<name>`; Btrfs: `default`). Refuses a source `adopt` could
   * not take (not a subvolume or dataset, a locked encryption key, ...).
   * Absent: `init` uses NAME or `default`.
   */
  checkAdoption?(source: string, name: string | undefined): Promise<{ name: string }>;
  /** Roots another tool made beside the environments (zectl, an installer): shown, never touched. */
  listForeign?(): Promise<ForeignRoot[]>;
  /**
   * A home for the state database outside every environment, to be mounted
   * at `stateDir` in each of them, when `stateDir` is inside an environment
   * (the root init adopts, as the default is on a machine as installed).
   * Null when it needs none: `stateDir` is not on this pool or filesystem,
   * or (ZFS) on a dataset outside the environments, or the admin's own
   * subvolume or dataset is mounted there.
   * Changes nothing; refuses when the name it would use is taken.
   */
  stateHome(stateDir: string): Promise<StateHome | null>;
  /** Create an empty environment (for the demo and tests that fill a tree). */
  createEmpty(name: string, generation: number): Promise<void>;
  /** Take the read-only pristine snapshot of generation N from environment NAME. */
  takePristine(name: string, generation: number): Promise<PristineInfo>;
  /**
   * A new writable environment from the pristine snapshot of a generation.
   * `nestedFrom`: the environment whose nested parts the pristine snapshot
   * cannot hold (Btrfs nested subvolumes) are taken from, as it is now;
   * default the pristine's holder.
   */
  cloneFromPristine(generation: number, name: string, nestedFrom?: string): Promise<void>;
  /**
   * A new writable environment from another one as it is now (create --from).
   * `meta` is set with the clone, before it takes its name: the environment
   * never exists without it (the apt hook's `auto` mark and description).
   * `signal`, once aborted, stops it before the copy is taken, and only then:
   * a copy begun is finished.
   */
  cloneFromEnvironment(source: string, name: string, opts?: CloneOptions): Promise<void>;
  /** Set the generation of an environment (after staging moved it forward). */
  setGeneration(name: string, generation: number): Promise<void>;
  /**
   * Destroy an environment; its snapshots go with it, and its pristine too
   * when nothing else needs it.
   * Refuses (REFUSED) a mounted environment and the boot default.
   */
  destroyEnvironment(name: string): Promise<void>;
  /** Destroy the pristine snapshot of a generation (prune); refuses when a clone still depends on it. */
  destroyPristine(generation: number): Promise<void>;
  /** The admin's snapshots of every environment. */
  listSnapshots(): Promise<SnapshotInfo[]>;
  /** Take a read-only snapshot NAME of environment ENV as it is now (its child datasets or nested content subvolumes with it). */
  takeSnapshot(environment: string, name: string): Promise<SnapshotInfo>;
  /**
   * A new writable environment from snapshot NAME of environment ENV
   * (`create --from ENV@NAME`), of the generation the snapshot was taken
   * in. Btrfs takes the nested content subvolumes, which a snapshot cannot
   * hold, from ENV as it is now.
   */
  cloneFromSnapshot(environment: string, snapshot: string, name: string): Promise<void>;
  /**
   * What `export` of environment NAME writes, in this order (SEND_PARTS):
   * `pristine` with `withPristine` (the pristine snapshot of its
   * generation, whole), `environment` (as it is now; an increment from the
   * pristine when that goes first), `nested` (its own nested Btrfs
   * subvolumes or ZFS child datasets, each a whole send stream, one after
   * the other; ZFS frames each, as a receive stops at its stream's end
   * and no more), `boot-pristine` and `boot` (ZFS: the boot half of the
   * pristine snapshot, whole, with `withPristine`; its boot dataset in the
   * boot pool, as it is now, an increment from that half when it went
   * first). Refuses (REFUSED, NOT_FOUND) what it cannot carry, before
   * anything is written: a pruned pristine, the pristine on zfs-fuse or
   * of an environment with a child dataset made after it (which has no
   * half of it), a child volume or one with a mountpoint of its own. With
   * the pristine, each ZFS child's half of it goes before the child, which
   * is then an increment from it. Its snapshots never go, nor
   * Btrfs subvolumes shared by every environment (it says which).
   */
  sendParts(name: string, opts: { withPristine: boolean }): Promise<SendPlan>;
  /**
   * Write one part of environment NAME (one sendParts named; `nested`:
   * the subvolumes its plan listed, `opts.nested`) to `out`:
   * `zfs send` of a snapshot taken for it (ZFS child datasets: taken with
   * the root's by the `environment` part, which must go first), `btrfs send` of a read-only
   * snapshot, removed after; a pristine snapshot as it is. `fromPristine`:
   * the environment as an increment from its generation's pristine.
   */
  sendPart(name: string, part: SendPart, out: NodeJS.WritableStream, opts: { fromPristine: boolean; nested?: readonly string[] }): Promise<void>;
  /**
   * After the last sendPart of an export of NAME, written or not: removes
   * what a part left for a later one (ZFS: the children's copy snapshots
   * the `environment` part took with the root's, when `nested` never ran).
   */
  sendFinished(name: string): Promise<void>;
  /**
   * Receive the send streams of this backend as the new environment NAME of
   * generation `generation`: under temporary names first, each part read
   * to its end before the next (SEND_PARTS's order), `verify()` called once
   * the filesystem took them all (a rejection discards them), its
   * generation and `meta` set, then renamed into place: the environment
   * never has its name without its metadata (the mark of an unfinished
   * import). A crash leaves only what recover() removes.
   * EXISTS when NAME is taken, checked before anything is read.
   *
   * `nested` holds the subvolumes or child datasets `opts.nested` names,
   * in its order, each put in place in the new environment as `create`
   * puts a nested subvolume (Btrfs) or as a clone's child (ZFS: inheriting
   * its mountpoint, `canmount=off` for those `opts.unmounted` names,
   * `noauto` for the others). With `pristine`, `environment` is an
   * increment from it, as `boot` is from `boot-pristine` (its boot half,
   * which goes with it where there is a boot pool). With
   * `keepPristine` it becomes the pristine of `generation`, in place
   * before the environment has its name (a boot half: marked before the
   * root's, renamed with its boot dataset just after the root); otherwise it is discarded once
   * the environment is made. ZFS on zfs-fuse, which cannot receive an
   * increment as a clone of another snapshot (`zfs receive -o origin`),
   * refuses such streams (REFUSED) before reading them; so does ZFS a
   * `boot` part where the pool has no boot pool, and a pool with a boot
   * pool streams without one.
   */
  receiveEnvironment(
    name: string,
    generation: number,
    parts: Readonly<Partial<Record<SendPart, NodeJS.ReadableStream>>> & { environment: NodeJS.ReadableStream },
    verify: () => Promise<void>,
    meta?: Readonly<Record<string, string>>,
    opts?: { keepPristine: boolean; nested?: readonly string[]; unmounted?: readonly string[] },
  ): Promise<void>;
  /** Destroy one snapshot; ZFS refuses (REFUSED) while an environment is a clone of it. */
  destroySnapshot(environment: string, name: string): Promise<void>;
  /** Refuses (REFUSED) a mounted environment, the running root included; its snapshots follow the new name. */
  renameEnvironment(from: string, to: string): Promise<void>;

  /** Mount it at `dir`; refuses the running root (REFUSED) and one mounted elsewhere (BUSY). */
  mount(name: string, dir: string): Promise<void>;
  /** Unmount it wherever it is mounted (nothing when it is not); refuses the running root. */
  unmount(name: string): Promise<void>;
  /** Reach an environment's tree (mounting it privately when needed). */
  openEnvironment(name: string): Promise<OpenTree>;
  /** Reach a pristine snapshot's tree read-only. */
  openPristine(generation: number): Promise<OpenTree>;

  setDefault(name: string): Promise<void>;
  /** Where the environment's root is, for boot entries. */
  bootRoot(name: string): Promise<RootLocation>;
  /** Size and free space of the pool or filesystem (retention's space floor). */
  space(): Promise<PoolSpace>;
  setMeta(name: string, meta: Record<string, string | null>): Promise<void>;

  /**
   * Where the filesystem can list the differences between the pristine
   * snapshot of a generation and an environment as it is now (`btrfs send
   * --no-data -p`, `zfs diff`): that list. Call it while the environment is
   * open (openEnvironment). Absent, or `ok: false`, when it cannot.
   */
  changesSincePristine?(name: string, generation: number, limit?: ListingLimit): Promise<ChangeListing>;

  /**
   * Where the filesystem can list the differences between two pristine
   * snapshots, the one of generation `to` descending from the one of `from`
   * (`btrfs send --no-data -p`): that list, paths below the snapshots'
   * roots. Absent, or `ok: false`, when it cannot or they are unrelated.
   */
  changesBetweenPristines?(from: number, to: number, limit?: ListingLimit): Promise<ChangeListing>;

  /** Undo what an interrupted run left behind (private mounts, temporary clones). */
  recover(): Promise<string[]>;
  /** Release what the backend set up for itself (a top-level mount it made). */
  close?(): Promise<void>;
}
