/**
 * Extended attributes read ahead, by inode, for one tree. Node cannot list
 * attributes itself, so each read is a `getfattr`; reading the attributes
 * of every path a plan touches in a few batched calls instead of one
 * process per object is what keeps reintegrating thousands of files fast.
 *
 * An entry holds only while the inode's ctime is unchanged: every change of
 * an attribute (and of owner, mode or contents) moves ctime, so a change
 * made by someone else after the read is seen; sysprime's own changes drop
 * the entry outright (forget), since ctime moves in coarse clock ticks.
 */
import { closeSync, fstatSync, readFileSync, type Stats } from 'node:fs';
import { childrenInherit, readXattrsOfMany, type Xattrs } from './xattrs.js';

/**
 * Handles per getfattr call. Each call is a fork of this process, which
 * holds hundreds of MB while it reintegrates a large root (10 ms a call
 * there, 122 calls for 10,000 files at 256 a call): a batch is a quarter
 * of the open files allowed, up to 4,096 (`/proc/<pid>/fd/<n>` names of
 * 4,096 handles are ~100 KB of command line, far below ARG_MAX). Node
 * raises its soft limit to the hard one when it starts, so the limit read
 * is the hard one: 4,096 and more on current systems. The floor is the
 * batch this used before it looked at the limit (256), which a limit of
 * 1,024 has always allowed.
 */
export function batchFor(openFilesLimit: number | undefined): number {
  if (openFilesLimit === undefined) return MIN_BATCH;
  return Math.max(MIN_BATCH, Math.min(MAX_BATCH, Math.floor(openFilesLimit / 4)));
}

const MIN_BATCH = 256;
const MAX_BATCH = 4096;

/** The soft limit of open files of this process (`/proc/self/limits`), undefined when it cannot be read. */
function openFilesLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'latin1').split('\n').find((l) => l.startsWith('Max open files'));
    const field = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    const soft = field === 'unlimited' ? Infinity : Number(field);
    return soft === Infinity || (Number.isSafeInteger(soft) && soft > 0) ? soft : undefined;
  } catch {
    return undefined;
  }
}

let batchSize: number | undefined;

interface Entry {
  ctimeMs: number;
  xattrs: Xattrs;
}

const keyOf = (st: Stats): string => `${st.dev}:${st.ino}`;

export class XattrCache {
  private readonly byInode = new Map<string, Entry>();
  private readonly inheritance = new Map<string, boolean>();

  get(st: Stats): Xattrs | undefined {
    const e = this.byInode.get(keyOf(st));
    return e !== undefined && e.ctimeMs === st.ctimeMs ? e.xattrs : undefined;
  }

  put(st: Stats, xattrs: Xattrs): void {
    this.byInode.set(keyOf(st), { ctimeMs: st.ctimeMs, xattrs });
  }

  /**
   * Drop what is known of an inode sysprime itself just changed: ctime
   * moves in coarse ticks, so a change made within the tick of the read
   * would not show in it.
   */
  forget(st: Stats): void {
    this.byInode.delete(keyOf(st));
    this.inheritance.delete(keyOf(st));
  }

  /**
   * Whether objects made in this directory start with attributes of their
   * own (childrenInherit of its attributes), asked once per directory: a
   * directory's ctime moves with every entry written into it, which would
   * make the plain cache miss for each new file. A directory's default ACL
   * or label changed from outside while reintegration writes into it is
   * not seen; sysprime's own changes go through forget().
   */
  async childrenInherit(dirFd: number, read: (fd: number) => Promise<Xattrs>): Promise<boolean> {
    const st = fstatSync(dirFd);
    const known = this.inheritance.get(keyOf(st));
    if (known !== undefined) return known;
    const inherits = childrenInherit(this.get(st) ?? (await read(dirFd)));
    this.inheritance.set(keyOf(st), inherits);
    return inherits;
  }

  /**
   * Read the attributes behind these descriptors (O_PATH or directory
   * handles) in batches, and close each descriptor once read. Inodes
   * already known are not read again.
   */
  async fill(fds: Iterable<number>): Promise<void> {
    let batch: { fd: number; st: Stats }[] = [];
    const flush = async (): Promise<void> => {
      const current = batch;
      batch = [];
      try {
        const read = await readXattrsOfMany(current.map((b) => b.fd));
        for (const b of current) this.put(b.st, read.get(b.fd)!);
      } finally {
        for (const b of current) closeSync(b.fd);
      }
    };
    const queued = new Set<string>();
    try {
      for (const fd of fds) {
        let st: Stats;
        try {
          st = fstatSync(fd);
        } catch (err) {
          closeSync(fd);
          throw err;
        }
        if (this.get(st) !== undefined || queued.has(keyOf(st))) {
          closeSync(fd);
          continue;
        }
        queued.add(keyOf(st));
        batch.push({ fd, st });
        if (batch.length >= (batchSize ??= batchFor(openFilesLimit()))) await flush();
      }
      if (batch.length > 0) await flush();
    } finally {
      for (const b of batch) closeSync(b.fd);
    }
  }
}
