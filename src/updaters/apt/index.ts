/**
 * The apt updater: the clone of the pristine state is brought to the next
 * generation by apt itself, chrooted into it. First the admin's
 * package-selection drift is replayed (installs, removals, holds made on the
 * running environment since its pristine state), then `apt-get
 * dist-upgrade`. Nothing runs in the live or pristine trees: their dpkg
 * databases are only read, as files. Whether there is anything to update is
 * learnt the same way, in the clone, which staging throws away when nothing
 * changed.
 */
import { access } from 'node:fs/promises';
import type { Config } from '../../config/schema.js';
import { SysprimeError } from '../../errors.js';
import { log } from '../../log.js';
import type { RunResult } from '../../process/run.js';
import { withChroot, type ChrootSession } from '../chroot.js';
import { joinInside } from '../rootpath.js';
import { readFileAt } from '../../os/confined.js';
import type { PackageChange, UpdateOptions, UpdateResult, Updater } from '../types.js';
import { APT_EXTENDED_STATES, DPKG_STATUS, packageChanges, packageState, type PackageState } from './dpkg-status.js';
import { describePlan, parsePolicyCandidates, planSelection, splitAvailable, transactionArguments, type SelectionPlan } from './selection.js';

export interface AptApplyReport extends UpdateResult {
  /** The selection drift replayed, after dropping what the repositories no longer offer. */
  selection: SelectionPlan;
  /** Packages the admin installed that no repository offers any more: kept out, reported. */
  unavailable: string[];
  /** Holds that could not be set because the package is not installed in the new environment. */
  holdsSkipped: string[];
}

/**
 * Non-interactive and conservative about configuration: a conffile the tree
 * changed keeps its version, one it did not is replaced (dpkg's defaults
 * otherwise prompt, and there is no one to answer).
 */
const APT_OPTIONS = ['-y', '-o', 'Dpkg::Options::=--force-confold', '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Use-Pty=0'];

/**
 * apt-get update exits 0 when a mirror cannot be reached ("W: Some index
 * files failed to download"): the upgrade would then find nothing new and
 * staging would report "nothing to update" for a broken repository.
 */
const UPDATE_OPTIONS = ['-o', 'APT::Update::Error-Mode=any'];

const APT_ENV: Record<string, string> = {
  DEBIAN_FRONTEND: 'noninteractive',
  APT_LISTCHANGES_FRONTEND: 'none',
  // needrestart looks at processes through /proc, which are the host's: it must not restart them.
  NEEDRESTART_SUSPEND: '1',
};

/** Lines of apt's output kept in an error's detail. */
const DETAIL_LINES = 200;

export function createAptUpdater(_config: Config): Updater {
  return {
    method: 'apt',
    readsLiveTrees: true,
    describe: () => 'apt (dist-upgrade in the new environment, after replaying package-selection drift)',
    probe: async () => {
      // The clone is made from this system's generation: no apt here, none there.
      for (const path of ['/usr/bin/apt-get', '/usr/bin/apt-mark', '/var/lib/dpkg/status']) {
        try {
          await access(path);
        } catch (err) {
          throw new SysprimeError('CONFIG', `update.method = "apt" but this system has no ${path}`, {
            hint: 'choose another update.method, or install apt',
            cause: err,
          });
        }
      }
    },
    apply: (opts) => applyApt(opts),
  };
}

async function readTreeFile(root: string, rel: string, required: boolean): Promise<string> {
  // Through the confined reader: a link in the tree (at the file or above it) is not followed to the host's.
  const bytes = readFileAt(root, joinInside('/', rel));
  if (bytes !== undefined) return bytes.toString('utf8');
  if (!required) return '';
  throw new SysprimeError('NOT_FOUND', `${root} has no dpkg database (${rel}), or it is not a regular file`, {
    hint: 'the apt updater needs a Debian-like tree; choose another update.method',
  });
}

/** Read as files: nothing of the tree runs. */
async function readPackageState(root: string): Promise<PackageState> {
  return packageState(await readTreeFile(root, DPKG_STATUS, true), await readTreeFile(root, APT_EXTENDED_STATES, false));
}

function tail(text: string, lines: number): string {
  const all = text.trimEnd().split('\n');
  return all.length <= lines ? all.join('\n') : [`[... ${all.length - lines} earlier lines]`, ...all.slice(-lines)].join('\n');
}

