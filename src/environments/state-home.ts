/**
 * The state database's home at adoption. Staging keeps in the database what
 * the new environment's first boot needs (the manifests taken at staging, the
 * plan); a database inside the running root would be that root's alone, and
 * the first boot, in another environment, would not find them. So when
 * `[state] dir` is inside the installer's root (as the default
 * `/var/lib/sysprime/state` is on a machine as installed), `init` gives it a
 * subvolume or dataset of its own (the backend's `stateHome`), mounts it
 * there now (so every command until the reboot already uses it) and in every
 * environment: on Btrfs through a line in the fstab, on ZFS by the dataset's
 * own mountpoint.
 */
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { SysprimeError } from '../errors.js';
import { fsyncPath, renameInto } from '../os/durable.js';
import { liveSchedule } from '../state/schedule.js';
import { join, resolve } from 'node:path';
import type { Context } from '../context.js';
import { log } from '../log.js';
import { DB_FILE, openState } from '../state/db.js';
import { claimState } from './state-owner.js';

/** The files of the database in its directory: the root's copy, removed once it is in a home that needs the directory empty. */
const DATABASE_FILES = [DB_FILE, `${DB_FILE}-wal`, `${DB_FILE}-shm`, `${DB_FILE}.sysprime-new`];

/** Make sure the state database lives outside every environment; returns the fstab lines environments need for it (none on ZFS). */
export async function ensureStateHome(ctx: Context): Promise<string[]> {
  const dir = resolve(ctx.config.state.dir);
  const home = await ctx.backend.stateHome(dir);
  if (home === null) return [];
  if (!home.ready) {
    // A daemon keeps the database open for its lifetime: it would go on writing (and locking) the root's copy.
    const daemon = liveSchedule(ctx.db)[0];
    if (daemon !== undefined) {
      throw new SysprimeError('REFUSED', `the sysprime daemon (pid ${daemon.pid}) has the state database open, and init is about to move it to ${home.id}`, {
        hint: 'stop it (`systemctl stop sysprime.service`), run `sysprime init`, then start it again',
      });
    }
    const { done, beside } = await home.ensure();
    for (const line of done) log.info(line);
    const into = beside ?? dir;
    if (beside !== null) {
      // The home is to be mounted on the state directory once the root's copy has left it: nothing else may be there.
      const others = readdirSync(dir).filter((n) => !DATABASE_FILES.includes(n));
      if (others.length > 0) {
        throw new SysprimeError('REFUSED', `the state directory ${dir} holds more than the state database (${others.join(', ')}), and ${home.id} can only be mounted on it once it is empty`, {
          hint: `move them out of ${dir} (they are not copied into ${home.id}), then run \`sysprime init\` again`,
        });
      }
    }
    // The database opened so far is the root's own copy (hidden now when the home is mounted over it): carry what it holds over.
    const target = join(into, DB_FILE);
    if (existsSync(target)) log.warn(`${home.id} already holds a state database: it is used, and the one in the adopted root is not copied`);
    else {
      // Under a temporary name, made durable, then renamed: a crash never leaves a half-written database to be taken for the home's.
      const tmp = `${target}.sysprime-new`;
      rmSync(tmp, { force: true });
      ctx.db.exec(`VACUUM INTO '${tmp.replace(/'/g, "''")}'`);
      fsyncPath(tmp);
      renameInto(tmp, target);
      fsyncPath(into);
    }
    ctx.db.close();
    if (beside !== null) {
      // The state directory still shows the root's copy: the home has it now, and the mount wants the directory empty.
      for (const name of DATABASE_FILES) rmSync(join(dir, name), { force: true });
      fsyncPath(dir);
      log.info(`removed the adopted root's copy of the state database from ${dir}: it is in ${home.id}`);
    }
    for (const line of (await home.finish?.()) ?? []) log.info(line);
    ctx.db = openState(dir);
    // A database the home already held may be another filesystem's.
    await claimState(ctx);
    log.info(`the state database is in ${home.id}, mounted at ${dir} in every environment`);
  }
  return home.fstabLine === null ? [] : [home.fstabLine];
}

/**
 * Why the state database cannot serve a staged environment's first boot:
 * it is inside the current environment (a machine adopted before init made
 * the home, or a home removed by hand). The current environment is the
 * running one; where none runs (a pool prepared from a rescue system, the
 * tests' pools), the default one wherever it is mounted. Null when the
 * database is elsewhere, or when that environment is not mounted.
 */
export async function stateHomeProblem(ctx: Context): Promise<string | null> {
  const dir = resolve(ctx.config.state.dir);
  const envs = await ctx.backend.listEnvironments();
  const current = envs.find((e) => e.booted) ?? envs.find((e) => e.isDefault);
  const root = current === undefined ? null : current.booted ? '/' : current.mounted;
  if (current === undefined || root === null) return null;
  if (statSync(dir).dev !== statSync(root).dev) return null;
  const where = current.booted ? 'the running environment' : `environment "${current.name}" (mounted at ${root})`;
  return `the state database ${dir} is inside ${where}: each environment has its own copy, so a staged environment's first boot cannot find what staging kept and carries nothing changed after staging; give it a subvolume or dataset of its own, mounted there in every environment (docs/architecture.md, "Where state lives")`;
}
