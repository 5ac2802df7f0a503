/**
 * The one place sysprime starts other programs. Argument arrays only, never a
 * shell; every command is logged at debug level; failures become typed errors
 * that carry the command line and its stderr for `-v`. Each command leads a
 * process group of its own, and a timeout stops the whole group (groups.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { SysprimeError } from '../errors.js';
import { log } from '../log.js';
import { groupAlive, stopGroup, trackGroup, untrackGroup } from './groups.js';

export interface RunOptions {
  /** Milliseconds before the command and everything it started are stopped (SIGTERM, then SIGKILL). */
  timeout?: number;
  input?: string | Buffer;
  cwd?: string;
  env?: Record<string, string>;
  /** Return the result instead of throwing when the exit status is not 0. */
  allowFailure?: boolean;
  /**
   * Show the child's output as it runs (package managers under -v), on our
   * stderr: stdout is for sysprime's own answer (--json must stay parseable).
   */
  inherit?: boolean;
  /** Return stdout as a Buffer. */
  binary?: boolean;
  /**
   * Stop the command, with everything it started, once its standard output
   * passes this many bytes (a listing grown larger than it is worth): the
   * result then says `overLimit`, holds the output up to the limit, and its
   * exit status is not checked.
   */
  maxOutput?: number;
}

/**
 * Run a command on sysprime's own terminal (`sysprime shell`): stdin,
 * stdout and stderr are ours, no timeout, and it stays in sysprime's process
 * group, so the terminal's Ctrl-C and Ctrl-\ reach it and job control works.
 * sysprime ignores those two while it runs (as a shell does for its
 * foreground job); on SIGTERM or SIGHUP it hangs the command up (SIGHUP,
 * then SIGKILL after a grace), so sysprime outlives it and cleans up after
 * it. Returns its exit status; one ended by
 * a signal gives 128 + the signal's number, as shells report it.
 */
export async function runInteractive(file: string, args: readonly string[], opts: { env?: Record<string, string> } = {}): Promise<number> {
  const command = quoteForDisplay(file, args);
  log.debug(`run (on the terminal): ${command}`);
  const ends = commandStarts(file, args);
  try {
    return await runInteractiveWatched(file, args, opts, command);
  } finally {
    ends();
  }
}

async function runInteractiveWatched(file: string, args: readonly string[], opts: { env?: Record<string, string> }, command: string): Promise<number> {
  const child = spawn(file, args, { stdio: 'inherit', ...(opts.env === undefined ? {} : { env: { ...process.env, ...opts.env } }) });
  const ignore = (): void => undefined;
  // An interactive bash ignores SIGTERM and, with job control, leads a process group of its own: it gets what a
  // closed terminal sends (SIGHUP, and SIGCONT should it be stopped), its group too, and SIGKILL if it outlives that.
  let killer: NodeJS.Timeout | undefined;
  const signal = (sig: NodeJS.Signals): void => {
    for (const target of [-(child.pid ?? 0), child.pid ?? 0]) {
      try {
        if (target !== 0) process.kill(target, sig);
      } catch {
        // gone, or not a group leader
      }
    }
  };
  const pass = (): void => {
    signal('SIGHUP');
    signal('SIGCONT');
    killer ??= setTimeout(() => signal('SIGKILL'), INTERACTIVE_GRACE_MS);
  };
  const held: [NodeJS.Signals, (sig: NodeJS.Signals) => void][] = [
    ['SIGINT', ignore],
    ['SIGQUIT', ignore],
    ['SIGTERM', pass],
    ['SIGHUP', pass],
  ];
  for (const [sig, fn] of held) process.on(sig, fn);
  try {
    return await new Promise<number>((resolve, reject) => {
      child.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') reject(new SysprimeError('COMMAND_MISSING', `${file} is not installed or not on PATH`, { hint: `install the package that provides ${file}`, detail: command }));
        else reject(err);
      });
      child.once('exit', (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : osConstants.signals[signal])));
    });
  } finally {
    if (killer !== undefined) clearTimeout(killer);
    for (const [sig, fn] of held) process.off(sig, fn);
  }
}

/** How long a command on the terminal gets after SIGHUP before SIGKILL (runInteractive). */
const INTERACTIVE_GRACE_MS = 5000;

export interface RunResult {
  command: string;
  exitCode: number;
  stdout: string;
  stderr: string;
  stdoutBuffer?: Buffer;
  /** The command was stopped when its output passed `maxOutput`. */
  overLimit?: boolean;
}

const DEFAULT_TIMEOUT_MS = 10 * 60 * 1000;
/** How long the group gets between SIGTERM and SIGKILL. */
const KILL_GRACE_MS = 5000;
/**
 * After the command itself has exited, how long what it left behind may keep
 * its output open before it is stopped (else sysprime would wait for the pipe
 * until the timeout).
 */
const LINGER_MS = 1000;

/**
 * Told when a command starts; what it returns is called when the command
 * has ended. A cache of another program's answers (zfs/query-cache.ts)
 * drops them on any command that could change them.
 */
export type CommandWatcher = (file: string, args: readonly string[]) => () => void;
const watchers = new Set<CommandWatcher>();

