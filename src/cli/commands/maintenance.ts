/** Retention and repair: `prune`, `doctor`, `health`, and the boot hooks the shipped units call. */
import type { Command } from 'commander';
import { pruneEnvironments } from '../../environments/prune.js';
import { ADMIN_ONLY, findProblems, repair } from '../../environments/doctor.js';
import { bootloaderFor } from '../../environments/boot-entries.js';
import { atRiskLines } from '../../environments/shared.js';
import { EXIT, SysprimeError, messageOf } from '../../errors.js';
import { formatBytes, printJson } from '../output.js';
import { wholeNumberOption, type Range } from '../../config/numbers.js';
import { KEYS } from '../../config/schema.js';
import { withConfig, withContext, type GlobalOptions } from '../runner.js';
import { runHealthChecks, type HealthReport } from '../../health/checks.js';
import { healthAfterBoot, reportGoodBoot } from '../../health/after-boot.js';
import { collectMetrics, renderMetrics, writeMetrics } from '../../metrics/textfile.js';
import type { Context } from '../../context.js';

/** The metrics file follows each boot's result; a file that cannot be written is a warning, not a failed boot unit. */
async function metricsOrWarn(ctx: Context): Promise<void> {
  try {
    await writeMetrics(ctx);
  } catch (err) {
    process.stderr.write(`sysprime: warning: could not write [metrics] textfile: ${messageOf(err)}\n`);
  }
}

function healthLines(r: HealthReport): string[] {
  return [...r.checks.map((c) => `${c.ok ? 'ok' : c.required ? 'FAILED' : 'warning'}: ${c.name}${c.ok ? '' : `: ${c.detail}`}`), ...r.warnings.filter((w) => !r.checks.some((c) => w.startsWith(`${c.name}:`))).map((w) => `warning: ${w}`), `health: ${r.result}`];
}

