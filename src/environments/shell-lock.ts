/**
 * The lock a `sysprime shell` holds on its environment (one shell per
 * environment), and the refusal every verb that would pull the tree from
 * under it gives while it is open: destroy, rename, umount, reintegrate
 * into it, and the recovery of what a dead shell left (recoverDeadShells).
 * Apart from shell.ts so that lifecycle.ts and prune.ts can use it without
 * an import circle.
 */
import type { Context } from '../context.js';
import { SysprimeError } from '../errors.js';
import { acquireLock, lockHolder, staleLockNames, withLock } from '../state/lock.js';
import { recoverChroot } from '../updaters/chroot.js';

const SHELL_LOCK_PREFIX = 'shell:';

export function shellLockName(name: string): string {
  return `${SHELL_LOCK_PREFIX}${name}`;
}

/**
 * Undo what a shell that died (kill -9, power cut, reboot) left in `name`;
 * the lines say what was done. The caller holds the environment's shell lock.
 */
export async function recoverDeadShell(ctx: Context, name: string): Promise<string[]> {
  // A private mount the dead shell used is handed out again as it is (ZFS), or the environment is opened anew.
  const tree = await ctx.backend.openEnvironment(name);
  const done: string[] = [];
  try {
    done.push(...(await recoverChroot(tree.path)));
  } finally {
    await tree.release();
  }
  // The dead process's private mount of the environment: the backend's recovery, which must not run beside a staging.
  done.push(...(await withLock(ctx.db, 'recovering after a shell', () => ctx.backend.recover())));
  return done;
}

/**
 * Every environment a dead shell left entered: its lock taken over for the
 * time, what it left undone (recoverDeadShell), the lock released. For the
 * verbs that judge an environment by whether it is mounted (prune): a shell
 * killed with -9 leaves its mounts behind, and the environment would be
 * taken for one in use until a shell ran in it again.
 */
export async function recoverDeadShells(ctx: Context): Promise<string[]> {
  const done: string[] = [];
  for (const lockName of staleLockNames(ctx.db, SHELL_LOCK_PREFIX)) {
    const name = lockName.slice(SHELL_LOCK_PREFIX.length);
    const lock = acquireLock(ctx.db, `recovering after a shell in "${name}"`, lockName);
    try {
      if ((await ctx.backend.listEnvironments()).some((e) => e.name === name)) done.push(...(await recoverDeadShell(ctx, name)));
    } finally {
      lock.release();
    }
  }
  return done;
}

/** Refuses while a live `sysprime shell` is open in `name`. */
export function refuseOpenShell(ctx: Context, name: string, doing: string): void {
  const holder = lockHolder(ctx.db, shellLockName(name));
  if (holder === null) return;
  throw new SysprimeError('BUSY', `cannot ${doing} "${name}": a sysprime shell (pid ${holder.pid}) is open in it since ${holder.at}`, {
    hint: 'leave that shell first',
  });
}
