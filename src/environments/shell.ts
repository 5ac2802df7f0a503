/**
 * `sysprime shell ENV [-- CMD...]`: a shell, or one command, chrooted in an
 * environment that is not running, for repairs and inspection (bectl's
 * `jail`, zectl's `mount` + chroot by hand). It enters the tree the way
 * staging enters a clone (src/updaters/chroot.ts): /dev, /proc, /sys and a
 * fresh /run mounted inside it and nowhere else, no service allowed to start
 * (policy-rc.d), the host's resolver only with --network; everything is
 * undone when the command ends, including when sysprime is sent SIGTERM or
 * SIGHUP (the command gets SIGHUP, as from a closed terminal, then the
 * cleanup runs). Afterwards the boot entries are written again: a kernel
 * installed or removed inside changes what the environment's entry loads.
 *
 * One shell per environment at a time: a lock named after it, which
 * destroy, rename, umount and reintegrate respect (shell-lock.ts). The lock
 * is a row in the state database, so it outlives a kill -9 and a reboot:
 * the next shell in that environment finds it naming a dead process, and
 * first undoes what the dead one left (its processes and mounts in the
 * tree, the policy-rc.d and resolv.conf it put there, then, under the
 * staging lock, the backend's private mount of the environment).
 */
import type { Context } from '../context.js';
import { log } from '../log.js';
import { SysprimeError, messageOf } from '../errors.js';
import { acquireLock, staleLockOwner, withLock } from '../state/lock.js';
import { recordEvent } from '../state/events.js';
import { withChroot } from '../updaters/chroot.js';
import { findEnvironment, refuseUnfinished } from './lifecycle.js';
import { syncBootEntries } from './boot-entries.js';
import { recoverDeadShell, shellLockName } from './shell-lock.js';

/** What runs when no command is given: the tree's bash as a login shell, else its sh. */
export const DEFAULT_SHELL = ['/bin/sh', '-c', 'if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi'];

export interface ShellOptions {
  /** Copy the host's /etc/resolv.conf in for the duration (apt inside needs it). */
  network?: boolean;
  /** TERM of the terminal, passed in so full-screen programs work. */
  term?: string;
}

/** Run `argv` (a login shell when empty) chrooted in environment `name`; returns its exit status. */
export async function shellIn(ctx: Context, name: string, argv: readonly string[], opts: ShellOptions = {}): Promise<number> {
  const env = await findEnvironment(ctx, name);
  if (env.booted) {
    throw new SysprimeError('REFUSED', `"${name}" is the running environment: its tree is the running system`, { hint: 'use a shell as usual, or name another environment' });
  }
  refuseUnfinished(env);
  const stale = staleLockOwner(ctx.db, shellLockName(name));
  const lock = acquireLock(ctx.db, `running a shell in "${name}"`, shellLockName(name));
  try {
    if (stale !== null) for (const line of await recoverDeadShell(ctx, name)) log.info(`recovered: ${line}`);
    const current = await findEnvironment(ctx, name);
    if (current.mounted !== null) {
      throw new SysprimeError('REFUSED', `"${name}" is mounted at ${current.mounted}`, { hint: `run \`sysprime umount ${name}\` first: a shell's cleanup stops every process inside the tree it entered` });
    }
    const tree = await ctx.backend.openEnvironment(name);
    let status: number;
    try {
      recordEvent(ctx.db, name, 'shell', { command: argv.length > 0 ? argv.join(' ') : null });
      status = await withChroot(tree.path, { network: opts.network === true }, (session) =>
        session.interactive(argv.length > 0 ? argv : DEFAULT_SHELL, {
          // Debian's bashrc shows it in the prompt: "(sysprime:NAME)root@host".
          debian_chroot: `sysprime:${name}`,
          ...(opts.term !== undefined ? { TERM: opts.term } : {}),
        }),
      );
    } finally {
      await tree.release();
    }
    try {
      await withLock(ctx.db, 'writing the boot entries after a shell', () => syncBootEntries(ctx));
    } catch (err) {
      log.warn(`the boot entries were not written again after the shell in "${name}" (${messageOf(err)}): if a kernel changed in it, run \`sysprime doctor --fix\``);
    }
    return status;
  } finally {
    lock.release();
  }
}
