/**
 * The processes above this one, read from /proc: who ran the command that
 * ran sysprime. The apt hook names its environment after the package
 * operation above it, as snap-pac describes its snapshots by the pacman command line.
 */
import { readFileSync, statSync } from 'node:fs';

export interface Ancestor {
  pid: number;
  /** The kernel's short name of the program (/proc/PID/comm, at most 15 characters). */
  comm: string;
  /** Its arguments as it was started (/proc/PID/cmdline); empty for a kernel thread. */
  argv: string[];
}

/** The parent of PID (field 4 of /proc/PID/stat), or null when PID is gone or has none. */
export function parentOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" that ends the command name, which may itself hold spaces and parentheses.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isSafeInteger(ppid) && ppid > 0 ? ppid : null;
  } catch {
    return null;
  }
}

function ancestor(pid: number): Ancestor | null {
  try {
    const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').replace(/\n$/, '');
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const argv = raw === '' ? [] : raw.replace(/\0$/, '').split('\0');
    return { pid, comm, argv };
  } catch {
    return null;
  }
}

/** The processes above `pid`, its parent first, at most `limit` of them (init last when reached). */
export function ancestorsOf(pid: number = process.pid, limit = 16): Ancestor[] {
  const found: Ancestor[] = [];
  for (let p = parentOf(pid); p !== null && found.length < limit; p = p === 1 ? null : parentOf(p)) {
    const a = ancestor(p);
    if (a === null) break;
    found.push(a);
  }
  return found;
}

/** Device and inode of the root directory of PID, or null when it cannot be read (gone, another's, a container's init). */
function rootOf(pid: number | 'self'): string | null {
  try {
    const st = statSync(`/proc/${pid}/root`, { bigint: true });
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

/**
 * Whether this process has the root directory of init (pid 1): the same
 * device and inode behind /proc/self/root and /proc/1/root. False inside a
 * chroot, whoever made it and whatever its environment says. Where init's
 * cannot be read (a container that keeps pid 1 from its root user), the
 * furthest ancestor's that can stands for it: a process above this one with
 * another root means this one was chrooted. Null when /proc cannot tell.
 */
export function rootIsInits(): boolean | null {
  const mine = rootOf('self');
  if (mine === null) return null;
  let reference = rootOf(1);
  // Init's unreadable: the furthest ancestor whose root can be read, walking up to the end.
  for (let p = reference === null ? parentOf(process.pid) : null, hops = 0; p !== null && hops < 64; p = p === 1 ? null : parentOf(p), hops++) {
    reference = rootOf(p) ?? reference;
  }
  return reference === null ? null : mine === reference;
}
