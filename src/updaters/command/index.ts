/**
 * The plain-command updater: the admin's own update command, run against the
 * clone. The command is a shell command line written by the admin in the
 * configuration, so it is given to `sh -c` as a whole (never assembled from
 * pieces by sysprime). Contract, documented in docs/updaters.md:
 *   SYSPRIME_ROOT  the tree to update ("/" when chrooted)
 *   exit 0         the tree was updated
 *   exit 100       nothing to update (the tree was left as it was)
 *   anything else  failure; its stderr goes into the error
 */
import type { Config } from '../../config/schema.js';
import { SysprimeError, isSysprimeError } from '../../errors.js';
import { run, type RunResult } from '../../process/run.js';
import { withChroot } from '../chroot.js';
import type { UpdateOptions, UpdateResult, Updater } from '../types.js';

const NOTHING_TO_UPDATE = 100;

export function createCommandUpdater(config: Config): Updater {
  const command = config.update.command;
  const chroot = config.update.chroot;
  return {
    method: 'command',
    describe: () => `command${chroot ? ' (chrooted)' : ''}: ${command ?? '(not set)'}`,
    probe: async () => {
      if (command === undefined || command.trim() === '') {
        throw new SysprimeError('CONFIG', 'update.method = "command" needs update.command', {
          hint: 'set [update] command = "..." in sysprime.toml',
        });
      }
    },
    apply: async (opts: UpdateOptions): Promise<UpdateResult> => {
      if (command === undefined || command.trim() === '') {
        throw new SysprimeError('CONFIG', 'update.method = "command" needs update.command', {
          hint: 'set [update] command = "..." in sysprime.toml',
        });
      }
      let res: RunResult;
      try {
        if (chroot) {
          res = await withChroot(opts.root, { network: true, timeout: opts.timeout, verbose: opts.verbose }, (session) =>
            session.run(['/bin/sh', '-c', command], { env: { SYSPRIME_ROOT: '/' }, allowFailure: true }),
          );
        } else {
          res = await run('/bin/sh', ['-c', command], {
            env: { SYSPRIME_ROOT: opts.root },
            cwd: opts.root,
            timeout: opts.timeout * 1000,
            allowFailure: true,
            ...(opts.verbose ? { inherit: true } : {}),
          });
        }
      } catch (err) {
        if (isSysprimeError(err, 'TIMEOUT')) throw timedOut(command, opts.timeout, err);
        throw err;
      }
      return interpretExit(command, res);
    },
  };
}

/** The command hung: say which setting stopped it; run() has already stopped it and its children. */
export function timedOut(command: string, seconds: number, cause: SysprimeError): SysprimeError {
  return new SysprimeError('TIMEOUT', `the update command did not finish within update.timeout (${seconds} s); it was stopped, with every process it started`, {
    hint: 'find what hangs by running the command by hand against a copy of the tree, or raise [update] timeout in sysprime.toml',
    detail: `${command}\n${cause.detail ?? ''}`.trimEnd(),
    cause,
  });
}

/** Exit status to result; pure. */
export function interpretExit(command: string, res: Pick<RunResult, 'exitCode' | 'stderr' | 'stdout'>): UpdateResult {
  if (res.exitCode === 0) return { changed: true, packages: [], summary: `update command succeeded: ${command}` };
  if (res.exitCode === NOTHING_TO_UPDATE) return { changed: false, packages: [], summary: 'nothing to update (the update command exited with 100)' };
  const stderr = res.stderr.trim();
  const first = stderr.split('\n').find((l) => l.trim() !== '') ?? `exit status ${res.exitCode}`;
  throw new SysprimeError('COMMAND_FAILED', `the update command failed (exit status ${res.exitCode}): ${first}`, {
    detail: `${command}\nexit status ${res.exitCode}\n${stderr}`,
    hint: 'run the command by hand against a copy of the tree; exit 100 means "nothing to update"',
  });
}
