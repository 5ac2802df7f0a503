/**
 * Pure readers of machine output: `zfs get -Hp -o name,property,value,source`,
 * `zpool list -H -o name,bootfs` and the mounts of /proc/self/mounts (parsed
 * by `src/os/mounts.ts`), and the functions that turn them into environments,
 * pristines and plans. No I/O here, so every rule is tested on captured
 * output.
 */
import type { EnvironmentInfo, ForeignRoot, PristineInfo, SnapshotInfo } from '../types.js';
import { mountAt, type FstabEntry } from '../../os/mounts.js';
import { INTERNAL_PROPS, NS, PRISTINE_SNAPSHOT, PROP, ZECTL_NS, ZFSBOOTMENU_NS, environmentNameOf, holderOf, isTemporaryDataset, rootDataset, shortSnapshotName, sweepableCopy } from './layout.js';

export interface PropertyValue {
  value: string;
  /** `local`, `default`, `-`, `inherited from X`, `temporary`, `received`. */
  source: string;
}

/** One dataset or snapshot with the properties that were asked for, in output order. */
export interface DatasetRecord {
  name: string;
  props: Map<string, PropertyValue>;
}

/**
 * Parse `zfs get -Hp -o name,property,value,source`. A user property's value
 * may hold tabs, so the value is everything between the second field and the
 * last one. Lines with three fields (no source column) are accepted too.
 */
export function parsePropertyTable(text: string): DatasetRecord[] {
  const byName = new Map<string, DatasetRecord>();
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    const fields = line.split('\t');
    if (fields.length < 3) continue;
    const name = fields[0] as string;
    const property = fields[1] as string;
    const value = fields.length === 3 ? (fields[2] as string) : fields.slice(2, -1).join('\t');
    const source = fields.length === 3 ? '-' : (fields[fields.length - 1] as string);
    let record = byName.get(name);
    if (!record) {
      record = { name, props: new Map() };
      byName.set(name, record);
    }
    record.props.set(property, { value, source });
  }
  return [...byName.values()];
}

/** A property's value, or null when it is absent or `-` (ZFS's "no value"). */
export function prop(record: DatasetRecord, name: string): string | null {
  const v = record.props.get(name);
  if (!v || v.value === '-') return null;
  return v.value;
}

/** A property's value only when it is set on this record itself (not inherited). */
export function localProp(record: DatasetRecord, name: string): string | null {
  const v = record.props.get(name);
  if (!v || v.source !== 'local') return null;
  return v.value;
}

export function numberProp(record: DatasetRecord, name: string): number | null {
  const v = prop(record, name);
  if (v === null || !/^\d+$/.test(v)) return null;
  return Number(v);
}

export function isSnapshot(record: DatasetRecord): boolean {
  const type = prop(record, 'type');
  return type === 'snapshot' || (type === null && record.name.includes('@'));
}

/** Parse `zpool list -H -o name,bootfs`: pool name to its bootfs (null for `-`). */
export function parseBootfs(text: string): Map<string, string | null> {
  const out = new Map<string, string | null>();
  for (const line of text.split('\n')) {
    const [name, bootfs] = line.split('\t');
    if (!name || bootfs === undefined) continue;
    out.set(name, bootfs === '-' || bootfs === '' ? null : bootfs);
  }
  return out;
}

/** OpenZFS mounts say `zfs`; zfs-fuse mounts say `fuse.zfs`. */
export function isZfsMount(entry: { fsType: string }): boolean {
  return entry.fsType === 'zfs' || entry.fsType === 'fuse.zfs';
}

/**
 * A mountpoint as set, from the value `zfs get` shows: with an altroot the
 * tools print (and mount at) altroot + the value, and take what is set
 * verbatim, so a value read back must lose the prefix before it is set again.
 */
