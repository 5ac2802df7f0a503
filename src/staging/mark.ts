/**
 * The mark a staging leaves on the environment it makes, in the
 * environment's own metadata (so it goes with the environment): set when the
 * clone is made, cleared by the last step. An environment that still
 * carries it is from a staging that has not finished (or was cut short):
 * no boot entry, no pin, no activation, and the next recovery undoes it.
 * Every check of it is `stagingUnfinished`.
 */
import type { EnvironmentInfo } from '../backends/types.js';

const KEY = 'staging';
const IN_PROGRESS = 'in-progress';

/** setMeta of the clone a staging has just made. */
export const STAGING_STARTED: Record<string, string | null> = { [KEY]: IN_PROGRESS };

/** setMeta of the environment when its staging has finished, naming the environment it was staged from. */
export function stagingFinished(from: string): Record<string, string | null> {
  return { [KEY]: null, 'staged-from': from };
}

export function stagingUnfinished(env: Pick<EnvironmentInfo, 'meta'>): boolean {
  return env.meta[KEY] === IN_PROGRESS;
}
