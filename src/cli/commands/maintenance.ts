/** Retention and repair: `prune`, `doctor`, and the boot hooks the shipped units call. */
import { stateHomeProblem } from '../../environments/state-home.js';
import { bootMountOf, zfsBootPoolProblem } from '../../environments/boot-kernels.js';
import type { Command } from 'commander';
import { pruneEnvironments } from '../../environments/prune.js';
import { currentOf, recoverEnvironmentVerbs } from '../../environments/lifecycle.js';
import { sharedPathsOrWarn } from '../../environments/shared.js';
import { bootDrift, bootloaderFor, syncBootEntries } from '../../environments/boot-entries.js';
import { acquireLock } from '../../state/lock.js';
import { interruptedOperations } from '../../state/journal.js';
import { recoverStaging } from '../../staging/pipeline.js';
import type { Updater } from '../../updaters/types.js';
import type { Config } from '../../config/schema.js';
import { EXIT, SysprimeError } from '../../errors.js';
import { formatBytes, printJson } from '../output.js';
import { wholeNumberOption, type Range } from '../../config/numbers.js';
import { KEYS } from '../../config/schema.js';
import { withContext, type GlobalOptions } from '../runner.js';
import { stagingUnfinished } from '../../staging/mark.js';

async function updaterFor(config: Config): Promise<Updater> {
  return (await import('../../updaters/registry.js')).createUpdater(config);
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
        const lock = acquireLock(ctx.db, 'pruning');
        try {
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
        } finally {
          lock.release();
        }
      }),
    );

  /** Problems doctor names that only the admin can change: --fix leaves them, and the exit status says so. */
  const ADMIN_ONLY = new Set(['state-not-shared', 'zfs-boot-pool']);

  program
    .command('doctor')
    .description('find where environments, pristine snapshots, boot entries and the journal disagree; --fix repairs it')
    .option('--fix', 'repair what was found')
    .addHelpText('after', '\nExamples:\n  sysprime doctor\n  sysprime doctor --fix')
    .action(async (opts: { fix?: boolean }) =>
      withContext(globals(), async (ctx) => {
        const problems: { kind: string; what: string }[] = [];
        const fixed: string[] = [];
        const envs = await ctx.backend.listEnvironments();
        for (const e of envs) {
          if (e.pristine === null) problems.push({ kind: 'pristine-missing', what: `"${e.name}" has no pristine snapshot of its generation ${e.generation}: its drift cannot be computed` });
          if (stagingUnfinished(e)) problems.push({ kind: 'staging-unfinished', what: `"${e.name}" is from a staging that did not finish` });
        }
        for (const op of interruptedOperations(ctx.db)) {
          problems.push({ kind: 'interrupted', what: `the ${op.kind} started at ${op.started} was interrupted (operation ${op.id})` });
        }
        problems.push(...(await bootDrift(ctx)));
        const stateProblem = await stateHomeProblem(ctx);
        if (stateProblem !== null) problems.push({ kind: 'state-not-shared', what: stateProblem });
        const current = currentOf(envs);
        const boot = current === undefined ? null : await bootMountOf(ctx, current.name);
        if (boot?.kind === 'zfs-boot-pool') problems.push({ kind: 'zfs-boot-pool', what: `${zfsBootPoolProblem(boot)}: staging is refused (docs/boot.md, "A ZFS boot pool")` });
        // Not a problem --fix can repair (moving users' data is the admin's call), so named apart and not in the exit status.
        const shared = current ? await sharedPathsOrWarn(ctx, current.name) : [];

        if (opts.fix) {
          const lock = acquireLock(ctx.db, 'repairing');
          try {
            for (const l of await recoverStaging(ctx, await updaterFor(ctx.config))) fixed.push(l);
            for (const l of await recoverEnvironmentVerbs(ctx)) fixed.push(l);
            for (const l of await ctx.backend.recover()) fixed.push(l);
            const r = await syncBootEntries(ctx);
            if (r.added.length + r.removed.length + r.updated.length > 0) {
              fixed.push(`boot entries rewritten: added ${r.added.join(', ') || 'none'}, removed ${r.removed.join(', ') || 'none'}, updated ${r.updated.join(', ') || 'none'}`);
            }
          } finally {
            lock.release();
          }
        }
        // What --fix cannot repair (the state database's home, a boot pool) stays in the exit status after it.
        const left = problems.filter((p) => ADMIN_ONLY.has(p.kind));
        const repairable = problems.length - left.length;
        if (globals().json) printJson({ problems, fixed, shared });
        else {
          for (const p of shared) if (p.where === 'at-risk') process.stdout.write(`shared-data: ${p.why}\n`);
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
