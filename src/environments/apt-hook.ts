/**
 * An environment of the running system before apt changes it in place, as
 * snap-pac does for pacman and zsys for apt: apt runs `sysprime apt-hook`
 * from `DPkg::Pre-Install-Pkgs` (/etc/apt/apt.conf.d/80sysprime, shipped in
 * the package) just before it starts dpkg, with the list of what dpkg is
 * about to do on standard input (protocol version 2). The environment is
 * named and described after the command line of the package operation
 * (apt, apt-get, aptitude, unattended-upgrade), found among the hook's
 * ancestors, and marked `auto` so retention keeps `[retention] keep_auto`
 * of them apart from the admin's own.
 *
 * It is skipped when there is nothing for dpkg to do, when
 * `[apt_hook] enabled = false`, and inside a chroot: one sysprime itself
 * entered (staging's apt in a clone, `sysprime shell`: `SYSPRIME_CHROOT` is
 * set there), and any other, found by its root directory not being init's
 * (an installer's chroot, or sysprime's own after `env -i`, `sudo -i` or
 * `su -` dropped the variable). There the running system is not what apt
 * changes, and the hook would recurse. Busy (staging holds the lock), it says so and makes none:
 * the command line lets apt go on whatever happens here.
 */
import { basename } from 'node:path';
import type { Context } from '../context.js';
import type { EnvironmentInfo } from '../backends/types.js';
import { isSysprimeError } from '../errors.js';
import type { Ancestor } from '../process/ancestors.js';
import { asDescription } from './annotations.js';
import { createEnvironment } from './lifecycle.js';

/** The mark the hook's environments carry (annotations' AUTO_KEY). */
export const APT_AUTO = 'apt';

/** One thing dpkg is about to do: a package and its action (a .deb to unpack, **CONFIGURE**, **REMOVE**). */
export interface PackageAction {
  package: string;
  action: string;
}

export interface HookInput {
  /** The protocol apt spoke: 1 (a list of .deb files), 2 or 3 (apt's configuration, then one line per package). */
  version: number;
  actions: PackageAction[];
}

/**
 * What apt writes to a `DPkg::Pre-Install-Pkgs` hook (apt.conf(5),
 * `DPkg::Tools::options`). Version 1: one .deb path a line. Versions 2 and
 * 3: `VERSION n`, apt's configuration one `Key=Value` a line, an empty
 * line, then one line per package whose last field is the action.
 */
export function parseHookInput(text: string): HookInput {
  const lines = text.split('\n');
  const head = /^VERSION (\d+)$/.exec(lines[0] ?? '');
  if (head === null) {
    const actions = lines.map((l) => l.trim()).filter((l) => l !== '').map((path) => ({ package: basename(path).split('_')[0] ?? path, action: path }));
    return { version: 1, actions };
  }
  const blank = lines.indexOf('', 1);
  const body = blank < 0 ? [] : lines.slice(blank + 1);
  const actions = body
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 2 && f[0] !== '')
    .map((f) => ({ package: f[0]!, action: f[f.length - 1]! }));
  return { version: Number(head[1]), actions };
}

/** Package front ends by their kernel name (`comm`, cut at 15 characters). */
const FRONT_ENDS = new Set(['apt', 'apt-get', 'aptitude', 'aptitude-curses', 'unattended-upgr', 'synaptic', 'packagekitd', 'apt-offline', 'nala']);
/** What stands between apt and the hook: the shell apt runs the hook line with, a launcher. */
const SHELLS = new Set(['sh', 'dash', 'bash', 'zsh', 'busybox', 'env', 'chroot', 'sudo']);

/**
 * The command line of the package operation above the hook: the nearest
 * front end among `ancestors` (parent first), else the nearest process that
 * is not a shell; null when none can be read.
 */
export function packageOperation(ancestors: readonly Ancestor[]): string[] | null {
  const known = ancestors.find((a) => FRONT_ENDS.has(a.comm) && a.argv.length > 0);
  const near = known ?? ancestors.find((a) => !SHELLS.has(a.comm) && a.argv.length > 0);
  return near === undefined ? null : near.argv;
}

const INTERPRETER = /^(python[\d.]*|perl[\d.]*|ruby[\d.]*)$/;

/**
 * Options of apt, apt-get and aptitude that take the next word as their
 * value (`-o Acquire::http::Proxy=http://user:secret@proxy`, `-t bookworm`):
 * the value is neither the verb nor a package, and may hold a secret.
 */
const VALUED_OPTIONS = new Set(['-o', '--option', '-c', '--config-file', '-t', '--target-release', '--default-release', '-a', '--host-architecture', '-P', '--build-profiles', '-S', '-F', '--display-format', '-w', '--width']);
/** Short options of those, the last of a cluster (`-yo KEY=VALUE`) taking the next word. */
const VALUED_SHORT = /^-[A-Za-z]*[octaPSFw]$/;

/** `http://user:secret@host/x` -> `http://host/x`: a package operand may be a URL, and a URL may carry a password. */
export function withoutCredentials(word: string): string {
  return word.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#\s]*@/, '$1');
}

