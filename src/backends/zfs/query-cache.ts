/**
 * What `zfs get` and `zpool list` answered, kept for the next question
 * while nothing can have changed the answer.
 *
 * One command asks the same pool the same things many times over (a `list`
 * of every environment, then each one's properties, its children, the boot
 * pool's name, the altroot for each mount): about 200 `zfs get` in one
 * `stage`. Each is a process; on a real machine a few milliseconds, in an
 * emulated one a few tenths of a second, 40 % of a `stage`. A question
 * another one already answered (the same, or a narrower one: some of the
 * properties, one dataset below a recursive read) is answered from it.
 *
 * What can change an answer, and so drops everything kept:
 * - any command started through the process wrapper other than a read of
 *   ZFS (`zfs get`, `zfs list`, `zpool list`): every `zfs set`, `snapshot`,
 *   `mount`, `umount`, the updater, a `cp`; while one runs nothing is
 *   answered from here, and a read that overlapped one is not kept;
 * - the lock taken (`othersMayHaveChanged`): what another sysprime did
 *   while this one waited for it is seen;
 * - time: an answer is kept for `TTL_MS` at most from when it was asked,
 *   so what another program (an admin's `zfs`) does to the pool is seen
 *   within that much of when it would have been;
 * - properties that move without a command (space used, `written`) are
 *   never answered from here when asked for by name; in a read of `all`
 *   they are what they were when it was read, within `TTL_MS`.
 *
 * Only inside `withZfsQueryCache` (one per sysprime command, from the CLI):
 * a program that calls the backend and changes the pool by other means
 * (tests, a library user) sees every answer fresh.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { watchCommands } from '../../process/run.js';
import type { DatasetRecord, PropertyValue } from './parse.js';

/** How long an answer is kept at most. */
export const TTL_MS = 5000;

/** Properties whose value changes without any command (data written, space freed, the clock). */
const VOLATILE = new Set([
  'used',
  'available',
  'avail',
  'referenced',
  'refer',
  'written',
  'usedbysnapshots',
  'usedbydataset',
  'usedbychildren',
  'usedbyrefreservation',
  'logicalused',
  'logicalreferenced',
  'compressratio',
  'refcompressratio',
]);

/** Properties a snapshot has no value of (printed as `-` when asked for by name). */
const SNAPSHOT_LACKS = new Set(['mountpoint', 'canmount']);

/** `zpool list -o` columns that change only by a `zpool` command. */
const POOL_COLUMNS = new Set(['name', 'bootfs', 'altroot', 'guid']);

interface TreeAnswer {
  dataset: string;
  recursive: boolean;
  props: ReadonlySet<string> | 'all';
  /** Every dataset and snapshot read; for a dataset that does not exist, none. */
  records: DatasetRecord[];
  at: number;
}

class QueryCache {
  trees: TreeAnswer[] = [];
  pools = new Map<string, { stdout: string; at: number }>();
}

/**
 * Bumped whenever something may have changed the pool: a command other
 * than a read starts or ends, or another process's work becomes visible
 * (the lock taken). One counter for every scope, so a scope opened while
 * such a command runs does not keep a read it overlapped.
 */
let epoch = 0;
/** Commands running now that may change the pool. */
let running = 0;
const scope = new AsyncLocalStorage<QueryCache>();
const live = new Set<QueryCache>();
/** Reads of ZFS: they change nothing, so they drop nothing. */
const READS: Record<string, ReadonlySet<string>> = { zfs: new Set(['get', 'list']), zpool: new Set(['list']) };

function dropAll(): void {
  epoch++;
  for (const c of live) {
    c.trees = [];
    c.pools.clear();
  }
}

watchCommands((file, args) => {
  if (READS[file.split('/').pop() ?? '']?.has(args[0] ?? '') === true) return () => undefined;
  running++;
  dropAll();
  return () => {
    running--;
    dropAll();
  };
});

/** Runs `fn` with ZFS's answers kept between its reads (above). */
export async function withZfsQueryCache<T>(fn: () => Promise<T>): Promise<T> {
  const cache = new QueryCache();
  live.add(cache);
  try {
    return await scope.run(cache, fn);
  } finally {
    live.delete(cache);
  }
}

function active(): QueryCache | null {
  const c = scope.getStore();
  return c !== undefined && running === 0 ? c : null;
}

/** Older than TTL_MS, or from a time the clock has since gone back before. */
function stale(at: number, now: number): boolean {
  return now - at > TTL_MS || now < at;
}

/** `name` is `dataset`, below it, or one of its snapshots or bookmarks. */
function within(name: string, dataset: string): boolean {
  return name === dataset || name.startsWith(`${dataset}/`) || name.startsWith(`${dataset}@`) || name.startsWith(`${dataset}#`);
}

/** Asked for by name, never answered from here: space, and `written@snap`, `userused@user` and the like. */
function volatile(props: readonly string[] | 'all'): boolean {
  return props !== 'all' && props.some((p) => VOLATILE.has(p) || p.includes('@'));
}

