/**
 * The first boot of a staged environment (`sysprime reintegrate
 * --first-boot`, what sysprime-reintegrate.service runs): read the note
 * staging left in the environment, replay what changed on the environment
 * it was staged from since then, remove the note and the unit, and forget
 * the baseline once no other note names it. A failure removes them too (the
 * unit must not loop at every boot) and keeps what happened, in the
 * environment and in the state database, for `status`.
 */
import type { Context } from '../context.js';
import { currentEnvironment, findEnvironment } from '../environments/lifecycle.js';
import { refuseOpenShell } from '../environments/shell-lock.js';
import { forgetBaselinesAfterFirstBoot } from '../environments/kept-manifests.js';
import { messageOf } from '../errors.js';
import { keepReport } from '../state/reports.js';
import { readFirstBootNote, removeFirstBoot } from './first-boot-note.js';
import type { ReintegrationReport } from './report.js';
import { reintegrateSinceStaging } from './session.js';

export type FirstBootOutcome =
  /** The environment has no note: nothing waits (its first boot ran, or it was never staged). */
  | { firstBoot: false; to: string }
  | {
      firstBoot: true;
      /** The environment whose changes since staging were carried. */
      from: string;
      to: string;
      report: ReintegrationReport;
      /** Where the human report is, inside the environment. */
      reportFile: string;
    };

/** Run the first boot of `toName`, or of the current environment. */
export async function runFirstBoot(ctx: Context, toName?: string): Promise<FirstBootOutcome> {
  const to = toName ? await findEnvironment(ctx, toName) : await currentEnvironment(ctx);
  refuseOpenShell(ctx, to.name, 'carry the first boot into');
  const tree = await ctx.backend.openEnvironment(to.name);
  try {
    const note = readFirstBootNote(tree.path);
    if (!note) return { firstBoot: false, to: to.name };
    let done;
    try {
      done = await reintegrateSinceStaging(ctx, note, to.name, tree.path);
      removeFirstBoot(tree.path, 'done', null);
    } catch (err) {
      const message = messageOf(err);
      removeFirstBoot(tree.path, 'failed', { at: new Date().toISOString(), from: note.from, error: message });
      keepReport(ctx.db, { at: new Date().toISOString(), kind: 'first-boot-failed', environment: to.name, summary: { error: message }, body: { note, error: message } });
      throw err;
    }
    // Its baseline is needed no more unless a copy's note still names it.
    await forgetBaselinesAfterFirstBoot(ctx);
    return { firstBoot: true, from: note.from, to: to.name, report: done.report, reportFile: done.reportFile };
  } finally {
    await tree.release();
  }
}
