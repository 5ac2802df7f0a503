/** Retention and repair: `prune`, `doctor`, `health`, the boot hooks the shipped units call, and the apt hook the shipped apt configuration calls. */
import type { Command } from 'commander';
import { pruneEnvironments } from '../../environments/prune.js';
import { ADMIN_ONLY, findProblems, repair } from '../../environments/doctor.js';
import { bootloaderFor, bootStartHook, settleAfterBoot } from '../../environments/boot-entries.js';
import { atRiskLines } from '../../environments/shared.js';
import { EXIT, SysprimeError, messageOf } from '../../errors.js';
import { formatBytes, printJson } from '../output.js';
import { wholeNumberOption, type Range } from '../../config/numbers.js';
import { KEYS } from '../../config/schema.js';
import { applyGlobals, reportError, requireRoot, withConfig, withContext, type GlobalOptions } from '../runner.js';
import { openContext, type Context } from '../../context.js';
import { loadConfig } from '../../config/load.js';
import { ancestorsOf, rootIsInits } from '../../process/ancestors.js';
import { chrootSkip, environmentBeforePackages, packageOperation, parseHookInput, type HookInput } from '../../environments/apt-hook.js';
import { startBackground } from '../../process/run.js';
import { autoOf } from '../../environments/annotations.js';
import { runHealthChecks, type HealthReport } from '../../health/checks.js';
import { healthAfterBoot, reportGoodBoot } from '../../health/after-boot.js';
import { collectMetrics, renderMetrics, writeMetrics } from '../../metrics/textfile.js';

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
      'destroy old environments beyond [retention] keep, keep_auto and keep_days, and below the free-space floor (never the running, default, one-shot or a pinned one), and snapshots beyond keep_snapshots',
    )
    .option('--keep <n>', 'keep this many environments', wholeNumberOption(KEYS['retention.keep']!.kind as Range))
    .option('--keep-days <n>', 'keep environments younger than this many days too (0: off)', wholeNumberOption(KEYS['retention.keep_days']!.kind as Range))
    .option('--keep-auto <n>', 'keep this many of the environments the apt hook made', wholeNumberOption(KEYS['retention.keep_auto']!.kind as Range))
    .option('--keep-snapshots <n>', 'keep this many snapshots of each environment (a pinned one keeps all)', wholeNumberOption(KEYS['retention.keep_snapshots']!.kind as Range))
    .option('-n, --dry-run', 'say what would go, destroy nothing')
    .addHelpText(
      'after',
      '\nExamples:\n  sysprime prune --dry-run\n  sysprime prune --keep 3\n  sysprime prune --keep 3 --keep-days 14   the 3 newest, and all made in the last 14 days\n  sysprime prune --keep-snapshots 2        two snapshots of each environment',
    )
    .action(async (opts: { keep?: number; keepDays?: number; keepAuto?: number; keepSnapshots?: number; dryRun?: boolean }) =>
      withContext(globals(), async (ctx) => {
        const r = await pruneEnvironments(ctx, {
          ...(opts.keep !== undefined ? { keep: opts.keep } : {}),
          ...(opts.keepDays !== undefined ? { keepDays: opts.keepDays } : {}),
          ...(opts.keepAuto !== undefined ? { keepAuto: opts.keepAuto } : {}),
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
    .option('--claim-state', "make this configuration's filesystem or pool the owner of [state] dir (after a restore onto a new filesystem, `zpool reguid`)")
    .addHelpText('after', '\nExamples:\n  sysprime doctor\n  sysprime doctor --fix\n  sysprime doctor --claim-state   the root was restored onto a new filesystem: keep its history')
    .action(async (opts: { fix?: boolean; claimState?: boolean }) =>
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
      }, { claimState: opts.claimState === true }),
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
        if (when !== 'start' && when !== 'complete') {
          throw new SysprimeError('USAGE', `boot-hook takes "start", "health" or "complete", not "${when}"`);
        }
        const lines = when === 'start' ? await bootStartHook(ctx) : ((await (await bootloaderFor(ctx)).bootComplete?.()) ?? []);
        if (when === 'complete') {
          lines.push(...(await settleAfterBoot(ctx)));
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

  program
    .command('apt-hook', { hidden: true })
    .description('called by apt before it runs dpkg (/etc/apt/apt.conf.d/80sysprime): an environment of the running system, named after the command')
    .option('--worker', 'the part that makes the environment, started by the hook itself (it may outlive the hook)')
    .action(async (opts: { worker?: boolean }) => (opts.worker === true ? aptHookWorker(globals()) : aptHook(globals())));
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  // Run by hand at a terminal, there is no list to wait for.
  if ((stream as { isTTY?: boolean }).isTTY === true) return '';
  let text = '';
  for await (const chunk of stream) text += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8');
  return text;
}

/** What the hook hands its worker, and what the worker answers. */
interface HookJob {
  input: HookInput;
  argv: string[] | null;
  now: string;
}
type WorkerAnswer = { made: string; description: string; auto: string | null } | { skipped: string; why: string };

/**
 * The apt hook's command: whatever happens, exit 0 and let apt go on (a
 * failing Pre-Install-Pkgs command makes apt give up before dpkg runs). The
 * environment is made by a worker in a session of its own, which this
 * process waits for at most [apt_hook] timeout seconds; then it says so and
 * leaves, and apt goes on. The worker, told so by the end of this process,
 * stops at once while it has changed nothing, gives up before the copy if
 * that has not begun (a copy taken while dpkg runs would not be the system
 * as it was before), and finishes one that has. Whatever a worker killed
 * halfway left (a temporary clone, its copy snapshot) is undone by the next
 * sysprime that takes the lock and makes an environment, or by prune and
 * doctor --fix.
 */
async function aptHook(g: GlobalOptions): Promise<void> {
  const goOn = '  apt goes on without an environment before this operation\n';
  try {
    // All of apt's list first: apt writes it before it waits for the hook, and a long one fills the pipe.
    const text = await readAll(process.stdin);
    // The hook of an apt in a chroot (staging's in a clone, an installer's): not the running system's operation.
    const chroot = chrootSkip(process.env, rootIsInits());
    if (chroot !== null) {
      if (chroot !== '') process.stderr.write(`sysprime: ${chroot}\n`);
      return;
    }
    applyGlobals(g);
    const input = parseHookInput(text);
    const config = loadConfig(g.config);
    if (!config.aptHook.enabled || input.actions.length === 0) return;
    requireRoot();
    const job: HookJob = { input, argv: packageOperation(ancestorsOf()), now: new Date().toISOString() };
    const answer = await inWorker(g, job, config.aptHook.timeout * 1000);
    if (answer === 'late') {
      process.stderr.write(`sysprime: the environment before this package operation takes longer than ${config.aptHook.timeout} s ([apt_hook] timeout)\n${goOn}`);
      // Nothing of this process may keep apt waiting; the end of its channel tells the worker.
      process.exit(0);
    } else if (answer === null) {
      process.stderr.write(goOn);
    } else if ('made' in answer) {
      if (g.json) printJson(answer);
      else if (g.quiet !== true) process.stdout.write(`sysprime: environment "${answer.made}" holds the system as it was before: ${answer.description}\n`);
    } else if (answer.skipped === 'busy') {
      process.stderr.write(`sysprime: no environment before this package operation: ${answer.why}\n${goOn}`);
    }
  } catch (err) {
    reportError(err, g.verbose === true);
    process.stderr.write(goOn);
  } finally {
    process.exitCode = 0;
  }
}

/**
 * Run the job in a worker (`apt-hook --worker`), its output passed on as it
 * comes; its answer, null when it ended without one (it said why on
 * stderr, or was killed), or `late` after `timeoutMs`, when this process
 * stops waiting and leaves the worker to itself.
 */
async function inWorker(g: GlobalOptions, job: HookJob, timeoutMs: number): Promise<WorkerAnswer | null | 'late'> {
  const globalArgs = [...(g.config !== undefined ? ['--config', g.config] : []), ...(g.verbose ? ['-v'] : []), ...(g.quiet ? ['-q'] : [])];
  const worker = startBackground(process.execPath, [...process.execArgv, process.argv[1]!, ...globalArgs, 'apt-hook', '--worker']);
  worker.stdout?.on('data', (d: Buffer) => process.stdout.write(d));
  worker.stderr?.on('data', (d: Buffer) => process.stderr.write(d));
  return new Promise((resolve) => {
    let answer: WorkerAnswer | null = null;
    const timer = setTimeout(() => {
      // Leave it: the channel closes as this process ends, which tells the worker.
      worker.stdout?.destroy();
      worker.stderr?.destroy();
      worker.unref();
      (worker as { channel?: { unref(): void } }).channel?.unref();
      resolve('late');
    }, timeoutMs);
    worker.on('message', (m: WorkerAnswer) => (answer = m));
    worker.once('error', () => {
      clearTimeout(timer);
      resolve(null);
    });
    // 'close': its output is all passed on.
    worker.once('close', () => {
      clearTimeout(timer);
      resolve(answer);
    });
    worker.send(job);
  });
}

/** The worker of the apt hook: makes the environment, and answers the hook while it still listens. */
async function aptHookWorker(g: GlobalOptions): Promise<void> {
  let ctx: Context | undefined;
  let changing = false;
  const late = new AbortController();
  // The hook is gone (its time ran out, or it was stopped): stop here while nothing is changed, else stop before the
  // copy or finish it. Its output goes nowhere from now on.
  process.once('disconnect', () => {
    if (!changing) process.exit(0);
    late.abort();
  });
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
  try {
    applyGlobals(g);
    const job = await new Promise<HookJob>((resolve) => process.once('message', (m) => resolve(m as HookJob)));
    requireRoot();
    ctx = await openContext({ config: g.config });
    const r = await environmentBeforePackages(ctx, job.input, job.argv, new Date(job.now), {
      signal: late.signal,
      beforeChanges: () => (changing = true),
    });
    const answer: WorkerAnswer = 'made' in r ? { made: r.made.name, description: r.operation, auto: autoOf(r.made) } : { skipped: r.skipped, why: r.why };
    // Sent whole before this process ends: a channel closed with a write pending drops it.
    if (process.connected) await new Promise<void>((resolve) => process.send?.(answer, undefined, undefined, () => resolve()) ?? resolve());
  } catch (err) {
    if (process.connected) reportError(err, g.verbose === true);
  } finally {
    await ctx?.close().catch(() => undefined);
    // The channel's listener would keep this process alive.
    process.exit(0);
  }
}
