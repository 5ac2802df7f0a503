/**
 * Whether a process is still there: the one check behind the lock, the
 * journal's interrupted operations, the daemon's schedule rows, the ZFS
 * backend's private mounts and reintegration's temporary names.
 */
import { readFileSync } from 'node:fs';
import { errnoOf } from '../errors.js';

/**
 * When process PID started (field 22 of /proc/PID/stat, clock ticks since
 * boot), or null when there is no such process. Kept beside a pid, it tells
 * the process that wrote it from a later one given the same pid.
 */
export function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // starttime is field 22; count after the ")" that ends the command name.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/**
 * Process PID exists (a zombie counts until it is reaped; one of another
 * user counts too). With `start` (processStart as recorded): only when it
 * is still that same process, not a later one that was given its pid.
 */
export function processAlive(pid: number, start?: string): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (start !== undefined) {
    const now = processStart(pid);
    return now !== null && now === start;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoOf(err) === 'EPERM';
  }
}