export function withoutAltroot(mountpoint: string, altroot: string | null): string {
  if (altroot === null) return mountpoint;
  if (mountpoint === altroot) return '/';
  if (mountpoint.startsWith(`${altroot}/`)) return mountpoint.slice(altroot.length);
  return mountpoint;
}

/** The dataset mounted at `/`, or null when the running root is not ZFS. */
export function bootedDataset(mounts: readonly FstabEntry[]): string | null {
  const root = mountAt(mounts, '/');
  return root !== undefined && isZfsMount(root) ? root.source : null;
}

/** Every directory a dataset is mounted at, in mount order. */
export function mountTargetsOf(mounts: readonly FstabEntry[], dataset: string): string[] {
  return mounts.filter((m) => isZfsMount(m) && m.source === dataset).map((m) => m.mountPoint);
}

export function pristinesFrom(records: readonly DatasetRecord[], pool: string): PristineInfo[] {
  const root = `${rootDataset(pool)}/`;
  const out: PristineInfo[] = [];
  for (const r of records) {
    // `zfs snapshot -r` marks the children's snapshots too: the pristine is the one of the environment itself.
    if (!isSnapshot(r) || !r.name.startsWith(root) || holderOf(r.name).slice(root.length).includes('/')) continue;
    const gen = localProp(r, PROP.pristine);
    if (gen === null || !/^\d+$/.test(gen)) continue;
    const created = numberProp(r, 'creation');
    out.push({
      id: r.name,
      generation: Number(gen),
      created: new Date((created ?? 0) * 1000),
      holder: holderOf(r.name),
    });
  }
  return out.sort((a, b) => a.generation - b.generation || a.created.getTime() - b.created.getTime());
}

/**
 * The admin's snapshots (`sysprime snapshot`): snapshots of an environment
 * dataset itself (not of its children, which `snapshot -r` marks too) with
 * the snapshot marker set locally.
 */
export function snapshotsFrom(records: readonly DatasetRecord[], pool: string): SnapshotInfo[] {
  const out: SnapshotInfo[] = [];
  for (const r of records) {
    if (!isSnapshot(r)) continue;
    const environment = environmentNameOf(pool, holderOf(r.name));
    const gen = localProp(r, PROP.snapshot);
    if (environment === null || gen === null || !/^\d+$/.test(gen)) continue;
    out.push({
      environment,
      name: shortSnapshotName(r.name),
      id: r.name,
      generation: Number(gen),
      created: new Date((numberProp(r, 'creation') ?? 0) * 1000),
      createdOrder: numberProp(r, 'createtxg') ?? 0,
    });
  }
  return out.sort((a, b) => a.createdOrder - b.createdOrder || a.id.localeCompare(b.id));
}

export interface EnvironmentContext {
  pool: string;
  mounts: readonly FstabEntry[];
  bootfs: string | null;
}

/** Space only this dataset holds: usedbydataset where the pool has it, else used minus snapshots and children. */
export function spaceUniqueOf(r: DatasetRecord): number | null {
  const byDataset = numberProp(r, 'usedbydataset');
  if (byDataset !== null) return byDataset;
  const used = numberProp(r, 'used');
  const snaps = numberProp(r, 'usedbysnapshots');
  const children = numberProp(r, 'usedbychildren');
  if (used === null || snaps === null) return null;
  return Math.max(0, used - snaps - (children ?? 0));
}

/** sysprime metadata of a record: local `org.sysprime:` properties other than the internal ones, without the prefix. */
export function metaOf(r: DatasetRecord): Record<string, string> {
  const meta: Record<string, string> = {};
  for (const [key, v] of r.props) {
    if (!key.startsWith(NS) || INTERNAL_PROPS.has(key) || v.source !== 'local') continue;
    meta[key.slice(NS.length)] = v.value;
  }
  return meta;
}

/**
 * sysprime's own environments carry a local `org.sysprime:generation`: every
 * way one is made (adopt, create, clone) sets it. Other children of ROOT were
 * made by another tool (zectl, an installer, by hand) and are never touched.
 */
