/**
 * The btrfs-progs commands the backend uses, each returning parsed data. All
 * run with LC_ALL=C so their output has one shape; a missing `btrfs` names
 * the package to install.
 */
import { SysprimeError, isSysprimeError } from '../../errors.js';
import { run, type RunOptions, type RunResult } from '../../process/run.js';
import {
  parseGetDefault,
  parseQgroupShow,
  parseSubvolumeList,
  parseSubvolumeShow,
  type SubvolumeListEntry,
  type SubvolumeShow,
} from './parse.js';

export async function btrfs(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  try {
    return await run('btrfs', args, { ...opts, env: { LC_ALL: 'C', ...opts.env } });
  } catch (err) {
    if (isSysprimeError(err, 'COMMAND_MISSING')) {
      throw new SysprimeError('COMMAND_MISSING', 'btrfs is not installed or not on PATH', {
        hint: 'install btrfs-progs (Debian and Ubuntu: apt install btrfs-progs)',
        cause: err,
      });
    }
    throw err;
  }
}

export async function btrfsVersion(): Promise<string> {
  return (await btrfs(['--version'])).stdout.trim();
}

/** Every subvolume of the filesystem; `top` must be the top-level mount so paths are relative to it. */
export async function listSubvolumes(top: string): Promise<SubvolumeListEntry[]> {
  return parseSubvolumeList((await btrfs(['subvolume', 'list', top])).stdout);
}

export async function showSubvolume(path: string): Promise<SubvolumeShow> {
  return parseSubvolumeShow((await btrfs(['subvolume', 'show', path])).stdout);
}

export async function getDefaultSubvolume(top: string): Promise<number> {
  return parseGetDefault((await btrfs(['subvolume', 'get-default', top])).stdout);
}

export async function setDefaultSubvolume(id: number, top: string): Promise<void> {
  // The `<id> <path>` form works in every btrfs-progs version; `set-default <path>` only in newer ones.
  await btrfs(['subvolume', 'set-default', String(id), top]);
}

export async function createSubvolume(path: string): Promise<void> {
  await btrfs(['subvolume', 'create', path]);
}

export async function snapshotSubvolume(source: string, dest: string, readonly: boolean): Promise<void> {
  await btrfs(['subvolume', 'snapshot', ...(readonly ? ['-r'] : []), source, dest]);
}

export async function deleteSubvolumeAt(path: string): Promise<void> {
  await btrfs(['subvolume', 'delete', path]);
}

/**
 * What changed from the read-only subvolume `parent` to the read-only
 * `snapshot`, as `btrfs receive --dump` prints it (latin1: paths are bytes).
 * `--no-data` keeps file contents out of the stream: it is metadata only,
 * small enough to hold in memory and hand from one command to the other.
 * Null when the stream passed `maxBytes` (the send is stopped there).
 */
export async function sendDump(parent: string, snapshot: string, maxBytes?: number): Promise<string | null> {
  const stream = await btrfs(['send', '--no-data', '-q', '-p', parent, snapshot], { binary: true, ...(maxBytes !== undefined ? { maxOutput: maxBytes } : {}) });
  if (stream.overLimit) return null;
  const dump = await btrfs(['receive', '--dump'], { input: stream.stdoutBuffer ?? Buffer.alloc(0), binary: true });
  return (dump.stdoutBuffer ?? Buffer.alloc(0)).toString('latin1');
}

/**
 * Exclusive bytes per subvolume id, or null when quotas are not enabled (or
 * the filesystem cannot report them): sysprime never enables quotas itself,
 * they cost write performance the admin did not choose.
 */
export async function qgroupExclusive(top: string): Promise<Map<number, number> | null> {
  const res = await btrfs(['qgroup', 'show', '--raw', top], { allowFailure: true });
  if (res.exitCode !== 0) return null;
  return parseQgroupShow(res.stdout);
}
