/**
 * One staging (or other exclusive operation) at a time, shared by the CLI and
 * the daemon. The lock is a row in the state database, taken inside an
 * IMMEDIATE transaction so check-and-take is atomic; it names the owner's pid
 * and that process's start time, so a lock left by a dead process (or by a
 * reused pid) is recognised as stale and taken over. The library takes it
 * itself (stage, prune, doctor's repairs, status's recovery); taken again
 * by the process that holds it, it is held once and released by the
 * outermost caller.
 */
import { SysprimeError, isSysprimeError } from '../errors.js';
import { log } from '../log.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { processAlive, processStart } from '../process/alive.js';
import { othersMayHaveChanged } from '../process/run.js';
import type { Db } from './db.js';

export interface Lock {
  name: string;
  release(): void;
}

export interface LockOwner {
  pid: number;
  start: string;
  what: string;
  at: string;
}

export function acquireLock(db: Db, what: string, name = 'stage'): Lock {
  const me: LockOwner = { pid: process.pid, start: processStart(process.pid) ?? '', what, at: new Date().toISOString() };
  const take = db.transaction((): LockOwner | 'held' | null => {
    const row = db.prepare('SELECT pid, start, what, at FROM locks WHERE name = ?').get(name) as LockOwner | undefined;
    if (row && row.pid === me.pid && row.start === me.start) return 'held';
    if (row && processAlive(row.pid, row.start)) return row;
    db.prepare('INSERT OR REPLACE INTO locks (name, pid, start, what, at) VALUES (?, ?, ?, ?, ?)').run(name, me.pid, me.start, what, me.at);
    return null;
  });
  const holder = take.immediate();
  // Taken further up in this process (a staging that prunes, a verb called
  // by another): that caller releases it, not this one.
  if (holder === 'held') return { name, release: () => undefined };
  if (holder) {
    throw new SysprimeError('BUSY', `another sysprime (pid ${holder.pid}) is ${holder.what} since ${holder.at}`, {
      hint: 'wait for it to finish; `sysprime status` shows what it is doing',
    });
  }
  // Taken: what another sysprime did while it held the lock is to be read afresh, not from answers kept before.
  othersMayHaveChanged();
  return {
    name,
    release() {
      db.prepare('DELETE FROM locks WHERE name = ? AND pid = ? AND start = ?').run(name, me.pid, me.start);
    },
  };
}

export function lockHolder(db: Db, name = 'stage'): LockOwner | null {
  const row = db.prepare('SELECT pid, start, what, at FROM locks WHERE name = ?').get(name) as LockOwner | undefined;
  return row && processAlive(row.pid, row.start) ? row : null;
}

/** Run `fn` holding the lock, and release it after, whatever happens. */
export async function withLock<T>(db: Db, what: string, fn: () => Promise<T>, name = 'stage'): Promise<T> {
  const lock = acquireLock(db, what, name);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

/** The owner a lock still names although it is dead (its work may be half done), or null. */
export function staleLockOwner(db: Db, name: string): LockOwner | null {
  const row = db.prepare('SELECT pid, start, what, at FROM locks WHERE name = ?').get(name) as LockOwner | undefined;
  return row && !processAlive(row.pid, row.start) ? row : null;
}

/** The names of the locks starting with `prefix` (`shell:`) whose owner is dead: work left half done. */
export function staleLockNames(db: Db, prefix: string): string[] {
  const rows = db.prepare("SELECT name, pid, start FROM locks WHERE substr(name, 1, length(?)) = ? ORDER BY name").all(prefix, prefix) as { name: string; pid: number; start: string }[];
  return rows.filter((r) => !processAlive(r.pid, r.start)).map((r) => r.name);
}

/** `fn`, tried again every `pauseMs` while it fails because another sysprime holds the lock, for at most `waitMs`. */
export async function whileBusy<T>(fn: () => Promise<T>, opts: { waitMs: number; pauseMs?: number; now?: () => number }): Promise<T> {
  const now = opts.now ?? Date.now;
  const until = now() + opts.waitMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!isSysprimeError(err) || err.code !== 'BUSY' || now() >= until) throw err;
      log.info(`${err.message}; waiting for it`);
      await sleep(opts.pauseMs ?? 2000);
    }
  }
}
