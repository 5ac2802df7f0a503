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
 * boot: that one is never forgotten while NAME exists.
 */
import type { Context } from '../context.js';
import { forgetManifest, forgetManifestsWhere, manifestSubject, subjectOwner } from '../state/manifests.js';
import { log } from '../log.js';

/** Forget the kept manifests of environments and pristine states that are gone. */
export async function forgetManifestsOfGone(ctx: Context): Promise<string[]> {
  const environments = new Set((await ctx.backend.listEnvironments()).map((e) => e.name));
  const generations = new Set((await ctx.backend.listPristines()).map((p) => p.generation));
  const forgotten = forgetManifestsWhere(ctx.db, (subject) => {
    const owner = subjectOwner(subject);
    if (owner === null) return false;
    return 'environment' in owner ? !environments.has(owner.environment) : !generations.has(owner.generation);
  });
  if (forgotten.length > 0) log.debug(`kept manifests forgotten with what they described: ${forgotten.join(', ')}`);
  return forgotten;
}

/** After a first boot carried everything over, the manifest kept at staging has served. */
export function forgetStagedManifest(ctx: Context, name: string): void {
  forgetManifest(ctx.db, manifestSubject.stagedOurs(name));
}