export function isManaged(r: DatasetRecord): boolean {
  return localProp(r, PROP.generation) !== null;
}

function environmentCandidates(records: readonly DatasetRecord[], pool: string): { r: DatasetRecord; name: string }[] {
  const out: { r: DatasetRecord; name: string }[] = [];
  for (const r of records) {
    if (isSnapshot(r)) continue;
    const name = environmentNameOf(pool, r.name);
    if (name === null) continue;
    const type = prop(r, 'type');
    if (type !== null && type !== 'filesystem') continue;
    out.push({ r, name });
  }
  return out;
}

export function foreignRootsFrom(records: readonly DatasetRecord[], ctx: EnvironmentContext): ForeignRoot[] {
  const booted = bootedDataset(ctx.mounts);
  return environmentCandidates(records, ctx.pool)
    .filter(({ r }) => !isManaged(r))
    .map(({ r, name }) => ({
      name,
      id: r.name,
      madeBy: [...r.props.keys()].some((k) => k.startsWith(ZECTL_NS)) ? 'zectl' : null,
      isDefault: ctx.bootfs === r.name,
      booted: booted === r.name,
    }));
}

export function environmentsFrom(records: readonly DatasetRecord[], ctx: EnvironmentContext): EnvironmentInfo[] {
  const pristines = pristinesFrom(records, ctx.pool);
  const booted = bootedDataset(ctx.mounts);
  const out: EnvironmentInfo[] = [];
  for (const { r, name } of environmentCandidates(records, ctx.pool)) {
    if (!isManaged(r)) continue;
    const generation = Number(localProp(r, PROP.generation) ?? '0');
    const targets = mountTargetsOf(ctx.mounts, r.name);
    // The latest mount is the one asked for: a private mount on a pool with an altroot (zfs-fuse) is a bind of one below it.
    let mounted: string | null = targets.includes('/') ? '/' : (targets.at(-1) ?? null);
    if (mounted === null && prop(r, 'mounted') === 'yes') mounted = prop(r, 'mountpoint');
    out.push({
      name,
      id: r.name,
      generation: Number.isSafeInteger(generation) ? generation : 0,
      created: new Date((numberProp(r, 'creation') ?? 0) * 1000),
      createdOrder: numberProp(r, 'createtxg') ?? 0,
      spaceUnique: spaceUniqueOf(r),
      mounted,
      pristine: pristines.find((p) => p.generation === generation)?.id ?? null,
      booted: booted === r.name,
      isDefault: ctx.bootfs === r.name,
      meta: metaOf(r),
    });
  }
  return out.sort((a, b) => a.created.getTime() - b.created.getTime() || a.createdOrder - b.createdOrder || a.name.localeCompare(b.name));
}

/** Datasets whose origin is the given snapshot. */
export function dependentsOf(records: readonly DatasetRecord[], snapshot: string): string[] {
  return records.filter((r) => !isSnapshot(r) && prop(r, 'origin') === snapshot).map((r) => r.name);
}

export function snapshotsOf(records: readonly DatasetRecord[], dataset: string): DatasetRecord[] {
  return records.filter((r) => isSnapshot(r) && holderOf(r.name) === dataset);
}

export interface SnapshotRename {
  from: string;
  to: string;
}

export interface PromoteStep {
  /** The clone to promote: it takes over the snapshots it depends on. */
  clone: string;
  /** Renames to run first, so no snapshot that moves collides with one the clone already has. */
  renames: SnapshotRename[];
}

/**
 * The next promote that moves snapshots with dependents off `dataset`, or
 * null when none has a dependent left. Chooses an environment under ROOT over
 * a temporary clone, and among those the clone of the newest snapshot, since
 * promoting it moves every older snapshot (and their other dependents) at once.
 * Pristine snapshots are renamed `sysprime-pristine-g<N>` so the plain name
 * stays free for the clone's own pristine; any other name the clone already
 * uses gets a numbered suffix.
 */
