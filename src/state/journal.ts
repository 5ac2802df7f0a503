/**
 * Journaled multi-step operations. Each step is recorded before it runs and
 * after it finishes, so a crash (even kill -9) leaves a record saying how far
 * the operation got. Undo functions are looked up by the operation's kind and
 * the step's name, never captured in closures, so a later process can undo
 * what a dead one left: the same code path serves a failure now and a crash
 * found at the next start. Undo must therefore be idempotent and cope with a
 * step that only half ran.
 */
import { SysprimeError, messageOf } from '../errors.js';
import { log } from '../log.js';
import type { Db } from './db.js';
import { processAlive, processStart } from '../process/alive.js';
import { faultPoint } from '../process/fault.js';

export type Json = Record<string, unknown>;

/**
 * Thrown by a step to stop the operation on purpose (nothing to do): the
 * earlier steps are undone like on failure, but the operation ends as
 * 'undone' and runOperation returns instead of throwing.
 */
export class AbortOperation extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'AbortOperation';
  }
}

export type OperationResult = { completed: true; data: Json } | { completed: false; reason: string };

export interface StepSpec<C> {
  name: string;
  /** A short line for progress output. */
  title: string;
  run(ctx: C, params: Json, data: Json): Promise<Json | void>;
  /** Undo the step; `data` is what the step returned, or {} if it did not finish. */
  undo?(ctx: C, params: Json, data: Json): Promise<void>;
}

export interface OperationSpec<C> {
  kind: string;
  steps: readonly StepSpec<C>[];
}

export interface StepProgress {
  onStep?(title: string, index: number, total: number): void;
  onStepDone?(title: string, index: number, total: number, data: Json): void;
}

export interface OperationRow {
  id: number;
  kind: string;
  started: string;
  finished: string | null;
  status: 'running' | 'done' | 'failed' | 'undone';
  pid: number;
  params: string;
  error: string | null;
}

const now = () => new Date().toISOString();

/** The process that runs (or ran) an operation: its pid, and that process's start time kept in the params. */
function ownerAlive(op: Pick<OperationRow, 'pid' | 'params'>): boolean {
  return processAlive(op.pid, String((JSON.parse(op.params) as Json)['_start'] ?? ''));
}

function stepFault(kind: string, step: string, where: 'before' | 'after'): void {
  faultPoint(kind, `${step}:${where}`);
}

/** The step boundaries of an operation, as fault points (`<step>:before`, `<step>:after`). */
export function stepFaultPoints(spec: OperationSpec<unknown>): string[] {
  return spec.steps.flatMap((s) => [`${s.name}:before`, `${s.name}:after`]);
}

/**
 * Run all steps; on failure undo the finished (and the failed, half-run) steps
 * in reverse and throw a STEP_FAILED error naming the step. Returns the
 * merged data of all steps.
 */
export async function runOperation<C>(db: Db, spec: OperationSpec<C>, ctx: C, params: Json, progress: StepProgress = {}): Promise<OperationResult> {
  const opId = Number(
    db
      .prepare("INSERT INTO operations (kind, started, status, pid, params) VALUES (?, ?, 'running', ?, ?)")
      .run(spec.kind, now(), process.pid, JSON.stringify({ ...params, _start: processStart(process.pid) ?? '' })).lastInsertRowid,
  );
  const merged: Json = {};
  const total = spec.steps.length;
  for (let i = 0; i < total; i++) {
    const step = spec.steps[i]!;
    db.prepare("INSERT INTO steps (operation, seq, name, status, at) VALUES (?, ?, ?, 'started', ?)").run(opId, i, step.name, now());
    progress.onStep?.(step.title, i, total);
    stepFault(spec.kind, step.name, 'before');
    try {
      const data = (await step.run(ctx, params, merged)) ?? {};
      Object.assign(merged, data);
      db.prepare("UPDATE steps SET status = 'done', at = ?, data = ? WHERE operation = ? AND seq = ?").run(now(), JSON.stringify(data), opId, i);
      stepFault(spec.kind, step.name, 'after');
      progress.onStepDone?.(step.title, i, total, data);
    } catch (err) {
      db.prepare("UPDATE steps SET status = 'failed', at = ? WHERE operation = ? AND seq = ?").run(now(), opId, i);
      const undoErrors = await undoOperation(db, spec, ctx, opId);
      if (err instanceof AbortOperation && undoErrors.length === 0) {
        db.prepare("UPDATE operations SET status = 'undone', finished = ?, error = ? WHERE id = ?").run(now(), JSON.stringify({ step: step.name, message: err.reason, aborted: true }), opId);
        return { completed: false, reason: err.reason };
      }
      const message = messageOf(err);
      db.prepare("UPDATE operations SET status = 'failed', finished = ?, error = ? WHERE id = ?").run(
        now(),
        JSON.stringify({ step: step.name, message, undoErrors }),
        opId,
      );
      const hint =
        undoErrors.length > 0
          ? `undoing left problems: ${undoErrors.join('; ')}; run \`sysprime doctor\``
          : err instanceof SysprimeError
            ? err.hint
            : undefined;
      throw new SysprimeError('STEP_FAILED', `${spec.kind} failed at step "${step.title}": ${message}; earlier steps were undone`, {
        ...(hint ? { hint } : {}),
        ...(err instanceof SysprimeError && err.detail ? { detail: err.detail } : {}),
        cause: err,
      });
    }
  }
  db.prepare("UPDATE operations SET status = 'done', finished = ? WHERE id = ?").run(now(), opId);
  return { completed: true, data: merged };
}

