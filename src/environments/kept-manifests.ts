/**
 * Manifests kept in the state directory belong to an environment
 * (`env:NAME`: the last live manifest, the seed of the next incremental
 * walk; `staged-ours:NAME`: the running system's manifest at the time NAME
 * was staged, which its first boot compares against) or to a pristine state
 * (`pristine:GENERATION`). On a large root each is tens of MB, so they go
 * with what they describe: the state directory's size is bounded by the
 * environments kept, not by every environment there ever was.
 *
 * A manifest is only a cache except `staged-ours:NAME` before NAME's first
 * boot (see forgetManifestsOfGone).
 */
import type { Context } from '../context.js';
import { forgetManifest, forgetManifestsWhere, manifestSubject, subjectOwner } from '../state/manifests.js';
import { log } from '../log.js';
import { messageOf } from '../errors.js';

/**
 * Forget the kept manifests of environments and pristine states that are
 * gone. Never `staged-ours:NAME`: the first-boot note inside a staged
 * environment names the manifest by the name it was staged under, which a
 * rename does not change, so "NAME is gone" does not mean its first boot
 * no longer needs it. Those go with a destroy of NAME (forgetStagedManifest)
 * or once the first boot has used them. A failure here is a warning: what
 * it tidies up is a cache, and the verb before it has done its work.
 */
export async function forgetManifestsOfGone(ctx: Context): Promise<string[]> {
  try {
    const environments = new Set((await ctx.backend.listEnvironments()).map((e) => e.name));
    const generations = new Set((await ctx.backend.listPristines()).map((p) => p.generation));
    const forgotten = forgetManifestsWhere(ctx.db, (subject) => {
      if (subject.startsWith(manifestSubject.stagedOurs(''))) return false;
      const owner = subjectOwner(subject);
      if (owner === null) return false;
      return 'environment' in owner ? !environments.has(owner.environment) : !generations.has(owner.generation);
    });
    if (forgotten.length > 0) log.debug(`kept manifests forgotten with what they described: ${forgotten.join(', ')}`);
    return forgotten;
  } catch (err) {
    log.warn(`the manifests kept for environments that are gone were not forgotten (${messageOf(err)}); the next destroy or prune tries again`);
    return [];
  }
}

/**
 * The running system's manifest kept when `name` was staged: forgotten once
 * its first boot has used it, or when the environment staged under that
 * name is destroyed.
 */
export function forgetStagedManifest(ctx: Context, name: string): void {
  forgetManifest(ctx.db, manifestSubject.stagedOurs(name));
}
