/**
 * Private mount points under the run directory and who owns them. A mount
 * made to read or write an environment belongs to the process that made it;
 * recover() may undo it only once that process is gone, so each one records
 * its owner's pid beside it (`mnt/.<name>.owner`), and temporary clones carry
 * the pid in their dataset name.
 */
import { readFile, readdir, rm, rmdir, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { processAlive } from '../../process/alive.js';

export function environmentMountDir(runDir: string, name: string): string {
  return join(runDir, 'mnt', name);
}

export function pristineMountDir(runDir: string, temporaryName: string): string {
  return join(runDir, 'pristine', temporaryName.replace(/^\.+/, ''));
}

function ownerFile(runDir: string, name: string): string {
  return join(runDir, 'mnt', `.${name}.owner`);
}

export async function claimMount(runDir: string, name: string): Promise<void> {
  await mkdir(join(runDir, 'mnt'), { recursive: true });
  await writeFile(ownerFile(runDir, name), `${process.pid}\n`);
}

export async function releaseClaim(runDir: string, name: string): Promise<void> {
  await rm(ownerFile(runDir, name), { force: true });
  await rmdir(environmentMountDir(runDir, name)).catch(() => undefined);
}

/** The private mount of environment NAME still has a living owner. */
export async function claimAlive(runDir: string, name: string): Promise<boolean> {
  try {
    const pid = Number((await readFile(ownerFile(runDir, name), 'utf8')).trim());
    return processAlive(pid);
  } catch {
    return false;
  }
}

/** Is `path` the private mount directory of an environment, or a child dataset's mount below it, and of which one? */
export function privateMountName(runDir: string, path: string): string | null {
  const prefix = join(runDir, 'mnt') + '/';
  if (!path.startsWith(prefix)) return null;
  const name = path.slice(prefix.length).split('/')[0] ?? '';
  return name.length > 0 ? name : null;
}

/** Remove empty mount directories and owner files of dead processes; returns what went. */
export async function sweepRunDir(runDir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const sub of ['mnt', 'pristine']) {
    const dir = join(runDir, sub);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    for (const n of names) {
      const p = join(dir, n);
      if (n.startsWith('.') && n.endsWith('.owner')) {
        if (!(await claimAlive(runDir, n.slice(1, -'.owner'.length)))) {
          await rm(p, { force: true });
          removed.push(`removed ${p}`);
        }
        continue;
      }
      // rmdir fails on a directory that is in use or not empty, which is what we want.
      if (await rmdir(p).then(() => true, () => false)) removed.push(`removed ${p}`);
    }
  }
  return removed;
}
