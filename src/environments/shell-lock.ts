/**
 * The lock a `sysprime shell` holds on its environment (one shell per
 * environment), and the refusal every verb that would pull the tree from
 * under it gives while it is open: destroy, rename, umount, reintegrate
 * into it. Apart from shell.ts so that lifecycle.ts can use it without an
 * import circle.
 */
import type { Context } from '../context.js';
import { SysprimeError } from '../errors.js';
import { lockHolder } from '../state/lock.js';

export function shellLockName(name: string): string {
  return `shell:${name}`;
}

/** Refuses while a live `sysprime shell` is open in `name`. */
export function refuseOpenShell(ctx: Context, name: string, doing: string): void {
  const holder = lockHolder(ctx.db, shellLockName(name));
  if (holder === null) return;
  throw new SysprimeError('BUSY', `cannot ${doing} "${name}": a sysprime shell (pid ${holder.pid}) is open in it since ${holder.at}`, {
    hint: 'leave that shell first',
  });
}
