/**
 * `sysprime daemon`: runs staging (and the other scheduled jobs) on the
 * configured cron schedule. Jobs run one at a time, in the order they fall
 * due; a failing run is logged and tried again at its next time. SIGTERM
 * stops scheduling and lets the running job finish; a second SIGTERM (or
 * SIGINT) exits at once, and the journal undoes the interrupted step at the
 * next start.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { Context } from '../context.js';
import { openContext } from '../context.js';
import { log } from '../log.js';
import { processStart } from '../process/alive.js';
import { forgetSchedule, recordJobRun, scheduleJob } from '../state/schedule.js';
import { SysprimeError, messageOf } from '../errors.js';

export interface Job {
  name: string;
  expression: string;
  /** Seconds of random delay before each run. */
  randomDelay: number;
  /** What the run did: one line, and what went wrong although the run finished. */
  run(ctx: Context): Promise<JobResult>;
}

/**
 * A run that finished can still have lost something (a staging whose
 * reintegration failed for some paths): those lines go to the log at error
 * priority, not hidden in an info line.
 */
export type JobResult = string | { summary: string; errors: string[] };

export interface DaemonOptions {
  config?: string | undefined;
  /** Build the jobs once the configuration is known. */
  jobs(ctx: Context): Job[];
  /** Runs at start, before scheduling: recover interrupted operations. */
  recover?(ctx: Context): Promise<string[]>;
  /** For tests: stop after this many runs in total. */
  maxRuns?: number;
  /** After each run, whatever its result (the metrics file); a failure here is logged, never the run's. */
  afterRun?(ctx: Context): Promise<void>;
}

export async function runDaemon(opts: DaemonOptions): Promise<number> {
  const ctx = await openContext({ config: opts.config });
  const pidStart = processStart(process.pid) ?? '';
  log.info(`sysprime daemon started (pid ${process.pid}) on ${ctx.backend.describe()}, configuration ${ctx.config.source}`);
  if (opts.recover) {
    for (const line of await opts.recover(ctx)) log.warn(`recovered: ${line}`);
  }

  const jobs = opts.jobs(ctx).filter((j) => j.expression !== 'off');
  if (jobs.length === 0) {
    await ctx.close();
    throw new SysprimeError('CONFIG', 'every job in [schedule] is "off": the daemon has nothing to do', { hint: 'set [schedule] stage in sysprime.toml' });
  }

  let queue: Promise<void> = Promise.resolve();
  let stopping = false;
  let runs = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const tasks: ScheduledTask[] = [];

  let watch: NodeJS.Timeout | undefined;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    if (watch) clearInterval(watch);
    for (const t of tasks) void t.stop();
    void queue.then(() => resolveDone());
  };

  for (const job of jobs) {
    const task = cron.schedule(
      job.expression,
      () => {
        if (stopping) return;
        queue = queue.then(async () => {
          if (stopping) return;
          if (job.randomDelay > 0) await sleep(Math.random() * job.randomDelay * 1000, () => stopping);
          if (stopping) return;
          const started = new Date().toISOString();
          let result: string;
          try {
            const r = await job.run(ctx);
            if (typeof r === 'string' || r.errors.length === 0) {
              result = typeof r === 'string' ? r : r.summary;
              log.info(`${job.name}: ${result}`);
            } else {
              result = r.summary;
              log.error(`${job.name}: ${result}`);
              for (const line of r.errors) log.error(`${job.name}: ${line}`);
            }
          } catch (err) {
            result = `failed: ${messageOf(err)}`;
            log.error(`${job.name} ${result}`);
          }
          recordJobRun(ctx.db, job.name, { lastRun: started, lastResult: result, nextRun: task.getNextRun()?.toISOString() ?? null });
          await opts.afterRun?.(ctx).catch((err: unknown) => log.warn(`after ${job.name}: ${messageOf(err)}`));
          runs++;
          if (opts.maxRuns !== undefined && runs >= opts.maxRuns) stop();
        });
      },
      { name: job.name, noOverlap: true },
    );
    tasks.push(task);
    scheduleJob(ctx.db, { job: job.name, expression: job.expression, nextRun: task.getNextRun()?.toISOString() ?? null, pid: process.pid, pidStart });
    log.info(`${job.name}: scheduled "${job.expression}", next at ${task.getNextRun()?.toISOString() ?? 'never'}`);
  }

  watch = watchClock((jump) => {
    if (stopping) return;
    log.warn(`the clock jumped ${jump > 0 ? 'forward' : 'back'} by ${Math.round(Math.abs(jump) / 1000)} s: planning the schedule again from the new time`);
    tasks.forEach((task, i) => {
      void task.stop();
      void task.start();
      const job = jobs[i]!;
      scheduleJob(ctx.db, { job: job.name, expression: job.expression, nextRun: task.getNextRun()?.toISOString() ?? null, pid: process.pid, pidStart });
    });
  });

  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1 || sig === 'SIGINT') {
      log.warn(`${sig} again: exiting now; the interrupted step is undone at the next start`);
      process.exit(143);
    }
    log.info(`${sig}: finishing the running job, then exiting`);
    stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  await done;
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  forgetSchedule(ctx.db, process.pid);
  await ctx.close();
  log.info('sysprime daemon stopped');
  return 0;
}

/** A jump of the wall clock against the monotonic one larger than this is a jump, not drift or a slow tick. */
const JUMP_MS = 5000;

/** Call `onJump` with the size of each jump of the wall clock (ms, negative: back). */
function watchClock(onJump: (jump: number) => void, everyMs = 1000): NodeJS.Timeout {
  let wall = Date.now();
  let mono = performance.now();
  const timer = setInterval(() => {
    const w = Date.now();
    const m = performance.now();
    const jump = w - wall - (m - mono);
    wall = w;
    mono = m;
    if (Math.abs(jump) > JUMP_MS) onJump(jump);
  }, everyMs);
  timer.unref();
  return timer;
}

/** Sleep `ms` on the monotonic clock (a jump of the wall clock neither stretches nor cuts it). */
function sleep(ms: number, cancelled: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const started = performance.now();
    const tick = () => {
      const elapsed = performance.now() - started;
      if (cancelled() || elapsed >= ms) resolve();
      else setTimeout(tick, Math.min(1000, ms - elapsed));
    };
    tick();
  });
}
