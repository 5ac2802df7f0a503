/**
 * The daemon's schedule: one row for each job a running daemon has
 * scheduled, naming the daemon (pid and process start time), so `status`
 * can say when the next run is and tell a live daemon from a dead one.
 */
import type { Db } from './db.js';
import { processAlive } from '../process/alive.js';

export interface ScheduledJob {
  job: string;
  nextRun: string | null;
  lastRun: string | null;
  lastResult: string | null;
  pid: number;
  pidStart: string;
}

/** Enter a job (again: after the clock jumped), keeping what its last run did. */
export function scheduleJob(db: Db, job: { job: string; expression: string; nextRun: string | null; pid: number; pidStart: string }): void {
  db.prepare(
    `INSERT INTO schedule (job, expression, next_run, last_run, last_result, pid, pid_start) VALUES (@job, @expression, @next, NULL, NULL, @pid, @start)
     ON CONFLICT (job) DO UPDATE SET expression = @expression, next_run = @next, pid = @pid, pid_start = @start`,
  ).run({ job: job.job, expression: job.expression, next: job.nextRun, pid: job.pid, start: job.pidStart });
}

export function recordJobRun(db: Db, job: string, run: { lastRun: string; lastResult: string; nextRun: string | null }): void {
  db.prepare('UPDATE schedule SET last_run = ?, last_result = ?, next_run = ? WHERE job = ?').run(run.lastRun, run.lastResult, run.nextRun, job);
}

/** Take out the jobs of a daemon that stops. */
export function forgetSchedule(db: Db, pid: number): void {
  db.prepare('DELETE FROM schedule WHERE pid = ?').run(pid);
}

/** The jobs of daemons that are still running. */
export function liveSchedule(db: Db): ScheduledJob[] {
  const rows = db.prepare('SELECT job, next_run, last_run, last_result, pid, pid_start FROM schedule').all() as {
    job: string;
    next_run: string | null;
    last_run: string | null;
    last_result: string | null;
    pid: number;
    pid_start: string;
  }[];
  return rows
    .filter((r) => processAlive(r.pid, r.pid_start))
    .map((r) => ({ job: r.job, nextRun: r.next_run, lastRun: r.last_run, lastResult: r.last_result, pid: r.pid, pidStart: r.pid_start }));
}
