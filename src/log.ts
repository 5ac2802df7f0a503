/**
 * Logging for a system tool: plain lines on stderr, with sd-daemon priority
 * prefixes when running under systemd (the journal reads them), so one code
 * path serves a terminal and the daemon.
 */

export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };
const PRIORITY: Record<Level, number> = { debug: 7, info: 6, warn: 4, error: 3 };

let threshold: Level = 'info';
const underJournal = process.env['JOURNAL_STREAM'] !== undefined && process.env['INVOCATION_ID'] !== undefined;

export function setLevel(level: Level): void {
  threshold = level;
}

export function enabled(level: Level): boolean {
  return ORDER[level] >= ORDER[threshold];
}

function emit(level: Level, msg: string): void {
  if (!enabled(level)) return;
  const prefix = underJournal ? `<${PRIORITY[level]}>` : level === 'debug' ? 'debug: ' : level === 'warn' ? 'warning: ' : '';
  process.stderr.write(`${prefix}${msg}\n`);
}

export const log = {
  debug: (msg: string) => emit('debug', msg),
  info: (msg: string) => emit('info', msg),
  warn: (msg: string) => emit('warn', msg),
  error: (msg: string) => emit('error', msg),
};
