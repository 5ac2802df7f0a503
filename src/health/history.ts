/**
 * Health results kept in the history of environments (state/events.ts):
 * written after each boot's checks, read by status and by the fallback's
 * choice of an environment known good.
 */
import type { EventRow } from '../state/events.js';

export const HEALTH_EVENTS = { good: 'health-good', bad: 'health-bad', fallback: 'health-fallback' } as const;

/** The last health result of an environment, from its history: what status shows. */
export function lastHealth(events: readonly EventRow[]): { result: 'good' | 'bad'; at: string; reasons: string[] } | null {
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
  for (const e of events) {
    if (e.event === HEALTH_EVENTS.good) n = 0;
    else if (e.event === HEALTH_EVENTS.fallback) n++;
  }
  return n;
}

/** Whether an environment was activated since it last passed its checks (its trial, where a failure falls back). */
export function onTrial(events: readonly EventRow[]): boolean {
  let trial = false;
  for (const e of events) {
    if (e.event === 'activate') trial = true;
    else if (e.event === HEALTH_EVENTS.good) trial = false;
  }
  return trial;
}
