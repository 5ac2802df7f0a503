/**
 * Manifests kept in the state directory belong to an environment
 * (`env:NAME`: the last live manifest, the seed of the next incremental
 * walk), to a pristine state (`pristine:GENERATION`), or to a staging
 * (`staged-ours:ID`: the running system's manifest at that staging, the
 * baseline the first boot of what it staged compares against). On a large
 * root each is tens of MB, so they go with what they describe: the state
 * directory's size is bounded by the environments kept, not by every
 * environment or staging there ever was.
 *
 * A manifest is only a cache except a staging's baseline, which nothing
 * could make again: it goes only once no environment's tree holds a
 * first-boot note naming it (see forgetManifestsOfGone).
 */
import type { Context } from '../context.js';
import type { EnvironmentInfo, PristineInfo } from '../backends/types.js';
import { forgetManifestsWhere, manifestSubjects, subjectOwner } from '../state/manifests.js';
import { acquireLock, lockHolder, staleLockOwner } from '../state/lock.js';
import { baselineKey, readFirstBootNote } from '../reintegrate/first-boot-note.js';
import { log } from '../log.js';
import { messageOf } from '../errors.js';

/**
 * Forget the kept manifests of environments, pristine states and stagings
 * that are gone. A staging is gone when no environment's tree holds a
 * first-boot note naming it: the note travels with a rename and into every
 * copy made before the first boot, and the first boot removes it, so the
 * notes themselves say which baselines are still needed (a staged name says
 * nothing: it can be renamed away and staged again). The notes are read
 * only when a baseline is kept, through the confined reader; when a tree
 * cannot be opened or its note read, every baseline stays (one of them may
 * be its). Call it holding the lock: a staging in progress keeps its
 * baseline before it writes the note that names it. A failure here is a
 * warning: the verb before it has done its work, and the next sweep tries
 * again. A caller that has just listed the environments and pristine states
 * (and changes neither before this) hands its lists in, so they are read once.
 */
export async function forgetManifestsOfGone(ctx: Context, listed?: { envs: readonly EnvironmentInfo[]; pristines: readonly PristineInfo[] }): Promise<string[]> {
  try {
    const envs = listed?.envs ?? (await ctx.backend.listEnvironments());
    const environments = new Set(envs.map((e) => e.name));
    const generations = new Set((listed?.pristines ?? (await ctx.backend.listPristines())).map((p) => p.generation));
    const keepsBaselines = manifestSubjects(ctx.db).some((s) => isBaseline(subjectOwner(s)));
    const stagings = keepsBaselines ? await stagingsHeld(ctx, envs) : null;
    const forgotten = forgetManifestsWhere(ctx.db, (subject) => {
      const owner = subjectOwner(subject);
      if (owner === null) return false;
      if ('environment' in owner) return !environments.has(owner.environment);
      if ('generation' in owner) return !generations.has(owner.generation);
      return stagings !== null && !stagings.has(owner.staging);
    });
    if (forgotten.length > 0) log.debug(`kept manifests forgotten with what they described: ${forgotten.join(', ')}`);
    return forgotten;
  } catch (err) {
    log.warn(`the manifests kept for environments that are gone were not forgotten (${messageOf(err)}); the next destroy or prune tries again`);
    return [];
  }
}

function isBaseline(owner: ReturnType<typeof subjectOwner>): owner is { staging: string } {
  return owner !== null && 'staging' in owner;
}

/**
 * The baseline keys the first-boot notes in the environments' trees name,
 * or null when one of the trees could not be read.
 */
async function stagingsHeld(ctx: Context, envs: readonly EnvironmentInfo[]): Promise<Set<string> | null> {
  const held = new Set<string>();
  for (const env of envs) {
    try {
      const tree = await ctx.backend.openEnvironment(env.name);
      try {
        const note = readFirstBootNote(tree.path);
        if (note !== null) held.add(baselineKey(note));
      } finally {
        await tree.release();
      }
    } catch (err) {
      log.warn(`the first-boot note of "${env.name}" could not be read (${messageOf(err)}); every staging baseline is kept until it can be`);
      return null;
    }
  }
  return held;
}

/**
 * After a first boot has used its baseline: forget the baselines no note
 * names any more, when the lock is free. The first boot runs without the
 * lock (it must not wait for a staging at boot); a sweep beside a staging in
 * progress would forget the baseline that staging has kept and not yet
 * named, and a lock a dead process left says work is waiting for recovery.
 * Either way the sweep is left to the next destroy, rename, prune or
 * staging.
 */
export async function forgetBaselinesAfterFirstBoot(ctx: Context): Promise<string[]> {
  if (lockHolder(ctx.db) !== null || staleLockOwner(ctx.db, 'stage') !== null) {
    log.debug('another sysprime holds the lock: the baselines no note names are forgotten by the next destroy, rename, prune or staging');
    return [];
  }
  let lock;
  try {
    lock = acquireLock(ctx.db, 'forgetting staging baselines after a first boot');
  } catch (err) {
    log.debug(`the lock was taken meanwhile (${messageOf(err)}): the next destroy, rename, prune or staging forgets the baselines`);
    return [];
  }
  try {
    return await forgetManifestsOfGone(ctx);
  } finally {
    lock.release();
  }
}