/** A record no caller's change reaches (listEnvironments adds createtxg to what it was given). */
function copyOf(record: DatasetRecord): DatasetRecord {
  return { name: record.name, props: new Map([...record.props].map(([k, v]) => [k, { ...v }])) };
}

/**
 * `want` of one record as `zfs get` would print it, from a record read with
 * more; null when that cannot be known from it (a native property a read
 * of `all` did not print: not applicable, or not printed by this zfs).
 */
function narrowed(record: DatasetRecord, have: ReadonlySet<string> | 'all', want: readonly string[] | 'all'): DatasetRecord | null {
  if (want === 'all') return have === 'all' ? copyOf(record) : null;
  const props = new Map<string, PropertyValue>();
  for (const p of want) {
    const v = record.props.get(p);
    if (v !== undefined) props.set(p, { ...v });
    // A user property not set, or a file system's property of a snapshot, prints `-` when asked for by name,
    // and not at all in `all`.
    else if (have === 'all' && (p.includes(':') || (SNAPSHOT_LACKS.has(p) && record.props.get('type')?.value === 'snapshot'))) props.set(p, { value: '-', source: '-' });
    else if (have === 'all') return null;
    // Asked for by name before too: not printed then, not printed now (not applicable to this type).
  }
  return { name: record.name, props };
}

/**
 * The answer to `zfs get [-r] want dataset` from what was read before, or
 * undefined. `[]` is "no such dataset" (only for a single one: a recursive
 * read of one that is gone fails, and that error comes from zfs itself).
 */
export function cachedTree(dataset: string, recursive: boolean, want: readonly string[] | 'all'): DatasetRecord[] | undefined {
  const cache = active();
  if (cache === null || volatile(want)) return undefined;
  const now = Date.now();
  for (let i = cache.trees.length - 1; i >= 0; i--) {
    const t = cache.trees[i] as TreeAnswer;
    if (stale(t.at, now)) continue;
    const covers = t.dataset === dataset ? t.recursive || !recursive : t.recursive && within(dataset, t.dataset);
    if (!covers) continue;
    if (want !== 'all' && t.props !== 'all' && !want.every((p) => (t.props as ReadonlySet<string>).has(p))) continue;
    if (want === 'all' && t.props !== 'all') continue;
    const records = t.records.filter((r) => (recursive ? within(r.name, dataset) : r.name === dataset));
    if (records.length === 0 || records[0]?.name !== dataset) {
      if (recursive) continue;
      return [];
    }
    const out: DatasetRecord[] = [];
    let known = true;
    for (const r of records) {
      const n = narrowed(r, t.props, want);
      if (n === null) {
        known = false;
        break;
      }
      if (n.props.size > 0) out.push(n);
    }
    if (known) return out;
  }
  return undefined;
}

/** A read about to go to zfs: when, and in which epoch. */
export interface ReadStart {
  epoch: number;
  at: number;
}

/** To pass to `keepTree`/`keepPool` once the read it starts is answered; null when nothing is kept now. */
export function readStarts(): ReadStart | null {
  return active() === null ? null : { epoch, at: Date.now() };
}

/**
 * Keeps an answer read from zfs, unless something that may change it ran
 * meanwhile, or zfs printed a property by another name than asked (an
 * alias: `lused` prints as `logicalused`).
 */
export function keepTree(start: ReadStart | null, dataset: string, recursive: boolean, props: readonly string[] | 'all', records: readonly DatasetRecord[]): void {
  const cache = active();
  if (cache === null || start === null || start.epoch !== epoch || volatile(props)) return;
  if (props !== 'all' && records.some((r) => [...r.props.keys()].some((k) => !props.includes(k)))) return;
  const now = Date.now();
  cache.trees = cache.trees.filter((t) => !stale(t.at, now));
  cache.trees.push({
    dataset,
    recursive,
    props: props === 'all' ? 'all' : new Set(props),
    records: records.map(copyOf),
    // As old as the moment the question was asked, not answered.
    at: start.at,
  });
}

/** `zpool list -H -o COLUMNS POOL` with columns that only `zpool` commands change: the key it is kept under, else null. */
export function poolQueryKey(args: readonly string[]): string | null {
  if (args.length !== 5 || args[0] !== 'list' || args[1] !== '-H' || args[2] !== '-o') return null;
  return (args[3] ?? '').split(',').every((c) => POOL_COLUMNS.has(c)) ? args.join(' ') : null;
}

export function cachedPool(key: string): string | undefined {
  const cache = active();
  const hit = cache?.pools.get(key);
  return hit !== undefined && !stale(hit.at, Date.now()) ? hit.stdout : undefined;
}

export function keepPool(start: ReadStart | null, key: string, stdout: string): void {
  const cache = active();
  if (cache !== null && start !== null && start.epoch === epoch) cache.pools.set(key, { stdout, at: start.at });
}