export function planPromote(records: readonly DatasetRecord[], pool: string, dataset: string, container: string = rootDataset(pool)): PromoteStep | null {
  const snaps = snapshotsOf(records, dataset);
  const candidates: { clone: string; txg: number; temporary: boolean }[] = [];
  for (const s of snaps) {
    for (const clone of dependentsOf(records, s.name)) {
      candidates.push({ clone, txg: numberProp(s, 'createtxg') ?? 0, temporary: isTemporaryDataset(pool, clone, container) });
    }
  }
  if (candidates.length === 0) return null;
  candidates.sort((a, b) => Number(a.temporary) - Number(b.temporary) || b.txg - a.txg || a.clone.localeCompare(b.clone));
  const clone = (candidates[0] as { clone: string }).clone;

  const taken = new Set<string>([
    ...snapshotsOf(records, clone).map((r) => shortSnapshotName(r.name)),
    ...snaps.map((r) => shortSnapshotName(r.name)),
  ]);
  const cloneNames = new Set(snapshotsOf(records, clone).map((r) => shortSnapshotName(r.name)));
  const renames: SnapshotRename[] = [];
  for (const s of snaps) {
    const short = shortSnapshotName(s.name);
    const gen = localProp(s, PROP.pristine);
    let base: string | null = null;
    if (gen !== null && short !== `${PRISTINE_SNAPSHOT}-g${gen}`) base = `${PRISTINE_SNAPSHOT}-g${gen}`;
    else if (cloneNames.has(short)) base = short;
    if (base === null) continue;
    const to = uniqueName(base, taken);
    taken.add(to);
    taken.delete(short);
    renames.push({ from: s.name, to: `${dataset}@${to}` });
  }
  return { clone, renames };
}

/** `base` if free, else `base-2`, `base-3`, ... */
export function uniqueName(base: string, taken: ReadonlySet<string>): string {
  if (!taken.has(base)) return base;
  for (let i = 2; ; i++) if (!taken.has(`${base}-${i}`)) return `${base}-${i}`;
}

/**
 * After an environment was destroyed, which snapshots can go too: its former
 * snapshots (moved to a promoted clone, found by guid) and the pristine of its
 * generation, as long as no clone depends on one and, for a pristine, no
 * remaining environment has its generation.
 */
export function leftoverSnapshots(
  records: readonly DatasetRecord[],
  pool: string,
  guids: ReadonlySet<string>,
  /** The destroyed environment's generation: its pristine goes too when nothing needs it, wherever it is held. */
  generation: number | null = null,
  /** `<pool>/ROOT`, or a boot pool's `BOOT`. */
  container: string = rootDataset(pool),
  /** Whether a process runs: a live export's copy snapshot stays. */
  alive: (pid: number) => boolean = () => false,
): string[] {
  const generationsInUse = new Set<string>();
  for (const r of records) {
    if (isSnapshot(r) || environmentNameOf(pool, r.name, container) === null) continue;
    const g = localProp(r, PROP.generation);
    if (g !== null) generationsInUse.add(g);
  }
  const root = `${container}/`;
  const out: string[] = [];
  for (const r of records) {
    if (!isSnapshot(r) || !r.name.startsWith(root)) continue;
    const guid = prop(r, 'guid');
    const gen = localProp(r, PROP.pristine);
    const wasOwn = guid !== null && guids.has(guid);
    const ownGenerationPristine = generation !== null && gen === String(generation);
    // A copy's snapshot only exists to be a clone's origin: once nothing is cloned from it, it goes, whoever holds it
    // (a destroy interrupted after a promote leaves the origin of the destroyed copy on the promoted clone).
    const unusedCopy = sweepableCopy(shortSnapshotName(r.name), alive);
    if (!wasOwn && !ownGenerationPristine && !unusedCopy) continue;
    if (dependentsOf(records, r.name).length > 0) continue;
    if (gen !== null && generationsInUse.has(gen)) continue;
    out.push(r.name);
  }
  return out;
}

