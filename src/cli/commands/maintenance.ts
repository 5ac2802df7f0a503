/** Retention and repair: `prune`, `doctor`, the boot hooks the shipped units call, and the apt hook the shipped apt configuration calls. */
import type { Command } from 'commander';
import { pruneEnvironments } from '../../environments/prune.js';
import { ADMIN_ONLY, findProblems, repair } from '../../environments/doctor.js';
import { bootloaderFor, bootStartHook } from '../../environments/boot-entries.js';
import { atRiskLines } from '../../environments/shared.js';
import { EXIT, SysprimeError } from '../../errors.js';
import { formatBytes, printJson } from '../output.js';
import { wholeNumberOption, type Range } from '../../config/numbers.js';
import { KEYS } from '../../config/schema.js';
import { applyGlobals, reportError, requireRoot, withContext, type GlobalOptions } from '../runner.js';
import { openContext, type Context } from '../../context.js';
import { loadConfig } from '../../config/load.js';
import { ancestorsOf, rootIsInits } from '../../process/ancestors.js';
import { chrootSkip, environmentBeforePackages, packageOperation, parseHookInput } from '../../environments/apt-hook.js';
import { autoOf } from '../../environments/annotations.js';

export function registerMaintenance(program: Command, globals: () => GlobalOptions): void {
  program
    .command('prune')
    .description(
      'destroy old environments beyond [retention] keep, keep_auto and keep_days, and below the free-space floor (never the running, default, one-shot or a pinned one)',
    )
    .option('--keep <n>', 'keep this many environments', wholeNumberOption(KEYS['retention.keep']!.kind as Range))
    .option('--keep-days <n>', 'keep environments younger than this many days too (0: off)', wholeNumberOption(KEYS['retention.keep_days']!.kind as Range))
    .option('--keep-auto <n>', 'keep this many of the environments the apt hook made', wholeNumberOption(KEYS['retention.keep_auto']!.kind as Range))
    .option('-n, --dry-run', 'say what would go, destroy nothing')
    .addHelpText('after', '\nExamples:\n  sysprime prune --dry-run\n  sysprime prune --keep 3\n  sysprime prune --keep 3 --keep-days 14   the 3 newest, and all made in the last 14 days')
    .action(async (opts: { keep?: number; keepDays?: number; keepAuto?: number; dryRun?: boolean }) =>
      withContext(globals(), async (ctx) => {
        const r = await pruneEnvironments(ctx, {
          ...(opts.keep !== undefined ? { keep: opts.keep } : {}),
          ...(opts.keepDays !== undefined ? { keepDays: opts.keepDays } : {}),
          ...(opts.keepAuto !== undefined ? { keepAuto: opts.keepAuto } : {}),
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
    .description('called by sysprime-boot-start.service (start) and sysprime-boot-complete.service (complete)')
    .action(async (when: string) =>
      withContext(globals(), async (ctx) => {
        if (when !== 'start' && when !== 'complete') {
          throw new SysprimeError('USAGE', `boot-hook takes "start" or "complete", not "${when}"`);
        }
        const lines = when === 'start' ? await bootStartHook(ctx) : ((await (await bootloaderFor(ctx)).bootComplete?.()) ?? []);
        for (const l of lines) process.stdout.write(`${l}\n`);
      }),
    );

  program
    .command('apt-hook', { hidden: true })
    .description('called by apt before it runs dpkg (/etc/apt/apt.conf.d/80sysprime): an environment of the running system, named after the command')
    .action(async () => aptHook(globals()));
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  // Run by hand at a terminal, there is no list to wait for.
  if ((stream as { isTTY?: boolean }).isTTY === true) return '';
  let text = '';
  for await (const chunk of stream) text += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8');
  return text;
}

/**
 * The apt hook's command: whatever happens, exit 0 and let apt go on (a
 * failing Pre-Install-Pkgs command makes apt give up before dpkg runs). It
 * waits at most [apt_hook] timeout seconds; then it says so and leaves,
 * and whatever it had started is finished or undone by the next sysprime
 * that takes the lock.
 */
async function aptHook(g: GlobalOptions): Promise<void> {
  // The hook of an apt in a chroot (staging's in a clone, an installer's): not the running system's operation.
  const chroot = chrootSkip(process.env, rootIsInits());
  if (chroot !== null) {
    if (chroot !== '') process.stderr.write(`sysprime: ${chroot}\n`);
    return;
  }
  let ctx: Context | undefined;
  const goOn = '  apt goes on without an environment before this operation\n';
  try {
    applyGlobals(g);
    // All of apt's list first: apt writes it before it waits for the hook.
    const input = parseHookInput(await readAll(process.stdin));
    const config = loadConfig(g.config);
    if (!config.aptHook.enabled) return;
    const timer = setTimeout(() => {
      process.stderr.write(`sysprime: the environment before this package operation takes longer than ${config.aptHook.timeout} s ([apt_hook] timeout)\n${goOn}`);
      process.exit(0);
    }, config.aptHook.timeout * 1000);
    timer.unref();
    requireRoot();
    ctx = await openContext({ config: g.config });
    const r = await environmentBeforePackages(ctx, input, packageOperation(ancestorsOf()));
    if ('made' in r) {
      if (g.json) printJson({ made: r.made.name, description: r.operation, auto: autoOf(r.made) });
      else if (g.quiet !== true) process.stdout.write(`sysprime: environment "${r.made.name}" holds the system as it was before: ${r.operation}\n`);
    } else if (r.skipped === 'busy') {
      process.stderr.write(`sysprime: no environment before this package operation: ${r.why}\n${goOn}`);
    }
  } catch (err) {
    reportError(err, g.verbose === true);
    process.stderr.write(goOn);
  } finally {
    process.exitCode = 0;
    await ctx?.close().catch(() => undefined);
  }
}