/** The packages dpkg lists under "Errors were encountered while processing:". */
export function failedPackages(output: string): string[] {
  const lines = output.split('\n');
  const at = lines.findIndex((l) => l.startsWith('Errors were encountered while processing:'));
  if (at < 0) return [];
  const names: string[] = [];
  for (const line of lines.slice(at + 1)) {
    if (!/^\s/.test(line) || line.trim() === '') break;
    names.push(line.trim());
  }
  return names;
}

/** apt's own diagnosis: its first "E:" line (else the last line it wrote), and the packages dpkg gave up on. */
function diagnosis(res: RunResult): string {
  const text = `${res.stderr}\n${res.stdout}`;
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  const first = lines.find((l) => l.startsWith('E:'))?.replace(/^E:\s*/, '') ?? lines.at(-1) ?? `exit status ${res.exitCode}`;
  const failed = failedPackages(text);
  return failed.length === 0 ? first : `${first}; packages that failed: ${failed.join(' ')}`;
}

/** "apt-get dist-upgrade" out of "apt-get -y -o X=Y dist-upgrade": the program and its verb. */
export function commandLabel(argv: readonly string[]): string {
  let verb: string | undefined;
  for (let i = 1; i < argv.length && verb === undefined; i++) {
    const arg = argv[i] ?? '';
    if (arg === '-o') i++;
    // Short options are apt's switches; dpkg's actions are long options (--purge).
    else if (!/^-[^-]/.test(arg)) verb = arg;
  }
  return verb === undefined ? (argv[0] ?? '') : `${argv[0] ?? ''} ${verb}`;
}

function aptOutput(root: string, argv: readonly string[], res: RunResult): string {
  return [`chroot ${root} ${argv.join(' ')}`, `exit status ${res.exitCode}`, '--- stdout', tail(res.stdout, DETAIL_LINES), '--- stderr', tail(res.stderr, DETAIL_LINES)].join('\n');
}

function aptFailure(root: string, argv: readonly string[], res: RunResult): SysprimeError {
  return new SysprimeError('COMMAND_FAILED', `${commandLabel(argv)} failed in the new environment (exit status ${res.exitCode}): ${diagnosis(res)}`, {
    detail: aptOutput(root, argv, res),
    hint: 'the running system was not changed; fix the repository or the package apt names, then stage again',
  });
}

interface AptSession {
  /** Runs a command of the tree's apt; a failure becomes an error with apt's output. */
  apt(argv: readonly string[]): Promise<RunResult>;
}

/**
 * The tree's own coreutils `timeout` enforces update.timeout: it kills its
 * whole process group, so a package script that hangs (and holds apt's output
 * pipe open) dies with apt. Stopping only apt would leave us waiting on the
 * pipe for as long as the script runs.
 */
const KILL_AFTER_S = 30;
const TIMED_OUT = new Set([124, 137]);

function aptSession(session: ChrootSession, root: string, deadline: number, timeout: number, signal: AbortSignal | undefined): AptSession {
  return {
    apt: async (argv) => {
      if (signal?.aborted) throw new SysprimeError('STEP_FAILED', 'the update was cancelled', { cause: signal.reason });
      const left = Math.ceil((deadline - Date.now()) / 1000);
      const timedOut = (detail?: string): SysprimeError =>
        new SysprimeError('TIMEOUT', `${commandLabel(argv)} did not finish within update.timeout (${timeout} s) and was stopped`, {
          hint: 'raise update.timeout, or find the package script that hangs in the detail',
          ...(detail === undefined ? {} : { detail }),
        });
      if (left <= 0) throw timedOut();
      log.info(`apt: ${argv.join(' ')}`);
      const started = Date.now();
      const res = await session.run(['timeout', `--kill-after=${KILL_AFTER_S}`, String(left), ...argv], {
        env: APT_ENV,
        timeout: left + 2 * KILL_AFTER_S,
        allowFailure: true,
      });
      if (TIMED_OUT.has(res.exitCode) && Date.now() - started >= left * 1000) throw timedOut(aptOutput(root, argv, res));
      if (res.exitCode !== 0) throw aptFailure(root, argv, res);
      return res;
    },
  };
}

