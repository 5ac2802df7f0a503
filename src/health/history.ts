/**
 * Health results kept in the history of environments (state/events.ts):
 * written after each boot's checks, read by status and by the fallback's
 * choice of an environment known good.
 */
import type { Context } from '../context.js';
import { eventsOf, type EventRow } from '../state/events.js';

export const HEALTH_EVENTS = { good: 'health-good', bad: 'health-bad', fallback: 'health-fallback' } as const;

/** Events that begin or end an environment of a name: the history is kept by name, and a name is used again (`next`). */
const BIRTHS_AND_ENDS: ReadonlySet<string> = new Set(['init', 'create', 'staged', 'import', 'destroy', 'prune']);

/** The history of the environment that has the name now: what came after the last time an environment of that name was made or destroyed. */
export function sinceBirth(events: readonly EventRow[]): readonly EventRow[] {
  for (let i = events.length - 1; i >= 0; i--) if (BIRTHS_AND_ENDS.has(events[i]!.event)) return events.slice(i);
  return events;
}

/** The last health result of an environment, from its history: what status shows. */
export function lastHealth(all: readonly EventRow[]): { result: 'good' | 'bad'; at: string; reasons: string[] } | null {
  const events = sinceBirth(all);
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    if (e.event === HEALTH_EVENTS.good || e.event === HEALTH_EVENTS.bad) {
      return { result: e.event === HEALTH_EVENTS.good ? 'good' : 'bad', at: e.at, reasons: Array.isArray(e.detail['failed']) ? (e.detail['failed'] as string[]) : [] };
    }
  }
  return null;
}


/**
 * The fallbacks made away from an environment since it last passed its
 * checks: what `[health] max_reboots` bounds. A boot that passes starts the
 * count again, so an environment that failed once months ago (and was
 * fixed) still gets its fallback when it fails again.
 */
export function fallbacksSinceGood(events: readonly EventRow[]): number {
  let n = 0;
  for (const e of sinceBirth(events)) {
    if (e.event === HEALTH_EVENTS.good) n = 0;
    else if (e.event === HEALTH_EVENTS.fallback) n++;
  }
  return n;
}

/** Whether an environment was activated since it last passed its checks (its trial, where a failure falls back). */
export function onTrial(events: readonly EventRow[]): boolean {
  let trial = false;
  for (const e of sinceBirth(events)) {
    if (e.event === 'activate') trial = true;
    else if (e.event === HEALTH_EVENTS.good) trial = false;
  }
  return trial;
}

/**
 * The result of an environment's last health checks since it was made
 * (null: none ran), as `list` shows it. Here, not beside `status`: `list`
 * would load all of staging with it.
 */
export function healthOf(ctx: Context, name: string): 'good' | 'bad' | null {
  return lastHealth(eventsOf(ctx.db, name))?.result ?? null;
}