export function registerMaintenance(program: Command, globals: () => GlobalOptions): void {
  program
    .command('prune')
    .description(
      'destroy old environments beyond [retention] keep and keep_days, and below the free-space floor (never the running, default, one-shot or a pinned one)',
    )
    .option('--keep <n>', 'keep this many environments', wholeNumberOption(KEYS['retention.keep']!.kind as Range))
    .option('--keep-days <n>', 'keep environments younger than this many days too (0: off)', wholeNumberOption(KEYS['retention.keep_days']!.kind as Range))
    .option('-n, --dry-run', 'say what would go, destroy nothing')
    .addHelpText('after', '\nExamples:\n  sysprime prune --dry-run\n  sysprime prune --keep 3\n  sysprime prune --keep 3 --keep-days 14   the 3 newest, and all made in the last 14 days')
    .action(async (opts: { keep?: number; keepDays?: number; dryRun?: boolean }) =>
      withContext(globals(), async (ctx) => {
        const r = await pruneEnvironments(ctx, {
          ...(opts.keep !== undefined ? { keep: opts.keep } : {}),
          ...(opts.keepDays !== undefined ? { keepDays: opts.keepDays } : {}),
          dryRun: opts.dryRun === true,
        });
        if (globals().json) {
          printJson({ dryRun: opts.dryRun === true, ...r });
          return r.failed.length ? EXIT.FAILED : EXIT.OK;
        }
        const verb = opts.dryRun ? 'would destroy' : 'destroyed';
        for (const d of r.plan.destroy) {
          if (opts.dryRun || r.destroyed.includes(d.name)) process.stdout.write(`${verb} ${d.name} (${formatBytes(d.spaceUnique)}): ${d.why}\n`);
        }
        for (const f of r.failed) process.stdout.write(`could not destroy ${f.name}: ${f.error}\n`);
        for (const k of r.plan.keep) process.stdout.write(`kept ${k.name}: ${k.why}\n`);
        for (const n of r.plan.notes) process.stdout.write(`note: ${n}\n`);
        if (r.plan.destroy.length === 0) process.stdout.write('nothing to prune\n');
        return r.failed.length ? EXIT.FAILED : EXIT.OK;
      }),
    );

  program
    .command('doctor')
    .description('find where environments, pristine snapshots, boot entries and the journal disagree; --fix repairs it')
    .option('--fix', 'repair what was found')
    .addHelpText('after', '\nExamples:\n  sysprime doctor\n  sysprime doctor --fix')
    .action(async (opts: { fix?: boolean }) =>
      withContext(globals(), async (ctx) => {
        const { problems, shared } = await findProblems(ctx);
        const fixed = opts.fix ? await repair(ctx) : [];
        // What --fix cannot repair (the state database's home, a boot pool) stays in the exit status after it.
        const left = problems.filter((p) => ADMIN_ONLY.has(p.kind));
        const repairable = problems.length - left.length;
        if (globals().json) printJson({ problems, fixed, shared });
        else {
          for (const line of atRiskLines(shared)) process.stdout.write(`shared-data: ${line}\n`);
          if (problems.length === 0) process.stdout.write('no problems found\n');
          for (const p of problems) process.stdout.write(`${p.kind}: ${p.what}\n`);
          for (const f of fixed) process.stdout.write(`fixed: ${f}\n`);
          if (repairable > 0 && !opts.fix) process.stdout.write(`run \`sysprime doctor --fix\` to repair${left.length > 0 ? ` what it can; ${left.map((p) => p.kind).join(' and ')} is the admin's to change` : ''}\n`);
          else if (left.length > 0) process.stdout.write(`doctor --fix cannot repair ${left.map((p) => p.kind).join(' or ')}: it is the admin's to change (see above)\n`);
        }
        return (problems.length > 0 && !opts.fix) || left.length > 0 ? EXIT.DIFFERENCES : EXIT.OK;
      }),
    );

  program
    .command('boot-hook <when>', { hidden: true })
    .description('called by sysprime-boot-start.service (start), sysprime-health.service (health) and sysprime-boot-complete.service (complete)')
    .action(async (when: string) =>
      withContext(globals(), async (ctx) => {
        if (when === 'health') {
          const r = await healthAfterBoot(ctx);
          await metricsOrWarn(ctx);
          for (const l of healthLines(r.report)) process.stdout.write(`${l}\n`);
          if (r.next.kind === 'stay') process.stdout.write(`${r.next.why}\n`);
          if (r.next.kind === 'fallback') process.stdout.write(`falling back to ${r.next.to}\n`);
          // A failed unit keeps boot-complete.target from being reached: nothing blesses this boot.
          return r.report.result === 'good' ? EXIT.OK : EXIT.FAILED;
        }
        const loader = bootloaderFor(ctx);
        const lines = when === 'start' ? ((await loader.bootStarted?.()) ?? []) : when === 'complete' ? ((await loader.bootComplete?.()) ?? []) : null;
        if (lines === null) {
          throw new SysprimeError('USAGE', `boot-hook takes "start", "health" or "complete", not "${when}"`);
        }
        if (when === 'complete') {
          lines.push(...(await reportGoodBoot(ctx)));
          await metricsOrWarn(ctx);
        }
        for (const l of lines) process.stdout.write(`${l}\n`);
      }),
    );

  program
    .command('metrics')
    .description('print this machine\'s state in the Prometheus text format, and write it to [metrics] textfile when set')
    .addHelpText('after', '\nExamples:\n  sysprime metrics\n  sysprime metrics > /var/lib/prometheus/node-exporter/sysprime.prom')
    .action(async () =>
      withContext(globals(), async (ctx) => {
        process.stdout.write(renderMetrics(await collectMetrics(ctx)));
        await writeMetrics(ctx);
      }),
    );

  program
    .command('health')
    .description('run the health checks of this boot ([health] required units, health.d scripts) and say what they find; changes nothing')
    .addHelpText('after', '\nExamples:\n  sysprime health\n  sysprime --json health\n\nExit status: 0 all required checks pass, 1 one fails.')
    .action(async () =>
      withConfig(globals(), async (config) => {
        const report = await runHealthChecks(config);
        if (globals().json) printJson(report);
        else for (const l of healthLines(report)) process.stdout.write(`${l}\n`);
        return report.result === 'good' ? EXIT.OK : EXIT.DIFFERENCES;
      }),
    );
}
