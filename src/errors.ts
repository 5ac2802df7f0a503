/**
 * One error family for everything sysprime reports to a user. Each error has a
 * stable code (for scripts and tests), a message saying what failed and why,
 * and a hint saying what to do. The CLI maps codes to exit statuses in one place.
 */

export type ErrorCode =
  | 'USAGE' // bad arguments or options
  | 'INVALID_NAME' // an environment name that cannot be used
  | 'CONFIG' // configuration file or value is wrong
  | 'NOT_ROOT' // must run as root
  | 'NOT_FOUND' // environment, pool, file ... does not exist
  | 'EXISTS' // something with that name already exists
  | 'REFUSED' // a safety rule forbids the operation
  | 'BUSY' // another operation holds the lock
  | 'COMMAND_FAILED' // an external command failed
  | 'COMMAND_MISSING' // an external command is not installed
  | 'TIMEOUT' // an external command took too long
  | 'BACKEND' // the filesystem does not look like what sysprime expects
  | 'STATE' // the state database is unusable
  | 'MANIFEST' // a manifest cannot be parsed
  | 'RULES' // a rules file cannot be parsed
  | 'IO' // a filesystem operation failed
  | 'STEP_FAILED' // a step of a journaled operation failed (cause attached)
  | 'NO_SPACE' // not enough room
  | 'TRY_LATER' // not now: the fleet's reboot slots are full, or the generation is halted
  | 'UNREACHABLE'; // a service sysprime needs (etcd) did not answer

export class SysprimeError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  /** Extra lines shown with -v (failed command, its stderr). */
  readonly detail: string | undefined;

  constructor(code: ErrorCode, message: string, opts: { hint?: string; detail?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'SysprimeError';
    this.code = code;
    this.hint = opts.hint;
    this.detail = opts.detail;
  }
}

export function isSysprimeError(err: unknown, code?: ErrorCode): err is SysprimeError {
  return err instanceof SysprimeError && (code === undefined || err.code === code);
}

/** Exit statuses, documented in sysprime(8). 1 is kept for "differences found". */
export const EXIT = {
  OK: 0,
  DIFFERENCES: 1,
  USAGE: 2,
  FAILED: 3,
  NOT_FOUND: 4,
  REFUSED: 5,
  BUSY: 6,
  /** sysexits' EX_TEMPFAIL: no reboot slot now, try again later. */
  TRY_LATER: 75,
} as const;

export function exitCodeFor(err: unknown): number {
  if (!(err instanceof SysprimeError)) return EXIT.FAILED;
  switch (err.code) {
    case 'USAGE':
    case 'INVALID_NAME':
    case 'CONFIG':
    case 'MANIFEST':
    case 'RULES':
      return EXIT.USAGE;
    case 'NOT_FOUND':
      return EXIT.NOT_FOUND;
    case 'REFUSED':
    case 'NOT_ROOT':
    case 'EXISTS':
      return EXIT.REFUSED;
    case 'BUSY':
      return EXIT.BUSY;
    case 'TRY_LATER':
      return EXIT.TRY_LATER;
    default:
      return EXIT.FAILED;
  }
}

export function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof (err as { code: unknown }).code === 'string'
    ? (err as { code: string }).code
    : undefined;
}

/** The message of anything thrown, for a line a person reads. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const ERRNO_HINTS: Record<string, string> = {
  EACCES: 'check the permissions of the path',
  EPERM: 'check the permissions and attributes (chattr) of the path',
  ENOSPC: 'free some space on that filesystem',
  EDQUOT: 'free some space or raise the quota',
  EROFS: 'the filesystem is mounted read-only; remount it read-write or choose another path',
  ENOENT: 'check that the path and its directories exist',
  ENOTDIR: 'a component of the path is not a directory',
  EISDIR: 'name a file, not a directory',
  EEXIST: 'remove it or choose another path',
  EPIPE: 'the reader went away',
  EIO: 'the device reported an error; check the kernel log',
};

/**
 * An operating-system error (it has an errno code and names a system call)
 * as an I/O failure of one line naming the path and the errno, instead of
 * a bug report; undefined for anything else. `path` overrides the one the
 * error carries (a temporary name the user never gave).
 */
export function ioFailure(err: unknown, path?: string): SysprimeError | undefined {
  if (err instanceof SysprimeError || !(err instanceof Error)) return undefined;
  const e = err as NodeJS.ErrnoException & { dest?: string };
  if (typeof e.code !== 'string' || !/^E[A-Z0-9]+$/.test(e.code) || typeof e.syscall !== 'string') return undefined;
  // Node's message is "CODE: description, syscall 'path'": keep the description.
  const description = /^E[A-Z0-9]+: ([^,]+)/.exec(e.message)?.[1] ?? e.code;
  const where = path ?? e.path ?? '';
  const target = path === undefined && e.dest ? ` -> ${e.dest}` : '';
  return new SysprimeError('IO', `${where ? `${where}${target}: ` : ''}${e.syscall} failed: ${e.code} (${description})`, {
    cause: err,
    ...(ERRNO_HINTS[e.code] ? { hint: ERRNO_HINTS[e.code] } : {}),
  });
}
