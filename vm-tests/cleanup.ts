/**
 * Everything the VM suite starts on the host (loop devices, mounts, qemu
 * processes, scratch files) is registered here as it is made, and undone in
 * reverse order at the end: after success, after a failure, and on SIGINT or
 * SIGTERM. Each undo is tried even when an earlier one failed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { run } from '../src/process/run.js';

interface Undo {
  what: string;
  undo(): Promise<void>;
}

const stack: Undo[] = [];
/** Undos their owners started themselves and that have not finished. */
const inFlight = new Set<Promise<void>>();
let running: Promise<void> | null = null;

/** Registers an undo action; returns a function that runs and removes just that one. */
export function onCleanup(what: string, undo: () => Promise<void>): () => Promise<void> {
  const entry: Undo = { what, undo };
  stack.push(entry);
  return async () => {
    const i = stack.indexOf(entry);
    if (i < 0) return;
    stack.splice(i, 1);
    const p = undo();
    inFlight.add(p);
    try {
      await p;
    } finally {
      inFlight.delete(p);
    }
  };
}

/**
 * Runs every pending undo, newest first, and waits for those already under
 * way (a failed step's own clean-up racing a Ctrl-C). Safe to call more than once.
 */
export function cleanupAll(): Promise<void> {
  running ??= (async () => {
    while (stack.length > 0 || inFlight.size > 0) {
      const entry = stack.pop();
      if (entry === undefined) {
        await Promise.allSettled([...inFlight]);
        continue;
      }
      try {
        await entry.undo();
      } catch (err) {
        process.stderr.write(`vm-tests: cleanup of ${entry.what} failed: ${(err as Error).message}\n`);
      }
    }
  })().finally(() => {
    running = null;
  });
  return running;
}

/**
 * Ctrl-C and SIGTERM clean up, then exit with the usual 128+signal status.
 * The handlers stay installed while the clean-up runs, so a repeated
 * signal does not cut the clean-up short (a `once` handler would leave the
 * signal's default action, which ends the process with mounts and loop
 * devices left behind).
 */
let stopping = false;

/** A signal asked the suite to stop: errors of work cut short are expected then. */
export function stoppedBySignal(): boolean {
  return stopping;
}

export function installSignalHandlers(): void {
  for (const [signal, status] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const) {
    process.on(signal, () => {
      if (stopping) {
        process.stderr.write(`vm-tests: ${signal}: still cleaning up\n`);
        return;
      }
      stopping = true;
      process.stderr.write(`\nvm-tests: ${signal}: cleaning up\n`);
      // A command still running (a copy into the image, qemu) would keep its mount busy.
      void stopChildren()
        .then(() => cleanupAll())
        .finally(() => process.exit(status));
    });
  }
}

/** This process's own children (the commands run() started), from /proc. */
function children(): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // The fields after the command name, which is in parentheses and may hold anything.
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** SIGTERM to every child, SIGKILL to those still there after five seconds. */
export async function stopChildren(): Promise<void> {
  const pids = children();
  for (const pid of pids) signalPid(pid, 'SIGTERM');
  for (let i = 0; i < 50 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
  for (const pid of pids.filter(alive)) signalPid(pid, 'SIGKILL');
}

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Mount points at or below `dir`, deepest first, from the kernel's table. */
export async function mountsBelow(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const unescape = (f: string): string => f.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
  return text
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map(unescape)
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .sort((a, b) => b.split('/').length - a.split('/').length);
}

export async function unmountBelow(dir: string): Promise<void> {
  for (let round = 0; round < 4; round++) {
    const mps = await mountsBelow(dir);
    if (mps.length === 0) return;
    for (const mp of mps) await run('umount', round < 2 ? [mp] : ['-l', mp], { allowFailure: true });
  }
}

/** Detaches every loop device backed by `file` (also those a killed earlier run left). */
export async function detachLoops(file: string): Promise<void> {
  const res = await run('losetup', ['-j', file], { allowFailure: true });
  for (const line of res.stdout.split('\n')) {
    const dev = line.split(':')[0]?.trim();
    if (dev) await run('losetup', ['-d', dev], { allowFailure: true });
  }
}

/** Stops the process whose pid qemu wrote to `pidFile`, if it still runs. */
export async function killFromPidFile(pidFile: string): Promise<void> {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
  } catch {
    return;
  }
  // The pid may have been reused since: only a qemu is stopped.
  if (!Number.isInteger(pid) || pid <= 1 || !alive(pid) || !isQemu(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function isQemu(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('qemu-system');
  } catch {
    return false;
  }
}
