/**
 * Finding and stopping processes that live inside a tree: what a package
 * script left running in a chroot, or an updater orphaned when sysprime was
 * killed. They keep mounts busy and could write into an environment that
 * recovery is about to destroy (or that a later run re-creates).
 */
import { readdir, readlink } from 'node:fs/promises';
import { log } from '../log.js';

function inside(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir}/`);
}

/** Pids whose root directory (and, with cwd, working directory) is at or below `dir`. */
async function processesIn(dir: string, opts: { cwd?: boolean } = {}): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      if (inside(await readlink(`/proc/${name}/root`), dir)) {
        pids.push(pid);
        continue;
      }
      if (opts.cwd && inside(await readlink(`/proc/${name}/cwd`), dir)) pids.push(pid);
    } catch {
      // gone, or a kernel thread
    }
  }
  return pids;
}

function signalAll(sig: NodeJS.Signals, pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}

/** SIGTERM, two seconds of grace, then SIGKILL. Returns the pids found at first. */
export async function stopProcessesIn(dir: string, opts: { cwd?: boolean } = {}): Promise<number[]> {
  const pids = await processesIn(dir, opts);
  if (pids.length === 0) return [];
  log.warn(`stopping ${pids.length} process(es) left running in ${dir}: ${pids.join(' ')}`);
  signalAll('SIGTERM', pids);
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 100));
    if ((await processesIn(dir, opts)).length === 0) return pids;
  }
  signalAll('SIGKILL', await processesIn(dir, opts));
  await new Promise((r) => setTimeout(r, 200));
  return pids;
}