/**
 * `-o key=value` arguments that give a clone the ZFSBootMenu properties its
 * source has for itself. A clone inherits from its parent (ROOT), not from
 * its origin, so a kernel command line set on the environment would be lost;
 * one set on ROOT or above reaches the clone anyway. `record` is the
 * snapshot cloned: its values come from `holder`, the dataset it belongs to.
 */
export function carriedBootProperties(record: DatasetRecord, holder: string): string[] {
  const out: string[] = [];
  for (const [key, v] of record.props) {
    if (!key.startsWith(ZFSBOOTMENU_NS)) continue;
    if (v.source !== 'local' && v.source !== `inherited from ${holder}`) continue;
    out.push('-o', `${key}=${v.value}`);
  }
  return out;
}

/** File systems and volumes below `dataset` (not its snapshots), parents before children. */
export function childDatasetsOf(records: readonly DatasetRecord[], dataset: string): string[] {
  return records
    .filter((r) => !isSnapshot(r) && r.name.startsWith(`${dataset}/`))
    .map((r) => r.name)
    .sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b));
}

/** A file system below an environment's dataset (Ubuntu's zsys layout: `var`, `var/lib`, `usr/local`, ...). */
export interface EnvironmentChild {
  name: string;
  /** Its name below the environment's dataset, which is also where it is mounted in the environment's tree (`var/lib`). */
  rel: string;
  type: string | null;
  canmount: string | null;
  /** A mountpoint set on the child itself rather than inherited from the environment. */
  localMountpoint: string | null;
}

/** The file systems and volumes below `dataset`, parents before children. */
export function environmentChildren(records: readonly DatasetRecord[], dataset: string): EnvironmentChild[] {
  const byName = new Map(records.map((r) => [r.name, r] as const));
  return childDatasetsOf(records, dataset).map((name) => {
    const r = byName.get(name) as DatasetRecord;
    return { name, rel: name.slice(dataset.length + 1), type: prop(r, 'type'), canmount: prop(r, 'canmount'), localMountpoint: localProp(r, 'mountpoint') };
  });
}

/** The children an environment's tree mounts (all but `canmount=off`), parents first, with their place in the tree. */
export function mountedChildren(children: readonly EnvironmentChild[]): { dataset: string; path: string }[] {
  return children.filter((c) => c.canmount !== 'off').map((c) => ({ dataset: c.name, path: `/${c.rel}` }));
}

/**
 * The snapshots of the children taken together with `snapshot` by one
 * `zfs snapshot -r`, wherever promotes have moved them since, keyed by the
 * child's name below its environment. They share the snapshot's createtxg;
 * where another snapshot of the same transaction group holds the same place
 * (a tool snapshotting everything at that moment), the one with the
 * snapshot's own name wins. Needs `type` and `createtxg`.
 */
export function childSnapshotsOf(records: readonly DatasetRecord[], pool: string, snapshot: string): Map<string, string> {
  const top = records.find((r) => r.name === snapshot);
  const txg = top === undefined ? null : prop(top, 'createtxg');
  const out = new Map<string, string>();
  if (txg === null) return out;
  const prefix = `${rootDataset(pool)}/`;
  const short = shortSnapshotName(snapshot);
  for (const r of records) {
    if (!isSnapshot(r) || r.name === snapshot || prop(r, 'createtxg') !== txg || !r.name.startsWith(prefix)) continue;
    const holder = holderOf(r.name).slice(prefix.length);
    const slash = holder.indexOf('/');
    if (slash < 0) continue;
    const rel = holder.slice(slash + 1);
    const present = out.get(rel);
    if (present === undefined || (shortSnapshotName(present) !== short && shortSnapshotName(r.name) === short)) out.set(rel, r.name);
  }
  return out;
}
