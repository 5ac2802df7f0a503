/**
 * Maintenance windows as an admin writes them in `[reboot] windows`:
 * `"Sat,Sun 02:00-05:00"`, `"Mon-Fri 22:30-01:00"` (past midnight: the
 * window belongs to the day it starts on), `"03:00-04:00"` (every day).
 * Local time. Pure: parsed once when the configuration loads, so a window
 * that does not parse is a configuration error before anything runs.
 */

export interface Window {
  /** Days the window starts on, 0 = Sunday as Date.getDay() counts. */
  days: ReadonlySet<number>;
  /** Minutes after local midnight. */
  start: number;
  /** Length in minutes, 1 to 1440. */
  length: number;
  /** As written, for messages. */
  text: string;
}

/** The window, or a reason it does not parse. */
export function parseWindow(text: string): Window | string {
  const m = /^\s*(?:([A-Za-z,\- ]+?)\s+)?(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$/.exec(text);
  if (!m) return 'expected "[days] HH:MM-HH:MM", such as "Sat,Sun 02:00-05:00"';
  const start = minutes(m[2]!, m[3]!);
  const end = minutes(m[4]!, m[5]!);
  if (start === undefined || end === undefined) return 'hours go from 00 to 23 (24:00 for the end of a day), minutes from 00 to 59';
  if (start === 1440) return 'a window cannot start at 24:00';
  if (end === start) return 'the window starts and ends at the same time';
  const length = end > start ? end - start : end + 1440 - start;
  const days = m[1] === undefined ? new Set([0, 1, 2, 3, 4, 5, 6]) : parseDays(m[1]);
  if (typeof days === 'string') return days;
  return { days, start, length, text: text.trim() };
}

function minutes(h: string, mm: string): number | undefined {
  const hours = Number(h);
  const mins = Number(mm);
  if (hours > 24 || mins > 59 || (hours === 24 && mins !== 0)) return undefined;
  return hours * 60 + mins;
}

function parseDays(text: string): Set<number> | string {
  const days = new Set<number>();
  for (const part of text.split(',').map((p) => p.trim())) {
    const range = part.split('-').map((p) => dayIndex(p.trim()));
    if (range.length > 2 || range.some((i) => i < 0)) return `"${part}" is not a day (Mon, Tue, ... Sun, or a range such as Mon-Fri)`;
    const [from, to] = [range[0]!, range[range.length - 1]!];
    // Fri-Mon wraps over the week's end.
    for (let d = from; ; d = (d + 1) % 7) {
      days.add(d);
      if (d === to) break;
    }
  }
  return days;
}

const NAMES = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];

/** Mon or Monday, any case; -1 for anything else. */
function dayIndex(word: string): number {
  const w = word.toLowerCase();
  return NAMES.findIndex((n) => w === n || w === n.slice(0, 3));
}

/** The window `now` falls in, if any, with when it ends. */
export function openWindow(windows: readonly Window[], now: Date): { window: Window; ends: Date } | undefined {
  // A window that started yesterday can still be open (past midnight): look one day back.
  for (const back of [0, 1]) {
    const day = localMidnight(now, -back);
    for (const w of windows) {
      if (!w.days.has(day.getDay())) continue;
      const starts = atMinute(day, w.start);
      const ends = atMinute(day, w.start + w.length);
      if (starts <= now && now < ends) return { window: w, ends };
    }
  }
  return undefined;
}

/** When the next window opens after `now` (within eight days), if ever. */
export function nextWindow(windows: readonly Window[], now: Date): { window: Window; starts: Date } | undefined {
  let best: { window: Window; starts: Date } | undefined;
  for (let ahead = 0; ahead <= 8; ahead++) {
    const day = localMidnight(now, ahead);
    for (const w of windows) {
      if (!w.days.has(day.getDay())) continue;
      const starts = atMinute(day, w.start);
      if (starts > now && (best === undefined || starts < best.starts)) best = { window: w, starts };
    }
  }
  return best;
}

function localMidnight(now: Date, days: number): Date {
  return new Date(now.getFullYear(), now.getMonth(), now.getDate() + days);
}

/** Wall-clock minute of that local day (Date normalises an hour a DST change skips). */
function atMinute(day: Date, minute: number): Date {
  return new Date(day.getFullYear(), day.getMonth(), day.getDate(), 0, minute);
}
