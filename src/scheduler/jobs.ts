/**
 * What the daemon runs, and when: staging, drift recording and retention on
 * the configured schedule (`[schedule]`), and a reboot into the environment
 * that boots next every five minutes unless `[reboot] policy` is "never". `sysprime daemon` hands these to
 * runDaemon (daemon.ts); each job returns the line kept in the schedule.
 */
import type { Context } from '../context.js';
import type { Config } from '../config/schema.js';
import type { Updater } from '../updaters/types.js';
import { displayPath, printable } from '../bart/index.js';
import { computeDrift, recordDrift } from '../drift/compute.js';
import { pruneEnvironments } from '../environments/prune.js';
import { recoverStaging, stage, type StageOutcome } from '../staging/pipeline.js';
import { rebootNow } from '../reboot/reboot.js';
import { isSysprimeError } from '../errors.js';
import type { Job } from './daemon.js';

// Loaded on use: the updaters pull in what only staging needs.
async function createUpdater(config: Config): Promise<Updater> {
  return (await import('../updaters/registry.js')).createUpdater(config);
}

/** Each path a staging could not carry over, as an error line of the stage job. */
function failedLines(outcome: StageOutcome): string[] {
  if (outcome.kind !== 'staged') return [];
  return outcome.reintegration.notCarried.map((i) => `"${outcome.name}": not carried over: ${displayPath(i.path)}: ${printable(i.detail)} (see ${outcome.reintegration.report} in the new environment)`);
}

/** What an interrupted run of the daemon left: finished before the first job. */
export async function recoverForDaemon(ctx: Context): Promise<string[]> {
  return recoverStaging(ctx, await createUpdater(ctx.config));
}

export function daemonJobs(ctx: Context): Job[] {
  return [
    {
      name: 'stage',
      expression: ctx.config.schedule.stage,
      randomDelay: ctx.config.schedule.randomDelay,
      async run(c) {
        const outcome = await stage(c, await createUpdater(c.config), {});
        const summary =
          outcome.kind === 'staged'
            ? `staged generation ${outcome.generation} as ${outcome.name}` +
              (outcome.reintegration.notCarried.length ? `; ${outcome.reintegration.notCarried.length} of the admin's changes not carried over` : '')
            : outcome.kind === 'up-to-date'
              ? `up to date (${outcome.reason})`
              : 'dry run';
        return { summary, errors: failedLines(outcome) };
      },
    },
    {
      name: 'drift',
      expression: ctx.config.schedule.drift,
      randomDelay: 0,
      async run(c) {
        const report = await computeDrift(c, undefined, { content: false });
        recordDrift(c, report);
        return `recorded drift of ${report.environment}: ${report.counts.added} added, ${report.counts.removed} removed, ${report.counts.modified} modified`;
      },
    },
    {
      name: 'prune',
      expression: ctx.config.schedule.prune,
      randomDelay: 0,
      async run(c) {
        const r = await pruneEnvironments(c);
        const pinned = r.plan.keep.filter((k) => k.reasons.includes('pinned')).map((k) => k.name);
        return (r.destroyed.length ? `pruned ${r.destroyed.join(', ')}` : 'nothing to prune') + (pinned.length ? `; kept pinned: ${pinned.join(', ')}` : '');
      },
    },
    {
      name: 'reboot',
      // Every five minutes: a window opens within five minutes of its start, and a fleet slot freed elsewhere is taken soon.
      expression: ctx.config.reboot.policy === 'never' ? 'off' : '*/5 * * * *',
      randomDelay: 0,
      async run(c) {
        try {
          const r = await rebootNow(c);
          return r.plan.kind === 'reboot' ? `rebooting into ${r.plan.into.name}: ${r.plan.why}` : `not rebooting: ${r.plan.why}`;
        } catch (err) {
          // No slot now is the fleet working as meant, not a failed run.
          if (isSysprimeError(err, 'TRY_LATER')) return `not rebooting: ${err.message}`;
          throw err;
        }
      },
    },
  ];
}