export function watchCommands(watcher: CommandWatcher): void {
  watchers.add(watcher);
}

/**
 * What other processes did may be visible now (a lock taken after another
 * sysprime held it): watchers drop what they kept, as after a command.
 */
export function othersMayHaveChanged(): void {
  commandStarts('', [])();
}

function commandStarts(file: string, args: readonly string[]): () => void {
  if (watchers.size === 0) return () => undefined;
  const ends = [...watchers].map((w) => w(file, args));
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    for (const e of ends) e();
  };
}

function quoteForDisplay(file: string, args: readonly string[]): string {
  return [file, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export async function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const command = quoteForDisplay(file, args);
  log.debug(`run: ${command}`);
  const timeout = opts.timeout ?? DEFAULT_TIMEOUT_MS;
  const ends = commandStarts(file, args);
  try {
    return await runWatched(file, args, opts, command, timeout);
  } finally {
    ends();
  }
}

async function runWatched(file: string, args: readonly string[], opts: RunOptions, command: string, timeout: number): Promise<RunResult> {
  // node's own spawn: a wrapper library would cost every sysprime start tens of milliseconds to load (seconds in a slow VM).
  const child = spawn(file, args, {
    // A group of its own: a timeout stops the command and its children together.
    detached: true,
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
    ...(opts.env === undefined ? {} : { env: { ...process.env, ...opts.env } }),
  });
  let stopping: Promise<void> | undefined;
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  let outBytes = 0;
  let overLimit = false;
  child.stdout?.on('data', (d: Buffer) => {
    if (overLimit) return;
    outBytes += d.length;
    if (opts.maxOutput !== undefined && outBytes > opts.maxOutput) {
      overLimit = true;
      if (child.pid !== undefined) stopping ??= stopGroup(child.pid, `${file} wrote more than ${opts.maxOutput} bytes`, KILL_GRACE_MS);
      return;
    }
    stdout.push(d);
    // Shown as it runs on our stderr: stdout is for sysprime's own answer.
    if (opts.inherit) process.stderr.write(d);
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr.push(d);
    if (opts.inherit) process.stderr.write(d);
  });
  if (opts.input !== undefined && child.stdin) {
    // A command that exits without reading all of it is not an error of ours: its exit status says what happened.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input);
  }
  const group = child.pid;
  let timedOut = false;
  const timers: NodeJS.Timeout[] = [];
  let settled = false;
  if (group !== undefined) {
    trackGroup(group);
    timers.push(
      setTimeout(() => {
        timedOut = true;
        stopping ??= stopGroup(group, `${file} timed out`, KILL_GRACE_MS);
      }, timeout),
    );
    child.once('exit', () => {
      if (settled) return;
      timers.push(
        setTimeout(() => {
          if (groupAlive(group)) stopping ??= stopGroup(group, `${file} exited, what it started still holds its output`, KILL_GRACE_MS);
        }, LINGER_MS),
      );
    });
  }
  let code: number | null;
  let signal: NodeJS.Signals | null;
  try {
    // 'close': the command exited and its output is read to the end.
    [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c, s) => resolve([c, s]));
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new SysprimeError('COMMAND_MISSING', `${file} is not installed or not on PATH`, {
        hint: `install the package that provides ${file}`,
        detail: command,
      });
    }
    throw new SysprimeError('COMMAND_FAILED', `${file} could not be started: ${(err as Error).message}`, { detail: command });
  } finally {
    settled = true;
    for (const t of timers) clearTimeout(t);
    // A timed-out group is gone before run() returns: nothing it started outlives it.
    if (stopping) await stopping;
    if (group !== undefined) untrackGroup(group);
  }
  const stdoutBuffer = Buffer.concat(stdout);
  const out: RunResult = {
    command,
    exitCode: code ?? -1,
    stdout: stdoutBuffer.toString('utf8'),
    stderr: Buffer.concat(stderr).toString('utf8'),
    ...(opts.binary ? { stdoutBuffer } : {}),
    ...(overLimit ? { overLimit } : {}),
  };
  if (overLimit) return out;
  if (timedOut) {
    throw new SysprimeError('TIMEOUT', `${file} did not finish within ${Math.round(timeout / 1000)} s and was stopped, with everything it started`, {
      detail: `${command}\n${out.stderr.trim()}`,
    });
  }
  if (out.exitCode !== 0 && !opts.allowFailure) {
    const first = firstLine(out.stderr) || firstLine(out.stdout) || (signal ? `killed by ${signal}` : `exit status ${out.exitCode}`);
    throw new SysprimeError('COMMAND_FAILED', `${file} ${args[0] ?? ''} failed: ${first}`.replace(/\s+failed/, ' failed'), {
      detail: `${command}\nexit status ${out.exitCode}\n${out.stderr.trim()}`,
    });
  }
  return out;
}

function firstLine(text: string): string {
  return text.split('\n').map((l) => l.trim()).find((l) => l.length > 0) ?? '';
}

