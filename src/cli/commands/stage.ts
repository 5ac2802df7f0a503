/** `sysprime stage` and `sysprime daemon`. */
import type { Command } from 'commander';
import { stage, type StagedReintegration, type StageOutcome } from '../../staging/pipeline.js';
import { displayPath as printablePath, printable } from '../../bart/index.js';
import { EXIT } from '../../errors.js';
import { wholeNumberOption } from '../../config/numbers.js';
import { runDaemon } from '../../scheduler/daemon.js';
import { daemonJobs, recoverForDaemon } from '../../scheduler/jobs.js';
import { writeMetrics } from '../../metrics/textfile.js';
import { printJson } from '../output.js';
import { stepProgress } from '../progress.js';
import type { Updater } from '../../updaters/types.js';
import type { Config } from '../../config/schema.js';
import { applyGlobals, reportError, requireRoot, withContext, type GlobalOptions } from '../runner.js';

// Loaded on use: the updaters pull in what only staging needs.
async function createUpdater(config: Config): Promise<Updater> {
  return (await import('../../updaters/registry.js')).createUpdater(config);
}

function reintegrationLine(r: StagedReintegration): string {
  const c = r.counts;
  const conflicts = c['conflict'] ?? 0;
  const failed = c['failed'] ?? 0;
  const skipped = c['skipped'] ?? 0;
  return (
    `carried over the admin's changes: ${c['applied'] ?? 0} applied, ${c['merged'] ?? 0} merged, ${conflicts} conflicts, ${failed} failed, ${skipped} skipped` +
    (conflicts > 0 ? ` (the admin's version is in place, the update's beside it as .sysprime-new; see ${r.report} in the new environment)` : '') +
    '\n' +
    r.notCarried.map((i) => `  not carried (${i.outcome}): ${printablePath(i.path)}: ${printable(i.detail)}\n`).join('')
  );
}

/** One line per path not carried over, for the daemon's log at error priority. */
/** Paths not carried make `stage` exit non-zero, as failed ones do for `reintegrate`: the environment exists, but the admin's changes are not all in it. */
function stageExit(outcome: StageOutcome): number {
  return outcome.kind === 'staged' && outcome.reintegration.notCarried.length > 0 ? EXIT.FAILED : EXIT.OK;
}

export function registerStage(program: Command, globals: () => GlobalOptions): void {
  program
    .command('stage')
    .description('build the next generation in a new environment, without touching the running one')
    .option('--from <env>', 'environment whose changes are carried over (default: the current one)')
    .option('--name <name>', 'name of the new environment (default: gen-N)')
    .option('--description <text>', 'one line kept with the new environment, shown by list and in its boot menu title')
    .option('-n, --dry-run', 'say what would be done, change nothing')
    .addHelpText(
      'after',
      '\nExamples:\n  sysprime stage              stage the next generation now\n  sysprime stage --dry-run    show the plan\n  sysprime --json stage       machine-readable result',
    )
    .action(async (opts: { from?: string; name?: string; description?: string; dryRun?: boolean }) =>
      withContext(globals(), async (ctx) => {
        const g = globals();
        const updater = await createUpdater(ctx.config);
        const outcome = await stage(ctx, updater, {
          ...(opts.from ? { from: opts.from } : {}),
          ...(opts.name ? { name: opts.name } : {}),
          ...(opts.description !== undefined ? { description: opts.description } : {}),
          dryRun: opts.dryRun === true,
          verbose: g.verbose === true,
          progress: stepProgress({ json: g.json, quiet: g.quiet }),
        });
        if (g.json) {
          printJson(outcome);
          // stderr is for the admin whatever stdout's form: a non-zero exit always says why.
          if (outcome.kind === 'staged') warnNotCarried(outcome.name, outcome.reintegration);
          return stageExit(outcome);
        }
        for (const line of outcome.recovered) process.stdout.write(`recovered: ${line}\n`);
        switch (outcome.kind) {
          case 'dry-run':
            process.stdout.write(
              `would stage generation ${outcome.generation} as "${outcome.name}" from the pristine state of generation ${outcome.baseGeneration},\n` +
                `carrying over the changes of "${outcome.from}", with ${updater.describe()}:\n` +
                outcome.steps.map((s, i) => `  ${i + 1}. ${s}\n`).join(''),
            );
            break;
          case 'up-to-date':
            process.stdout.write(`up to date: ${outcome.reason}; no environment was made\n`);
            break;
          case 'staged':
            process.stdout.write(
              `staged generation ${outcome.generation} as "${outcome.name}" (${outcome.update.summary}); the running system is unchanged\n` +
                reintegrationLine(outcome.reintegration) +
                (outcome.pruned.length ? `pruned: ${outcome.pruned.join(', ')}\n` : '') +
                `boot it with \`sysprime activate ${outcome.name}\`\n`,
            );
            warnNotCarried(outcome.name, outcome.reintegration);
            break;
        }
        return stageExit(outcome);
      }),
    );

  program
    .command('daemon')
    .description('run staging, drift recording and retention on the configured schedule')
    .option('--max-runs <n>', 'exit after this many runs (for tests)', wholeNumberOption({ min: 1, max: Number.MAX_SAFE_INTEGER }))
    .addHelpText('after', '\nExamples:\n  sysprime daemon                  as sysprime.service runs it\n  systemctl enable --now sysprime.service')
    .action(async (opts: { maxRuns?: number }) => {
      const g = globals();
      try {
        applyGlobals(g);
        requireRoot();
        process.exitCode = await runDaemon({
          config: g.config,
          ...(opts.maxRuns !== undefined ? { maxRuns: opts.maxRuns } : {}),
          recover: recoverForDaemon,
          afterRun: async (ctx) => void (await writeMetrics(ctx)),
          jobs: daemonJobs,
        });
      } catch (err) {
        process.exitCode = reportError(err, g.verbose === true);
      }
    });
}

/** What staging could not carry over, said on stderr (with --json too: the exit status is not 0). */
function warnNotCarried(name: string, r: { notCarried: readonly unknown[]; report: string }): void {
  if (r.notCarried.length === 0) return;
  process.stderr.write(
    `sysprime: ${r.notCarried.length} of the admin's changes were not carried over into "${name}"\n` +
      `  hint: see ${r.report} in it, fix the cause, then run \`sysprime reintegrate --to ${name}\`\n`,
  );
}
