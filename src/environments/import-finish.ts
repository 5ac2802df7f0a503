/**
 * The end of an import, one home for the import itself (transfer.ts) and
 * for the recovery that finishes one a kill cut short (lifecycle.ts's
 * recoverEnvironmentVerbs, which runs before the verbs that change
 * environments and in `doctor --fix`; transfer.ts imports lifecycle.ts, so
 * this cannot live there).
 *
 * An import receives the stream under a temporary name with the mark of an
 * unfinished import (staging/mark.ts) and renames it into place only once
 * the whole stream was received and checked. Recovery therefore finds one
 * of two things, and never touches an environment it did not make:
 * - the environment named and marked: it is whole, and nothing could use
 *   it since (the mark keeps it out of the boot menu and refuses every verb
 *   that would mount, boot or keep it), so it is finished: its pristine
 *   state taken, the mark cleared, its event recorded;
 * - no environment of that name and generation: what the filesystem had
 *   received is a temporary the backend's recover() removes, and a
 *   pristine state kept from the stream (`--with-pristine`), placed just
 *   before the environment gets its name, is removed here.
 * The journal record (`runRecorded`) is what lets `doctor` name the
 * interrupted import and gives the finished one its event's details.
 */
import type { Context } from '../context.js';
import type { EnvironmentInfo } from '../backends/types.js';
import { messageOf } from '../errors.js';
import { recordEvent } from '../state/events.js';
import { closeInterrupted, interruptedOperations, lastOperation, type Closed, type Json } from '../state/journal.js';
import { faultPoint } from '../process/fault.js';
import { IMPORT_FINISHED, importUnfinished } from '../staging/mark.js';
import { syncBootEntries } from './boot-entries.js';

/** The kind of the import's journal record. */
export const IMPORT_KIND = 'import';
/** The fault points of export and import (`kill:transfer:<point>`). */
export const TRANSFER_KIND = 'transfer';

/** What the import's record keeps: the environment it makes, and where the stream came from. */
export interface ImportParams extends Json {
  name: string;
  generation: number;
  /** The environment's name on the machine it was exported from. */
  from: string;
  exported: string;
}

/**
 * Finish an import whose environment has its name and carries the import's
 * mark: its pristine state taken (unless a kill came after that), the mark
 * cleared, the import recorded in its history, the boot entries written.
 */
export async function finishImport(ctx: Context, env: EnvironmentInfo, detail: Record<string, unknown>): Promise<void> {
  if (env.pristine === null) await ctx.backend.takePristine(env.name, env.generation);
  faultPoint(TRANSFER_KIND, 'import-pristine-taken');
  await ctx.backend.setMeta(env.name, IMPORT_FINISHED);
  recordEvent(ctx.db, env.name, 'import', { ...detail, generation: env.generation });
  await syncBootEntries(ctx);
}

function paramsOf(params: string): ImportParams {
  return JSON.parse(params) as ImportParams;
}

/** The last import's record, when it is the one that made `env`: imports run one at a time, each after this recovery. */
function recordOf(ctx: Context, env: EnvironmentInfo): ImportParams | null {
  const last = lastOperation(ctx.db, IMPORT_KIND);
  if (last === undefined) return null;
  const p = paramsOf(last.params);
  return p.name === env.name && p.generation === env.generation ? p : null;
}

/**
 * Finish every import a dead process (or a failure after the environment
 * got its name) left unfinished, and close the records of those cut short
 * before that. Runs under the lock, which an import holds from start to
 * end: an environment that carries the mark then is from no running import.
 * Returns one line per import recovered.
 */
export async function recoverImports(ctx: Context): Promise<string[]> {
  const lines: string[] = [];
  let envs = await ctx.backend.listEnvironments();
  if (envs.some(importUnfinished)) {
    // The backend's own first: a boot dataset received beside the root and not yet renamed (kill point
    // zfs:received-root-in-place) gets its name, so the pristine taken below has its boot half.
    try {
      lines.push(...(await ctx.backend.recover()));
    } catch (err) {
      // Finishing without it could take a pristine without its boot half: nothing is finished or closed, the next recovery tries again.
      lines.push(`could not yet finish the imports left unfinished: the backend's recovery failed: ${messageOf(err)}`);
      return lines;
    }
    envs = await ctx.backend.listEnvironments();
  }
  for (const env of envs.filter(importUnfinished)) {
    const record = recordOf(ctx, env);
    try {
      await finishImport(ctx, env, { ...(record !== null ? { from: record.from, exported: record.exported } : {}), finishedBy: 'recovery' });
    } catch (err) {
      // As an undo that cannot finish: said, and tried again by the next recovery (the mark and the record stay).
      lines.push(`could not yet finish the import of "${env.name}": ${messageOf(err)}`);
      continue;
    }
    const finished = `"${env.name}" was received whole and checked, and its pristine state is taken now`;
    const closed = closeInterrupted(ctx.db, IMPORT_KIND, (p) => p['name'] === env.name && p['generation'] === env.generation, { line: `is finished by this run: ${finished}`, record: 'finished by a later run' });
    lines.push(...(closed.length > 0 ? closed : [`finished the import that failed after its environment got its name: ${finished}`]));
  }
  let cutShort = false;
  for (const op of interruptedOperations(ctx.db, IMPORT_KIND)) {
    const p = paramsOf(op.params);
    const env = envs.find((e) => e.name === p.name && e.generation === p.generation);
    // Still marked: its finishing failed above, and its record stays open for the next recovery.
    if (env !== undefined && importUnfinished(env)) continue;
    // Named and unmarked: killed after its mark was cleared, with nothing left to do but close its record.
    const named = env !== undefined;
    const outcome: Closed = named
      ? { line: `had finished "${p.name}" already`, record: 'it had finished' }
      : { line: `had not given "${p.name}" its name: nothing of it is left`, record: 'its environment never got its name; a later run removed what was received' };
    if (!named) cutShort = true;
    // An import that kept the stream's pristine state places it before the environment gets its name (Btrfs): its
    // generation was the import's own, above every other, so a pristine of it that no environment has or holds is
    // that one. Removed before the record is closed: a kill in between leaves the record for the next recovery.
    if (!named && !envs.some((e) => e.generation === p.generation) && (await ctx.backend.listPristines()).some((x) => x.generation === p.generation && x.holder === null)) {
      try {
        await ctx.backend.destroyPristine(p.generation);
      } catch (err) {
        lines.push(`could not yet remove the pristine state of generation ${p.generation} that the import of "${p.name}" had received: ${messageOf(err)}`);
        continue;
      }
      lines.push(`removed the pristine state of generation ${p.generation} that the import of "${p.name}" had received`);
    }
    lines.push(...closeInterrupted(ctx.db, IMPORT_KIND, (q) => q['name'] === p.name && q['generation'] === p.generation, outcome));
  }
  // What such an import received is under a temporary name of its dead process: the backend's own leftovers.
  if (cutShort) {
    try {
      lines.push(...(await ctx.backend.recover()));
    } catch (err) {
      lines.push(`could not yet remove what an import cut short received: ${messageOf(err)}; \`sysprime doctor --fix\` tries again`);
    }
  }
  return lines;
}
