/**
 * The marks an unfinished environment carries in its own metadata (so they
 * go with it), set before it gets its name and cleared by the last thing
 * that makes it. An environment that still carries one is from a verb that
 * has not finished (or was cut short): no boot entry, no pin, no
 * activation, no mount, and the next recovery deals with it.
 *
 * - A staging's: set when the clone is made, cleared by the last step. The
 *   next recovery undoes it (the journal's undo of the clone step): the
 *   update may have stopped anywhere. Every check of it is `stagingUnfinished`.
 * - An import's: set under the temporary name the stream is received under,
 *   cleared once its pristine state is taken. The environment gets its name
 *   only after the whole stream was received and checked, and nothing can
 *   use it while the mark is on, so the next recovery finishes it
 *   (environments/import-finish.ts): its pristine is exactly what arrived.
 */
import type { EnvironmentInfo } from '../backends/types.js';

const STAGING_KEY = 'staging';
const IMPORT_KEY = 'import';
const IN_PROGRESS = 'in-progress';

/** setMeta of the clone a staging has just made. */
export const STAGING_STARTED: Record<string, string | null> = { [STAGING_KEY]: IN_PROGRESS };

/** setMeta of the environment when its staging has finished, naming the environment it was staged from. */
export function stagingFinished(from: string): Record<string, string | null> {
  return { [STAGING_KEY]: null, 'staged-from': from };
}

export function stagingUnfinished(env: Pick<EnvironmentInfo, 'meta'>): boolean {
  return env.meta[STAGING_KEY] === IN_PROGRESS;
}

/** The metadata an import gives the environment it receives, under its temporary name. */
export const IMPORT_STARTED: Readonly<Record<string, string>> = { [IMPORT_KEY]: IN_PROGRESS };

/** setMeta of the environment when its import has finished. */
export const IMPORT_FINISHED: Readonly<Record<string, string | null>> = { [IMPORT_KEY]: null };

export function importUnfinished(env: Pick<EnvironmentInfo, 'meta'>): boolean {
  return env.meta[IMPORT_KEY] === IN_PROGRESS;
}

/** Which verb left this environment unfinished, if one did. */
export function unfinishedBy(env: Pick<EnvironmentInfo, 'meta'>): 'staging' | 'import' | null {
  if (stagingUnfinished(env)) return 'staging';
  if (importUnfinished(env)) return 'import';
  return null;
}