function summarize(changes: readonly PackageChange[], plan: SelectionPlan, unavailable: readonly string[]): string {
  const upgraded = changes.filter((c) => c.from !== null && c.to !== null).length;
  const installed = changes.filter((c) => c.from === null).length;
  const removed = changes.filter((c) => c.to === null).length;
  const parts = [`apt: ${upgraded} upgraded, ${installed} newly installed, ${removed} removed`];
  if (plan.hold.length > 0) parts.push(`held ${plan.hold.join(' ')}`);
  if (plan.unhold.length > 0) parts.push(`unheld ${plan.unhold.join(' ')}`);
  if (unavailable.length > 0) parts.push(`no longer available: ${unavailable.join(' ')}`);
  return parts.join('; ');
}

/**
 * Replays the admin's package selections into the tree at `root`, then
 * upgrades it. `liveRoot` and `pristineRoot` are read only; without both,
 * there is no selection drift to replay.
 */
async function applyApt(opts: UpdateOptions): Promise<AptApplyReport> {
  const deadline = Date.now() + opts.timeout * 1000;
  const before = await readPackageState(opts.root);
  let plan: SelectionPlan = { install: [], remove: [], purge: [], hold: [], unhold: [] };
  if (opts.liveRoot !== undefined && opts.pristineRoot !== undefined) {
    const [pristine, live] = await Promise.all([readPackageState(opts.pristineRoot), readPackageState(opts.liveRoot)]);
    plan = planSelection(pristine, live, before);
  } else {
    log.debug('apt: no live and pristine trees given; no package-selection drift to replay');
  }
  log.info(describePlan(plan));

  return withChroot(opts.root, { network: true, timeout: opts.timeout, verbose: opts.verbose }, async (session) => {
    const apt = aptSession(session, session.root, deadline, opts.timeout, opts.signal);
    await apt.apt(['apt-get', ...APT_OPTIONS, ...UPDATE_OPTIONS, 'update']);

    let unavailable: string[] = [];
    if (plan.install.length > 0) {
      const policy = await apt.apt(['apt-cache', 'policy', ...plan.install]);
      ({ plan, unavailable } = splitAvailable(plan, parsePolicyCandidates(policy.stdout)));
      for (const name of unavailable) {
        log.warn(`${name} was installed on the running system but no configured repository offers it: the new environment will not have it`);
      }
    }
    if (plan.unhold.length > 0) await apt.apt(['apt-mark', 'unhold', ...plan.unhold]);
    const transaction = transactionArguments(plan);
    if (transaction.length > 0) await apt.apt(['apt-get', ...APT_OPTIONS, 'install', ...transaction]);
    if (plan.purge.length > 0) {
      const left = (await readPackageState(opts.root)).configFiles;
      const purge = plan.purge.filter((name) => left.has(name));
      if (purge.length > 0) await apt.apt(['dpkg', '--purge', ...purge]);
    }
    let holdsSkipped: string[] = [];
    if (plan.hold.length > 0) {
      // A hold only means something on an installed package; an admin-held dependency may not have come along.
      const installed = (await readPackageState(opts.root)).installed;
      holdsSkipped = plan.hold.filter((name) => !installed.has(name));
      for (const name of holdsSkipped) log.warn(`${name} is held on the running system but not installed in the new environment: not held there`);
      plan = { ...plan, hold: plan.hold.filter((name) => installed.has(name)) };
      if (plan.hold.length > 0) await apt.apt(['apt-mark', 'hold', ...plan.hold]);
    }

    await apt.apt(['apt-get', ...APT_OPTIONS, 'dist-upgrade']);

    const after = await readPackageState(opts.root);
    const packages = packageChanges(before.installed, after.installed);
    const changed = packages.length > 0 || plan.hold.length > 0 || plan.unhold.length > 0;
    // The downloaded .debs would otherwise stay in every pristine snapshot from now on.
    if (changed) await apt.apt(['apt-get', 'clean']);
    return { changed, packages, summary: changed ? summarize(packages, plan, unavailable) : nothingToUpdate(unavailable), selection: plan, unavailable, holdsSkipped };
  });
}

function nothingToUpdate(unavailable: readonly string[]): string {
  const base = 'nothing to update: apt found no newer packages and no package-selection drift';
  return unavailable.length > 0 ? `${base} (no longer available: ${unavailable.join(' ')})` : base;
}