/** Undo the steps of an operation in reverse; returns the problems met (and keeps going past them). */
async function undoOperation<C>(db: Db, spec: OperationSpec<C>, ctx: C, opId: number): Promise<string[]> {
  const row = db.prepare('SELECT params FROM operations WHERE id = ?').get(opId) as { params: string };
  const params = JSON.parse(row.params) as Json;
  const steps = db
    .prepare("SELECT seq, name, status, data FROM steps WHERE operation = ? AND status IN ('started', 'done', 'failed') ORDER BY seq DESC")
    .all(opId) as { seq: number; name: string; status: string; data: string }[];
  const merged: Json = {};
  for (const s of [...steps].reverse()) Object.assign(merged, JSON.parse(s.data) as Json);
  const problems: string[] = [];
  for (const s of steps) {
    const step = spec.steps.find((x) => x.name === s.name);
    if (!step?.undo) {
      db.prepare("UPDATE steps SET status = 'undone', at = ? WHERE operation = ? AND seq = ?").run(now(), opId, s.seq);
      continue;
    }
    try {
      await step.undo(ctx, params, merged);
      db.prepare("UPDATE steps SET status = 'undone', at = ? WHERE operation = ? AND seq = ?").run(now(), opId, s.seq);
    } catch (err) {
      const msg = `${step.title}: ${messageOf(err)}`;
      log.warn(`undo ${msg}`);
      problems.push(msg);
    }
  }
  return problems;
}

/**
 * Find operations of this kind left 'running' by a process that is gone and
 * undo them; and failed or undone ones whose undo did not finish (the pool
 * was full or read-only then), to try again now. Returns one line per
 * operation recovered.
 */
export async function recoverOperations<C>(db: Db, spec: OperationSpec<C>, ctx: C): Promise<string[]> {
  const rows = db.prepare("SELECT * FROM operations WHERE kind = ? AND status IN ('running', 'failed', 'undone') ORDER BY id").all(spec.kind) as OperationRow[];
  const lines: string[] = [];
  for (const op of rows) {
    if (op.status === 'running') {
      if (ownerAlive(op)) continue;
      const problems = await undoOperation(db, spec, ctx, op.id);
      db.prepare('UPDATE operations SET status = ?, finished = ?, error = ? WHERE id = ?').run(
        'undone',
        now(),
        JSON.stringify({ message: 'interrupted (process died); undone at the next run', undoErrors: problems }),
        op.id,
      );
      lines.push(`undid the ${op.kind} interrupted at ${op.started} (operation ${op.id})${problems.length ? `, with problems: ${problems.join('; ')}` : ''}`);
      continue;
    }
    const left = db.prepare("SELECT COUNT(*) AS n FROM steps WHERE operation = ? AND status IN ('started', 'done', 'failed')").get(op.id) as { n: number };
    if (left.n === 0) continue;
    const problems = await undoOperation(db, spec, ctx, op.id);
    const error = { ...(JSON.parse(op.error ?? '{}') as Json), undoErrors: problems, undoneLater: now() };
    db.prepare('UPDATE operations SET error = ? WHERE id = ?').run(JSON.stringify(error), op.id);
    lines.push(
      problems.length
        ? `could not yet finish undoing the ${op.kind} that ${op.status === 'failed' ? 'failed' : 'was interrupted'} at ${op.started} (operation ${op.id}): ${problems.join('; ')}`
        : `finished undoing the ${op.kind} that ${op.status === 'failed' ? 'failed' : 'was interrupted'} at ${op.started} (operation ${op.id})`,
    );
  }
  return lines;
}

