/**
 * The state database's home at adoption. Staging keeps in the database what
 * the new environment's first boot needs (the manifests taken at staging, the
 * plan); a database inside the running root would be that root's alone, and
 * the first boot, in another environment, would not find them. So when
 * `[state] dir` is on the pool (inside the installer's root, as the default
 * `/var/lib/sysprime/state` is on a machine as installed), `init` gives it a
 * subvolume of its own, mounts it there now (so every command until the
 * reboot already uses it) and in every environment through its fstab.
 */
import { existsSync, rmSync, statSync } from 'node:fs';
import { SysprimeError } from '../errors.js';
import { fsyncPath, renameInto } from '../os/durable.js';
import { liveSchedule } from '../state/schedule.js';
import { join, resolve } from 'node:path';
import type { Context } from '../context.js';
import { log } from '../log.js';
import { DB_FILE, openState } from '../state/db.js';

/** Make sure the state database lives outside every environment; returns the fstab line environments need, if any. */
export async function ensureStateHome(ctx: Context): Promise<string[]> {
  const dir = resolve(ctx.config.state.dir);
  if (ctx.backend.stateHome === undefined) {
    if (statSync(dir).dev === statSync('/').dev && ctx.backend.kind === 'zfs') {
      log.warn(`the state database ${dir} is inside the running root: each environment would have its own copy, and a staged environment's first boot would not find what staging kept; make it a dataset of its own (\`zfs create -o mountpoint=${dir} <pool>/sysprime-state\`, moving its files in) before staging`);
    }
    return [];
  }
  const home = await ctx.backend.stateHome(dir);
  if (home === null) return [];
  if (!home.ready) {
    // A daemon keeps the database open for its lifetime: it would go on writing (and locking) the copy the mount hides.
    const daemon = liveSchedule(ctx.db)[0];
    if (daemon !== undefined) {
      throw new SysprimeError('REFUSED', `the sysprime daemon (pid ${daemon.pid}) has the state database open, and init is about to move it to ${home.id}`, {
        hint: 'stop it (`systemctl stop sysprime.service`), run `sysprime init`, then start it again',
      });
    }
    for (const done of await home.ensure()) log.info(done);
    // The database opened so far is the root's own copy, hidden now: carry what it holds over, then use the home.
    const target = join(dir, DB_FILE);
    if (existsSync(target)) log.warn(`${home.id} already holds a state database: it is used, and the one in the adopted root (hidden under the mount) is not copied`);
    else {
      // Under a temporary name, made durable, then renamed: a crash never leaves a half-written database to be taken for the home's.
      const tmp = `${target}.sysprime-new`;
      rmSync(tmp, { force: true });
      ctx.db.exec(`VACUUM INTO '${tmp.replace(/'/g, "''")}'`);
      fsyncPath(tmp);
      renameInto(tmp, target);
      fsyncPath(dir);
    }
    ctx.db.close();
    ctx.db = openState(dir);
    log.info(`the state database is in ${home.id}, mounted at ${dir} in every environment`);
  }
  return [home.fstabLine];
}

/**
 * Why the state database cannot serve a staged environment's first boot:
 * it is inside the running environment (a machine adopted before init made
 * the home, or a home removed by hand). Null when it is shared, or when no
 * environment is running (a rescue system, tests).
 */
export async function stateHomeProblem(ctx: Context): Promise<string | null> {
  const dir = resolve(ctx.config.state.dir);
  if (!(await ctx.backend.listEnvironments()).some((e) => e.booted)) return null;
  if (statSync(dir).dev !== statSync('/').dev) return null;
  return `the state database ${dir} is inside the running environment: each environment has its own copy, so a staged environment's first boot cannot find what staging kept and carries nothing changed after staging; give it a subvolume or dataset of its own, mounted there in every environment (docs/architecture.md, "Where state lives")`;
}
