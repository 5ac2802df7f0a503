/** `sysprime reintegrate`: carry an environment's drift into another one, or show the plan; `sysprime rollback`, the same towards an older generation. */
import type { Command } from 'commander';
import { displayPath, printable } from '../../bart/index.js';
import type { Context } from '../../context.js';
import type { EnvironmentInfo } from '../../backends/types.js';
import { currentEnvironment, findEnvironment, listEnvironments } from '../../environments/lifecycle.js';
import { refuseOpenShell } from '../../environments/shell-lock.js';
import { planBetween, reintegrateInto } from '../../reintegrate/session.js';
import { runFirstBoot } from '../../reintegrate/first-boot.js';
import type { ReintegrationReport } from '../../reintegrate/report.js';
import { renderReport } from '../../reintegrate/report.js';
import { planForReaders } from '../../reintegrate/plan.js';
import { secretPatterns } from '../../drift/content.js';
import { SysprimeError, EXIT } from '../../errors.js';
import { printJson } from '../output.js';
import { withContext, type GlobalOptions } from '../runner.js';
import { planRollback, rollback } from '../../environments/rollback.js';
import type { ReintegrationPlan } from '../../reintegrate/plan.js';

/** The newest environment of a later generation than `from`: what `stage` made last. */
async function defaultTarget(ctx: Context, from: EnvironmentInfo): Promise<EnvironmentInfo> {
  const later = (await listEnvironments(ctx)).filter((e) => e.generation > from.generation && e.name !== from.name);
  const newest = later.sort((a, b) => b.generation - a.generation || b.created.getTime() - a.created.getTime())[0];
  if (!newest) {
    throw new SysprimeError('NOT_FOUND', `no environment of a later generation than "${from.name}" (${from.generation}) to carry its changes into`, {
      hint: 'stage one with `sysprime stage`, or name it with --to',
    });
  }
  return newest;
}

function summary(r: ReintegrationReport): string {
  const c = r.counts;
  return `${c.applied} applied, ${c.merged} merged, ${c.conflict} conflicts, ${c.skipped} skipped, ${c.unchanged} unchanged, ${c.failed} failed`;
}

export function registerReintegrate(program: Command, globals: () => GlobalOptions): void {
  program
    .command('reintegrate')
    .description("carry an environment's changes (its drift) into a newer one; --plan only shows what would be done")
    .option('--plan', 'print the plan, write nothing')
    .option('--from <env>', 'environment whose changes are carried (default: the current one)')
    .option('--to <env>', 'environment that receives them (default: the newest of a later generation)')
    .option('--first-boot', 'what the first-boot unit runs: replay what changed on the previous environment since staging')
    .addHelpText(
      'after',
      '\nExamples:\n  sysprime reintegrate --plan             what staging would carry over now\n  sysprime --json reintegrate --plan --to gen-4\n  sysprime reintegrate --first-boot       (run by sysprime-reintegrate.service)',
    )
    .action(async (opts: { plan?: boolean; from?: string; to?: string; firstBoot?: boolean }) =>
      withContext(globals(), async (ctx) => {
        const g = globals();
        if (opts.firstBoot) return firstBoot(ctx, g, opts.to);
        const from = opts.from ? await findEnvironment(ctx, opts.from) : await currentEnvironment(ctx);
        const to = opts.to ? await findEnvironment(ctx, opts.to) : await defaultTarget(ctx, from);
        if (to.name === from.name) throw new SysprimeError('USAGE', '--from and --to name the same environment');
        if (opts.plan) {
          const { plan } = await planBetween(ctx, from, to);
          printPlan(ctx, g, from, to, plan);
          return EXIT.OK;
        }
        if (to.booted) {
          throw new SysprimeError('REFUSED', `"${to.name}" is the running environment`, { hint: 'its first boot replays changes itself; run `sysprime reintegrate --first-boot`' });
        }
        refuseOpenShell(ctx, to.name, 'reintegrate into');
        const tree = await ctx.backend.openEnvironment(to.name);
        try {
          const done = await reintegrateInto(ctx, from, to, tree.path);
          if (g.json) printJson({ from: from.name, to: to.name, report: done.reportFile, counts: done.report.counts, items: done.report.items });
          else process.stdout.write(`${renderReport(done.report)}report kept in "${to.name}" at ${done.reportFile}\n`);
          return done.report.counts.failed > 0 ? EXIT.FAILED : EXIT.OK;
        } finally {
          await tree.release();
        }
      }),
    );
}