/**
 * An operation that is not undone after a crash but run again: applying a
 * reintegration plan is idempotent, so the next run of the same command
 * finishes what a dead one began. It is still recorded, so that `doctor`
 * sees a crash in the middle, and the run that finishes it closes the old
 * record (`closeInterrupted`).
 */
export async function runRecorded<T>(db: Db, kind: string, params: Json, fn: () => Promise<T>): Promise<T> {
  const opId = Number(
    db
      .prepare("INSERT INTO operations (kind, started, status, pid, params) VALUES (?, ?, 'running', ?, ?)")
      .run(kind, now(), process.pid, JSON.stringify({ ...params, _start: processStart(process.pid) ?? '' })).lastInsertRowid,
  );
  try {
    const result = await fn();
    db.prepare("UPDATE operations SET status = 'done', finished = ? WHERE id = ?").run(now(), opId);
    return result;
  } catch (err) {
    db.prepare("UPDATE operations SET status = 'failed', finished = ?, error = ? WHERE id = ?").run(
      now(),
      JSON.stringify({ message: messageOf(err) }),
      opId,
    );
    throw err;
  }
}

/** What became of an interrupted operation whose record closeInterrupted closes: a line for the admin, and the record's own words. */
export interface Closed {
  line: string;
  record: string;
}

const RUN_AGAIN: Closed = { line: 'is finished by this run', record: 'run again and finished by a later run' };

/**
 * Close the records of operations of this kind that a dead process left
 * 'running' and that `matches` (same target): by default, the caller is
 * about to run them again; `outcome` says otherwise what the caller did
 * with what they left. Returns one line per record closed.
 */
export function closeInterrupted(db: Db, kind: string, matches: (params: Json) => boolean, outcome: Closed = RUN_AGAIN): string[] {
  const rows = db.prepare("SELECT * FROM operations WHERE kind = ? AND status = 'running' ORDER BY id").all(kind) as OperationRow[];
  const lines: string[] = [];
  for (const op of rows) {
    const params = JSON.parse(op.params) as Json;
    if (!matches(params) || ownerAlive(op)) continue;
    db.prepare("UPDATE operations SET status = 'failed', finished = ?, error = ? WHERE id = ?").run(
      now(),
      JSON.stringify({ message: `interrupted (process died); ${outcome.record}` }),
      op.id,
    );
    lines.push(`the ${op.kind} interrupted at ${op.started} (operation ${op.id}) ${outcome.line}`);
  }
  return lines;
}

export function lastOperation(db: Db, kind: string): OperationRow | undefined {
  return db.prepare('SELECT * FROM operations WHERE kind = ? ORDER BY id DESC LIMIT 1').get(kind) as OperationRow | undefined;
}

/** Operations (of one kind, or of any) left 'running' by a process that is gone. */
export function interruptedOperations(db: Db, kind?: string): OperationRow[] {
  const rows = (
    kind === undefined
      ? db.prepare("SELECT * FROM operations WHERE status = 'running' ORDER BY id").all()
      : db.prepare("SELECT * FROM operations WHERE kind = ? AND status = 'running' ORDER BY id").all(kind)
  ) as OperationRow[];
  return rows.filter((op) => !ownerAlive(op));
}

/**
 * Whether recoverOperations has work for this kind: an operation whose
 * process died while it ran, or one whose undo could not finish (steps not
 * yet undone).
 */
export function needsRecovery(db: Db, kind: string): boolean {
  if (interruptedOperations(db, kind).length > 0) return true;
  const unfinished = db
    .prepare(
      "SELECT 1 FROM operations o JOIN steps s ON s.operation = o.id WHERE o.kind = ? AND o.status IN ('failed', 'undone') AND s.status IN ('started', 'done', 'failed') LIMIT 1",
    )
    .get(kind);
  return unfinished !== undefined;
}
