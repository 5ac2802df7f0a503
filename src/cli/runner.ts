/**
 * The top of every command: parse global options, check root where needed,
 * open the context, run, and turn any error into one clear line and an exit
 * status (the only place errors become exit codes).
 */
import { exitCodeFor, ioFailure, SysprimeError } from '../errors.js';
import { log, setLevel } from '../log.js';
import { openContext, type Context } from '../context.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';

export interface GlobalOptions {
  config?: string;
  json?: boolean;
  verbose?: boolean;
  quiet?: boolean;
}

export function applyGlobals(g: GlobalOptions): void {
  if (g.verbose && g.quiet) throw new SysprimeError('USAGE', '-v and -q contradict each other', { hint: 'pick one' });
  if (g.verbose) setLevel('debug');
  else if (g.quiet) setLevel('error');
  else setLevel('info');
}

export function requireRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new SysprimeError('NOT_ROOT', 'sysprime manages root filesystems and must run as root', { hint: 'run it with sudo' });
  }
}

// Under systemd the journal reads a <N> prefix as the line's priority.
const underJournal = process.env['JOURNAL_STREAM'] !== undefined && process.env['INVOCATION_ID'] !== undefined;
const ERR = underJournal ? '<3>' : '';
const NOTE = underJournal ? '<6>' : '';

export function reportError(thrown: unknown, verbose: boolean): number {
  // An errno error that reached the top is an I/O failure of the path it names, not a bug.
  const err = ioFailure(thrown) ?? thrown;
  if (err instanceof SysprimeError) {
    process.stderr.write(`${ERR}sysprime: ${err.message}\n`);
    if (err.hint) process.stderr.write(`${NOTE}  hint: ${err.hint}\n`);
    if (verbose) {
      let cause: unknown = err;
      while (cause instanceof Error) {
        if (cause instanceof SysprimeError && cause.detail) process.stderr.write(`  ${cause.detail.replace(/\n/g, '\n  ')}\n`);
        cause = cause.cause;
      }
    } else if (err.detail) {
      process.stderr.write('  (run with -v for the failing command and its output)\n');
    }
  } else {
    process.stderr.write(`${ERR}sysprime: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.stderr.write('  this is a bug; please report it with the command you ran\n');
  }
  return exitCodeFor(err);
}

/** Run an action that needs root and the context; sets process.exitCode. */
export async function withContext(g: GlobalOptions, fn: (ctx: Context) => Promise<number | void>, opts: { claimState?: boolean } = {}): Promise<void> {
  let ctx: Context | undefined;
  try {
    applyGlobals(g);
    requireRoot();
    ctx = await openContext({ config: g.config, claimState: opts.claimState === true });
    const code = await fn(ctx);
    process.exitCode = code ?? 0;
  } catch (err) {
    process.exitCode = reportError(err, g.verbose === true);
  } finally {
    await ctx?.close();
  }
}

/** Run an action that needs neither root nor the context (keys, publishing a repository); sets process.exitCode. */
export async function withoutContext(g: GlobalOptions, fn: () => Promise<number | void> | number | void): Promise<void> {
  try {
    applyGlobals(g);
    process.exitCode = (await fn()) ?? 0;
  } catch (err) {
    process.exitCode = reportError(err, g.verbose === true);
  }
}

export { log };

/**
 * Run an action that needs the configuration only (the fleet verbs): no
 * backend, no state database, no root; sets process.exitCode.
 */
export async function withConfig(g: GlobalOptions, fn: (config: Config) => Promise<number | void>): Promise<void> {
  try {
    applyGlobals(g);
    process.exitCode = (await fn(loadConfig(g.config))) ?? 0;
  } catch (err) {
    process.exitCode = reportError(err, g.verbose === true);
  }
}
