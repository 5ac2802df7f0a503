/** Retention and repair: `prune`, `doctor`, and the boot hooks the shipped units call. */
import type { Command } from 'commander';
import { pruneEnvironments } from '../../environments/prune.js';
import { ADMIN_ONLY, findProblems, repair } from '../../environments/doctor.js';
import { bootloaderFor } from '../../environments/boot-entries.js';
import { atRiskLines } from '../../environments/shared.js';
import { EXIT, SysprimeError } from '../../errors.js';
import { formatBytes, printJson } from '../output.js';
import { wholeNumberOption, type Range } from '../../config/numbers.js';
import { KEYS } from '../../config/schema.js';
import { withContext, type GlobalOptions } from '../runner.js';

export function registerMaintenance(program: Command, globals: () => GlobalOptions): void {
  program
    .command('prune')
    .description(
      'destroy old environments beyond [retention] keep and keep_days, and below the free-space floor (never the running, default, one-shot or a pinned one), and snapshots beyond keep_snapshots',
    )
    .option('--keep <n>', 'keep this many environments', wholeNumberOption(KEYS['retention.keep']!.kind as Range))
    .option('--keep-days <n>', 'keep environments younger than this many days too (0: off)', wholeNumberOption(KEYS['retention.keep_days']!.kind as Range))
    .option('--keep-snapshots <n>', 'keep this many snapshots of each environment (a pinned one keeps all)', wholeNumberOption(KEYS['retention.keep_snapshots']!.kind as Range))
    .option('-n, --dry-run', 'say what would go, destroy nothing')
    .addHelpText(
      'after',
      '\nExamples:\n  sysprime prune --dry-run\n  sysprime prune --keep 3\n  sysprime prune --keep 3 --keep-days 14   the 3 newest, and all made in the last 14 days\n  sysprime prune --keep-snapshots 2        two snapshots of each environment',
    )
    .action(async (opts: { keep?: number; keepDays?: number; keepSnapshots?: number; dryRun?: boolean }) =>
      withContext(globals(), async (ctx) => {
        const r = await pruneEnvironments(ctx, {
          ...(opts.keep !== undefined ? { keep: opts.keep } : {}),
          ...(opts.keepDays !== undefined ? { keepDays: opts.keepDays } : {}),
          ...(opts.keepSnapshots !== undefined ? { keepSnapshots: opts.keepSnapshots } : {}),
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
        for (const d of r.snapshots.destroy) {
          const id = `${d.environment}@${d.name}`;
          if (opts.dryRun || r.snapshotsDestroyed.includes(id)) process.stdout.write(`${verb} snapshot ${id}: ${d.why}\n`);
        }
        for (const f of r.failed) process.stdout.write(`could not destroy ${f.name}: ${f.error}\n`);
        for (const k of r.plan.keep) process.stdout.write(`kept ${k.name}: ${k.why}\n`);
        for (const k of r.snapshots.keep.filter((x) => x.reason === 'pinned')) process.stdout.write(`kept snapshot ${k.environment}@${k.name}: ${k.why}\n`);
        for (const n of r.plan.notes) process.stdout.write(`note: ${n}\n`);
        if (r.plan.destroy.length === 0 && r.snapshots.destroy.length === 0) process.stdout.write('nothing to prune\n');
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
    .description('called by sysprime-boot-start.service (start) and sysprime-boot-complete.service (complete)')
    .action(async (when: string) =>
      withContext(globals(), async (ctx) => {
        const loader = bootloaderFor(ctx);
        const lines = when === 'start' ? ((await loader.bootStarted?.()) ?? []) : when === 'complete' ? ((await loader.bootComplete?.()) ?? []) : null;
        if (lines === null) {
          throw new SysprimeError('USAGE', `boot-hook takes "start" or "complete", not "${when}"`);
        }
        for (const l of lines) process.stdout.write(`${l}\n`);
      }),
    );
}
