/**
 * Manifests kept in the state directory belong to an environment
 * (`env:NAME`: the last live manifest, the seed of the next incremental
 * walk; `staged-ours:NAME`: the running system's manifest at the time NAME
 * was staged, which its first boot compares against) or to a pristine state
 * (`pristine:GENERATION`). On a large root each is tens of MB, so they go
 * with what they describe: the state directory's size is bounded by the
 * environments kept, not by every environment there ever was (one
 * `staged-ours` manifest per staged name aside).
 *
 * A manifest is only a cache except `staged-ours:NAME`, which the first
 * boot of NAME, and of any copy or rename of it, compares against (see
 * forgetManifestsOfGone).
 */
import type { Context } from '../context.js';
import { forgetManifestsWhere, subjectOwner } from '../state/manifests.js';
import { log } from '../log.js';
import { messageOf } from '../errors.js';

/**
 * Forget the kept manifests of environments and pristine states that are
 * gone. Never `staged-ours:NAME`: the first-boot note inside a staged
 * environment names it by the name it was staged under, and that note
 * travels with a rename and into every copy (`create --from NAME` before
 * its first boot), so neither "NAME is gone" nor "NAME's first boot ran"
 * means no environment needs it any more. Those stay until they can be
 * keyed by something that follows the note (to do). A failure here is a
 * warning: what it tidies up is a cache, and the verb before it has done
 * its work.
 */
export async function forgetManifestsOfGone(ctx: Context): Promise<string[]> {
  try {
    const environments = new Set((await ctx.backend.listEnvironments()).map((e) => e.name));
    const generations = new Set((await ctx.backend.listPristines()).map((p) => p.generation));
    const forgotten = forgetManifestsWhere(ctx.db, (subject) => {
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
