/**
 * One `[state] dir` serves one filesystem or pool. The database keeps
 * manifests by environment name and generation, the journal, drift history
 * and the generations' updates; a second configuration on the same machine
 * (another pool, another Btrfs filesystem) pointed at the same directory
 * would overwrite the first's manifests and could take the other's pristine
 * manifest for this one's drift baseline. The first command records the
 * backend's identity of the filesystem or pool (not its mount point or name,
 * which change); every later one must match it.
 */
import { resolve } from 'node:path';
import type { Backend } from '../backends/types.js';
import type { Db } from '../state/db.js';
import { SysprimeError } from '../errors.js';
import { log } from '../log.js';
import { recordStateOwner, stateOwner } from '../state/owner.js';

export interface ClaimOptions {
  /** Take the database over from the filesystem it names (`doctor --claim-state`): this one replaced it. */
  takeOver?: boolean;
}

/** What the claim reads of a context (context.ts makes one with it, so it cannot take a Context). */
export interface StateOfBackend {
  db: Db;
  backend: Backend;
  config: { state: { dir: string } };
}

/** Record this configuration's filesystem as the state's owner, or refuse a database that belongs to another. */
export async function claimState(ctx: StateOfBackend, opts: ClaimOptions = {}): Promise<void> {
  const described = ctx.backend.describe();
  let identity: string;
  try {
    identity = await ctx.backend.identity();
  } catch (err) {
    // Not being able to name the filesystem must not stop every verb on it; it is said each time.
    if (!(err instanceof SysprimeError)) throw err;
    log.warn(`the owner of the state directory is not checked: ${err.message}`);
    return;
  }
  const owner = stateOwner(ctx.db);
  if (owner !== undefined && owner.identity !== identity) {
    const dir = resolve(ctx.config.state.dir);
    if (!opts.takeOver) {
      throw new SysprimeError('REFUSED', `the state directory ${dir} belongs to ${owner.described} (${owner.identity}), not to ${described} (${identity}) that this configuration names`, {
        hint: `give each filesystem or pool its own [state] dir in sysprime.toml; if ${described} took that one's place (restored from a backup onto a new filesystem, \`zpool reguid\`), \`sysprime doctor --claim-state\` makes it the owner`,
      });
    }
    log.warn(`the state directory ${dir} belonged to ${owner.described} (${owner.identity}); it is ${described}'s (${identity}) from now on`);
  }
  // The description follows the configuration (a new [btrfs] top, a pool imported under another name).
  if (owner === undefined || owner.identity !== identity || owner.described !== described) recordStateOwner(ctx.db, identity, described);
}