export interface StreamOptions {
  /** Fed to the command's standard input (`zfs receive`, `btrfs receive`); ended when it ends. */
  stdin?: NodeJS.ReadableStream;
  /** Where the command's standard output goes (`zfs send`, `btrfs send`); not ended by the command. */
  stdout?: NodeJS.WritableStream;
  /**
   * `stdin` is the command's to read to its end: bytes left unread after it
   * succeeded (`zfs receive` stops at its stream's end record) refuse it
   * (REFUSED), read off so that whoever writes them is not left waiting.
   * Counted from what the pipe had not taken yet: the number said is a
   * lower bound.
   */
  wholeStdin?: boolean;
}

/** Read what is left of `s` to its end; the number of bytes, or null when it was closed before its end (its writer failed). */
function unread(s: NodeJS.ReadableStream): Promise<number | null> {
  const r = s as NodeJS.ReadableStream & { readableEnded?: boolean; destroyed?: boolean };
  if (r.readableEnded === true) return Promise.resolve(0);
  if (r.destroyed === true) return Promise.resolve(null);
  return new Promise((resolve) => {
    let n = 0;
    s.on('data', (c: Buffer) => (n += c.length));
    s.once('end', () => resolve(n));
    s.once('close', () => resolve(r.readableEnded === true ? n : null));
    s.once('error', () => resolve(null));
    s.resume();
  });
}

/**
 * Run a command whose input or output is a stream too large to hold (a
 * send stream): no timeout, since its length is the data's; everything else
 * as `run` (argument array, debug log, a group of its own, typed errors
 * with stderr).
 */
export async function runStreaming(file: string, args: readonly string[], opts: StreamOptions): Promise<RunResult> {
  const command = quoteForDisplay(file, args);
  log.debug(`run (streaming): ${command}`);
  const ends = commandStarts(file, args);
  try {
    return await runStreamingWatched(file, args, opts, command);
  } finally {
    ends();
  }
}

async function runStreamingWatched(file: string, args: readonly string[], opts: StreamOptions, command: string): Promise<RunResult> {
  const child = spawn(file, args, { detached: true, stdio: [opts.stdin ? 'pipe' : 'ignore', opts.stdout ? 'pipe' : 'ignore', 'pipe'] });
  if (child.pid !== undefined) trackGroup(child.pid);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  if (opts.stdin && child.stdin) {
    // The command may stop reading (a refused stream): what is left is not its to read.
    child.stdin.on('error', () => undefined);
    opts.stdin.pipe(child.stdin);
    // A source that fails (a stream found cut short) ends the command's input too, so the command ends.
    const stdin = child.stdin;
    opts.stdin.once('error', () => stdin.end());
    opts.stdin.once('close', () => stdin.end());
    // One that was closed before it got here (a small stream read and refused whole) sends its 'close' to nobody.
    if ((opts.stdin as { destroyed?: boolean }).destroyed === true) stdin.end();
  }
  if (opts.stdout && child.stdout) child.stdout.pipe(opts.stdout, { end: false });
  try {
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') reject(new SysprimeError('COMMAND_MISSING', `${file} is not installed or not on PATH`, { hint: `install the package that provides ${file}`, detail: command }));
        else reject(err);
      });
      child.once('close', (c, s) => resolve([c, s]));
    });
    const exitCode = code ?? -1;
    if (exitCode !== 0) {
      const first = firstLine(stderr) || (signal ? `killed by ${signal}` : `exit status ${exitCode}`);
      throw new SysprimeError('COMMAND_FAILED', `${file} ${args[0] ?? ''} failed: ${first}`.replace(/\s+failed/, ' failed'), {
        detail: `${command}\nexit status ${exitCode}\n${stderr.trim()}`,
      });
    }
    if (opts.wholeStdin === true && opts.stdin && child.stdin) {
      opts.stdin.unpipe(child.stdin);
      const left = await unread(opts.stdin);
      if (left !== null && left > 0) {
        throw new SysprimeError('REFUSED', `${file} ${args[0] ?? ''} took its stream and stopped: at least ${left} more bytes followed it, which no ${file} writes`, {
          hint: 'the file was changed or made by something else; nothing was imported',
          detail: command,
        });
      }
    }
    return { command, exitCode, stdout: '', stderr };
  } finally {
    if (opts.stdin && child.stdin) opts.stdin.unpipe(child.stdin);
    if (child.pid !== undefined) untrackGroup(child.pid);
  }
}

/**
 * Start a process that may outlive this one (the apt hook's worker): in a
 * session of its own (setsid), so neither the end of this process nor the
 * terminal's Ctrl-C stops it halfway; its output on pipes to this process,
 * never on the descriptors this process inherited (whoever waits for those
 * to close must not wait for it); an IPC channel to talk to it, whose
 * closing tells it this process is gone.
 */
export function startBackground(file: string, args: readonly string[]): ChildProcess {
  log.debug(`run (in the background): ${quoteForDisplay(file, args)}`);
  const ends = commandStarts(file, args);
  const child = spawn(file, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  child.once('exit', ends);
  // 'error' also comes from a failed send() or kill() to a child still running: only one never started has ended.
  child.once('error', () => {
    if (child.pid === undefined) ends();
  });
  return child;
}