/**
 * The program and its operands, options and their values left out:
 * `apt-get -o Acquire::http::Proxy=http://u:pw@p install -y x` ->
 * { program: "apt-get", operands: ["install", "x"] }. The interpreter of a
 * script (unattended-upgrade is Python) says nothing: the script is the program.
 */
function programAndOperands(argv: readonly string[]): { program: string; operands: string[] } {
  let i = 0;
  if (INTERPRETER.test(basename(argv[0] ?? '')) && argv[1] !== undefined) i = 1;
  const program = basename(argv[i] ?? '');
  const operands: string[] = [];
  for (let j = i + 1; j < argv.length; j++) {
    const a = argv[j]!;
    if (a === '--') {
      operands.push(...argv.slice(j + 1).map(withoutCredentials));
      break;
    }
    if (a.startsWith('-') && a !== '-') {
      if (VALUED_OPTIONS.has(a) || (!a.startsWith('--') && VALUED_SHORT.test(a))) j++;
      continue;
    }
    operands.push(withoutCredentials(a));
  }
  return { program, operands };
}

/** `apt-get install -y x.deb` -> ["apt-get", "install"]: the program and its first operand when that is a word. */
function programAndVerb(argv: readonly string[]): string[] {
  const { program, operands } = programAndOperands(argv);
  const verb = operands[0];
  return verb === undefined || !/^[a-z][a-z-]*$/.test(verb) ? [program] : [program, verb];
}

function stamp(now: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`;
}

/** The environment's name: what ran and when, in the characters a name may hold (`apt-get-install-20261205-151002`). */
export function nameFor(argv: readonly string[] | null, now: Date): string {
  const words = argv === null || argv.length === 0 ? ['apt'] : programAndVerb(argv);
  const what = words
    .join('-')
    .replace(/[^A-Za-z0-9._+-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .replace(/[-.]+$/, '')
    .slice(0, 40);
  return `${what === '' ? 'apt' : what}-${stamp(now)}`;
}

/**
 * The environment's description: the program, its verb and the packages,
 * made one printable line. Options and their values are left out, and a
 * URL's user and password with them: the description is shown by `list`
 * and in the boot menu, which anyone may read, and a command line may carry
 * a proxy's password (`-o Acquire::http::Proxy=http://user:secret@proxy`).
 */
export function descriptionFor(argv: readonly string[] | null): string {
  if (argv === null || argv.length === 0) return 'before a package operation';
  const { program, operands } = programAndOperands(argv);
  return asDescription([program, ...operands].join(' '));
}

/** Inside a chroot sysprime entered itself (src/updaters/chroot.ts sets it): staging's clone, `sysprime shell`. */
export function insideSysprimeChroot(env: NodeJS.ProcessEnv = process.env): boolean {
  return (env['SYSPRIME_CHROOT'] ?? '') !== '';
}

/**
 * Why the hook stands aside in a chroot, or null outside one. Silent (an
 * empty text) in a chroot sysprime entered; a note for any other, where an
 * admin may have expected an environment.
 */
export function chrootSkip(env: NodeJS.ProcessEnv, rootIsInits: boolean | null): string | null {
  if (insideSysprimeChroot(env)) return '';
  if (rootIsInits === false) return 'inside a chroot (its root is not the running system\'s): no environment before this package operation';
  return null;
}

export type AptHookOutcome =
  | { made: EnvironmentInfo; operation: string }
  | { skipped: 'disabled' | 'nothing-to-do' | 'busy' | 'late'; why: string };

export interface AptHookTiming {
  /** Aborted once apt has gone on: the copy, if not begun, is not taken (it would hold what dpkg changes). */
  signal?: AbortSignal;
  /** Called just before the first change (the lock, recovery, the copy): until then, stopping costs nothing. */
  beforeChanges?: () => void;
}

/**
 * Make the environment for one apt run, or say why not. Never waits for the
 * lock: while staging (or any verb) holds it, the answer is `busy`. The
 * caller bounds the time and turns every failure into a message.
 */
export async function environmentBeforePackages(
  ctx: Context,
  input: HookInput,
  argv: readonly string[] | null,
  now: Date = new Date(),
  timing: AptHookTiming = {},
): Promise<AptHookOutcome> {
  if (!ctx.config.aptHook.enabled) return { skipped: 'disabled', why: '[apt_hook] enabled = false' };
  if (input.actions.length === 0) return { skipped: 'nothing-to-do', why: 'dpkg has nothing to install, configure or remove' };
  const base = nameFor(argv, now);
  const taken = new Set((await ctx.backend.listEnvironments()).map((e) => e.name));
  let name = base;
  for (let n = 2; taken.has(name); n++) name = `${base}-${n}`;
  const description = descriptionFor(argv);
  try {
    timing.beforeChanges?.();
    const made = await createEnvironment(ctx, name, undefined, { description, auto: APT_AUTO, ...(timing.signal !== undefined ? { signal: timing.signal } : {}) });
    return { made, operation: description };
  } catch (err) {
    if (isSysprimeError(err) && err.code === 'BUSY') return { skipped: 'busy', why: err.message };
    if (timing.signal?.aborted === true && err === timing.signal.reason) return { skipped: 'late', why: 'apt went on before the copy began' };
    throw err;
  }
}
