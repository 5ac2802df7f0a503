/**
 * `zfs` and `zpool` through run(), with the failures every caller would
 * otherwise decode itself turned into errors that say what to do: the tools
 * missing, the zfs-fuse daemon not running, a dataset or pool not there.
 */
import { SysprimeError, isSysprimeError } from '../../errors.js';
import { run, type RunOptions, type RunResult } from '../../process/run.js';
import { parsePropertyTable, type DatasetRecord } from './parse.js';
import { cachedPool, cachedTree, keepPool, keepTree, poolQueryKey, readStarts } from './query-cache.js';

const PACKAGES = 'zfsutils-linux (OpenZFS) or zfs-fuse';

/** zfs-fuse's tools print this when its daemon is not running. */
export function daemonUnreachable(text: string): boolean {
  return /zfs-fuse daemon is running|failed to initialize ZFS library/i.test(text);
}

export function datasetMissing(err: unknown): boolean {
  return isSysprimeError(err, 'COMMAND_FAILED') && /dataset does not exist/.test(`${err.message}\n${err.detail ?? ''}`);
}

export function poolMissing(err: unknown): boolean {
  return isSysprimeError(err, 'COMMAND_FAILED') && /no such pool/.test(`${err.message}\n${err.detail ?? ''}`);
}

async function tool(file: 'zfs' | 'zpool', args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  let result: RunResult;
  try {
    result = await run(file, args, { ...opts, allowFailure: true });
  } catch (err) {
    if (isSysprimeError(err, 'COMMAND_MISSING')) {
      throw new SysprimeError('COMMAND_MISSING', `${file} is not installed`, { hint: `install ${PACKAGES}`, cause: err });
    }
    throw err;
  }
  if (result.exitCode !== 0 && daemonUnreachable(result.stderr)) {
    throw new SysprimeError('BACKEND', 'the zfs-fuse daemon is not running', {
      hint: 'start it with `zfs-fuse` (or `systemctl start zfs-fuse`)',
      detail: `${result.command}\n${result.stderr.trim()}`,
    });
  }
  if (result.exitCode !== 0 && !opts.allowFailure) {
    const first = result.stderr.split('\n').map((l) => l.trim()).find((l) => l.length > 0) ?? `exit status ${result.exitCode}`;
    throw new SysprimeError('COMMAND_FAILED', `${file} ${args[0] ?? ''} failed: ${first}`, {
      detail: `${result.command}\nexit status ${result.exitCode}\n${result.stderr.trim()}`,
    });
  }
  return result;
}

/** Verbs that fail while the dataset is held for a moment, and succeed when it is let go. */
const RETRIED_WHEN_BUSY = new Set(['rename', 'destroy', 'unmount', 'promote']);
/** Waits between attempts: about six seconds in all. */
export const BUSY_WAITS_MS = [200, 400, 800, 1600, 3200];

function busy(err: unknown): boolean {
  return isSysprimeError(err, 'COMMAND_FAILED') && /dataset is busy|pool is busy/.test(`${err.message}\n${err.detail ?? ''}`);
}

export async function zfs(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  if (!RETRIED_WHEN_BUSY.has(args[0] ?? '')) return tool('zfs', args, opts);
  // zfs-fuse lets a dataset go a moment after its unmount returns (and OpenZFS reports busy while
  // a process still has it open): a few short waits ride out the first, and the error stays for the second.
  for (const wait of [...BUSY_WAITS_MS, undefined]) {
    try {
      return await tool('zfs', args, opts);
    } catch (err) {
      if (wait === undefined || !busy(err)) throw err;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
  throw new Error('unreachable');
}

export async function zpool(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const key = poolQueryKey(args);
  if (key === null) return tool('zpool', args, opts);
  const kept = cachedPool(key);
  if (kept !== undefined) return { command: `zpool ${key}`, exitCode: 0, stdout: kept, stderr: '' };
  const start = readStarts();
  const result = await tool('zpool', args, opts);
  if (result.exitCode === 0) keepPool(start, key, result.stdout);
  return result;
}

/**
 * `zfs get -rHp` of some properties (or `all`) of a dataset and everything
 * below it, snapshots included. zfs-fuse has no `zfs list -p`, and `zfs get`
 * is the one call both implementations print exact numbers with.
 */
export async function readTree(dataset: string, props: readonly string[] | 'all'): Promise<DatasetRecord[]> {
  const kept = cachedTree(dataset, true, props);
  if (kept !== undefined) return kept;
  const list = props === 'all' ? 'all' : props.join(',');
  const start = readStarts();
  const out = await zfs(['get', '-rHp', '-o', 'name,property,value,source', list, dataset]);
  const records = parsePropertyTable(out.stdout);
  keepTree(start, dataset, true, props, records);
  return records;
}

/** Properties of one dataset or snapshot, or null when it does not exist. */
export async function readOne(id: string, props: readonly string[] | 'all'): Promise<DatasetRecord | null> {
  const kept = cachedTree(id, false, props);
  if (kept !== undefined) return kept[0] ?? null;
  const list = props === 'all' ? 'all' : props.join(',');
  const start = readStarts();
  try {
    const out = await zfs(['get', '-Hp', '-o', 'name,property,value,source', list, id]);
    const records = parsePropertyTable(out.stdout);
    keepTree(start, id, false, props, records);
    return records[0] ?? null;
  } catch (err) {
    if (datasetMissing(err)) {
      keepTree(start, id, false, props, []);
      return null;
    }
    throw err;
  }
}

/**
 * The pool's altroot (`zpool create -R`, `zpool import -R`), or null. Mount
 * points then show and take effect below it: the guides build a new root
 * this way, mounted at /mnt.
 */
export async function altrootOf(pool: string): Promise<string | null> {
  const out = await zpool(['list', '-H', '-o', 'altroot', pool]);
  const value = out.stdout.trim();
  return value === '' || value === '-' || value === '/' ? null : value;
}

/**
 * `zfs receive` into `target` without mounting anything: an environment
 * arrives below ROOT (mountpoint=none), but a stream sent with its
 * properties (`zfs send -p`, `-R`) would bring `mountpoint=/` and
 * `canmount=on`, and OpenZFS would mount it over the running root. OpenZFS
 * takes `-u` (never mount), `-x mountpoint` (inherit it from ROOT) and `-o
 * canmount=noauto`; zfs-fuse has none of them (and mounts nothing at a
 * receive below a `mountpoint=none` parent either, for a stream without
 * properties, the only kind its `zfs send` makes).
 */
export function receiveArgs(target: string, implementation: 'openzfs' | 'zfs-fuse'): string[] {
  return implementation === 'openzfs' ? ['receive', '-u', '-x', 'mountpoint', '-o', 'canmount=noauto', target] : ['receive', target];
}
