/**
 * Every command sysprime starts leads a process group of its own, so that
 * stopping it stops what it started in turn: a hung update script and the
 * `sleep` it waits on, a package script's daemon that keeps the output pipe
 * open. Signals to one process would leave those running, and would leave
 * sysprime waiting for a pipe that never closes.
 *
 * A group of its own also means the terminal's Ctrl-C no longer reaches
 * the command directly: while groups run, a SIGINT, SIGTERM or SIGHUP that
 * would end sysprime (nobody else listens for it) is passed on to them
 * first; when sysprime exits, whatever is still running is killed. A
 * kill -9 of sysprime reaches neither: recovery stops what runs in the trees.
 */
import { log } from '../log.js';

const running = new Set<number>();
const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function signalGroup(pgid: number, sig: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, sig);
    return true;
  } catch {
    // ESRCH: nobody is left in the group
    return false;
  }
}

/** Is any process (a zombie counts until it is reaped) still in the group? */
export function groupAlive(pgid: number): boolean {
  return signalGroup(pgid, 0);
}

function onExit(): void {
  for (const pgid of running) signalGroup(pgid, 'SIGKILL');
}

function onSignal(sig: NodeJS.Signals): void {
  // Someone else listens (the daemon finishes its job on SIGTERM): theirs is
  // the decision, and the exit hook stops the groups if they end sysprime.
  if (process.listenerCount(sig) > 1) return;
  for (const pgid of running) signalGroup(pgid, sig);
  // The default action, ending sysprime, must still happen.
  unhook();
  process.kill(process.pid, sig);
}

let hooked = false;
function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', onExit);
  for (const sig of FORWARDED) process.on(sig, onSignal);
}
function unhook(): void {
  if (!hooked) return;
  hooked = false;
  process.off('exit', onExit);
  for (const sig of FORWARDED) process.off(sig, onSignal);
}

export function trackGroup(pgid: number): void {
  running.add(pgid);
  hook();
}

export function untrackGroup(pgid: number): void {
  running.delete(pgid);
  if (running.size === 0) unhook();
}

/**
 * SIGTERM to the whole group, `graceMs` for it to go, then SIGKILL.
 * Resolves once the group is empty (or after the SIGKILL).
 */
export async function stopGroup(pgid: number, why: string, graceMs = 5000): Promise<void> {
  if (!signalGroup(pgid, 'SIGTERM')) return;
  log.debug(`stopping process group ${pgid}: ${why}`);
  for (let waited = 0; waited < graceMs; waited += 100) {
    await new Promise((r) => setTimeout(r, 100));
    if (!groupAlive(pgid)) return;
  }
  log.warn(`process group ${pgid} ignored SIGTERM (${why}): killing it`);
  signalGroup(pgid, 'SIGKILL');
}
