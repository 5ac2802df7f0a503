/**
 * `sysprime shell ENV [-- CMD...]`: a shell, or one command, chrooted in an
 * environment that is not running, for repairs and inspection (bectl's
 * `jail`, zectl's `mount` + chroot by hand). It enters the tree the way
 * staging enters a clone (src/updaters/chroot.ts): /dev, /proc, /sys and a
 * fresh /run mounted inside it and nowhere else, no service allowed to start
 * (policy-rc.d), the host's resolver only with --network; everything is
 * undone when the command ends, including when sysprime is sent SIGTERM or
 * SIGHUP (passed on to the command, which ends, then the cleanup runs).
 *
 * One shell per environment at a time (a lock named after it). After a
 * kill -9 the lock names a dead process and the tree it used is kept in
 * /run/sysprime/shell/ENV: the next shell in that environment undoes what
 * the dead one left (its processes, the kernel filesystems, the private
 * mount) before it enters.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Context } from '../context.js';
import { SysprimeError } from '../errors.js';
import { log } from '../log.js';
import { replaceFile } from '../os/durable.js';
import { acquireLock, staleLockOwner } from '../state/lock.js';
import { recordEvent } from '../state/events.js';
import { recoverChroot, withChroot } from '../updaters/chroot.js';
import { findEnvironment, refuseUnfinished } from './lifecycle.js';

/** Where each open shell's tree is noted (tmpfs: a reboot clears it along with the mounts it names). */
export const SHELL_RUN_DIR = '/run/sysprime/shell';

/** What runs when no command is given: the tree's bash as a login shell, else its sh. */
export const DEFAULT_SHELL = ['/bin/sh', '-c', 'if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi'];

export interface ShellOptions {
  /** Copy the host's /etc/resolv.conf in for the duration (apt inside needs it). */
  network?: boolean;
  /** TERM of the terminal, passed in so full-screen programs work. */
  term?: string;
}

function lockName(name: string): string {
  return `shell:${name}`;
}

/** Undo what a shell killed with -9 left in `name`'s tree; the lines say what was done. */
async function recoverDeadShell(ctx: Context, name: string): Promise<string[]> {
  const note = join(SHELL_RUN_DIR, name);
  if (!existsSync(note)) return [];
  const tree = readFileSync(note, 'utf8').trim();
  const done = tree !== '' && existsSync(tree) ? await recoverChroot(tree) : [];
  // Its private mount of the environment (ZFS) goes once nothing is mounted inside it any more.
  done.push(...(await ctx.backend.recover()));
  rmSync(note, { force: true });
  return done;
}

/** Run `argv` (a login shell when empty) chrooted in environment `name`; returns its exit status. */
export async function shellIn(ctx: Context, name: string, argv: readonly string[], opts: ShellOptions = {}): Promise<number> {
  const env = await findEnvironment(ctx, name);
  if (env.booted) {
    throw new SysprimeError('REFUSED', `"${name}" is the running environment: its tree is the running system`, { hint: 'use a shell as usual, or name another environment' });
  }
  refuseUnfinished(env);
  const stale = staleLockOwner(ctx.db, lockName(name));
  const lock = acquireLock(ctx.db, `running a shell in "${name}"`, lockName(name));
  try {
    if (stale !== null) for (const line of await recoverDeadShell(ctx, name)) log.info(`recovered: ${line}`);
    const current = await findEnvironment(ctx, name);
    if (current.mounted !== null) {
      throw new SysprimeError('REFUSED', `"${name}" is mounted at ${current.mounted}`, { hint: `run \`sysprime umount ${name}\` first: a shell's cleanup stops every process inside the tree it entered` });
    }
    const tree = await ctx.backend.openEnvironment(name);
    try {
      mkdirSync(SHELL_RUN_DIR, { recursive: true, mode: 0o700 });
      replaceFile(join(SHELL_RUN_DIR, name), `${tree.path}\n`, { mode: 0o600 });
      recordEvent(ctx.db, name, 'shell', { command: argv.length > 0 ? argv.join(' ') : null });
      const status = await withChroot(tree.path, { network: opts.network === true }, (session) =>
        session.interactive(argv.length > 0 ? argv : DEFAULT_SHELL, {
          // Debian's bashrc shows it in the prompt: "(sysprime:NAME)root@host".
          debian_chroot: `sysprime:${name}`,
          ...(opts.term !== undefined ? { TERM: opts.term } : {}),
        }),
      );
      return status;
    } finally {
      await tree.release();
      rmSync(join(SHELL_RUN_DIR, name), { force: true });
    }
  } finally {
    lock.release();
  }
}