function printPlan(ctx: Context, g: GlobalOptions, from: EnvironmentInfo, to: EnvironmentInfo, plan: ReintegrationPlan): void {
  if (g.json) {
    printJson({ from: from.name, to: to.name, ...planForReaders(plan, secretPatterns(ctx.config.drift.secret)) });
    return;
  }
  const lines = plan.actions.filter((a) => a.action !== 'keep' && a.action !== 'skip');
  process.stdout.write(`Plan: changes of "${from.name}" (generation ${from.generation}) into "${to.name}" (generation ${to.generation})\n`);
  for (const a of lines) process.stdout.write(`  ${a.action.padEnd(9)} ${displayPath(a.path)}  ${printable(a.detail)}\n`);
  const counts = Object.entries(plan.counts).map(([k, v]) => `${v} ${k}`).join(', ');
  process.stdout.write(`${lines.length} paths to write (${counts || 'nothing'})\n`);
}

export function registerRollback(program: Command, globals: () => GlobalOptions): void {
  program
    .command('rollback [env]')
    .description("go back to an environment of an older generation, carrying the current one's changes over to it, and make it the default")
    .option('--plan', 'print what would be carried over, write nothing')
    .addHelpText(
      'after',
      "\nThe changes the admin made on the current environment (its drift) are carried over with the rules of staging:\nmerged where the older generation ships the file differently, the admin's version kept and the older one beside it\n(.sysprime-new) where they cannot be merged. The older environment's state before is kept as its snapshot\nrollback-<time>. Default env: the newest environment of the latest older generation.\n\nExamples:\n  sysprime rollback --plan gen-3\n  sysprime rollback gen-3\n  sysprime create gen-3-as-it-was --from gen-3@rollback-20261122T030102Z",
    )
    .action(async (env: string | undefined, opts: { plan?: boolean }) =>
      withContext(globals(), async (ctx) => {
        const g = globals();
        if (opts.plan) {
          const p = await planRollback(ctx, env);
          printPlan(ctx, g, p.from, p.to, p.plan);
          return EXIT.OK;
        }
        const done = await rollback(ctx, env);
        const r = done.carried.report;
        if (g.json) printJson({ from: done.from.name, to: done.to.name, snapshot: done.snapshot.name, report: done.carried.reportFile, counts: r.counts, items: r.items });
        else {
          process.stdout.write(renderReport(r));
          process.stdout.write(`report kept in "${done.to.name}" at ${done.carried.reportFile}\n`);
          process.stdout.write(`"${done.to.name}" (generation ${done.to.generation}) is now the default boot environment; its state before is kept as ${done.to.name}@${done.snapshot.name}\n`);
        }
        return r.counts.failed > 0 ? EXIT.FAILED : EXIT.OK;
      }),
    );
}

async function firstBoot(ctx: Context, g: GlobalOptions, toName?: string): Promise<number> {
  const outcome = await runFirstBoot(ctx, toName);
  if (!outcome.firstBoot) {
    if (g.json) printJson({ firstBoot: false });
    else process.stdout.write(`"${outcome.to}" has no first-boot reintegration waiting\n`);
    return EXIT.OK;
  }
  if (g.json) printJson({ firstBoot: true, from: outcome.from, to: outcome.to, report: outcome.reportFile, counts: outcome.report.counts });
  else process.stdout.write(`first boot of "${outcome.to}": carried over what changed on "${outcome.from}" since staging: ${summary(outcome.report)}\nreport: ${outcome.reportFile}\n`);
  return outcome.report.counts.failed > 0 ? EXIT.FAILED : EXIT.OK;
}
