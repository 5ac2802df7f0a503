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
 * `[apt_hook] enabled = false`, and inside a chroot sysprime itself entered
 * (staging's apt in a clone, `sysprime shell`: `SYSPRIME_CHROOT` is set
 * there), where the running system is not what apt changes and the hook
 * would recurse. Busy (staging holds the lock), it says so and makes none:
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

/** `apt-get install -y x.deb` -> ["apt-get", "install"]: the program and its first word that is not an option or a path. */
function programAndVerb(argv: readonly string[]): string[] {
  let i = 0;
  let program = basename(argv[0] ?? '');
  // unattended-upgrade is a Python script: the interpreter says nothing.
  if (INTERPRETER.test(program) && argv[1] !== undefined) program = basename(argv[(i = 1)]!);
  const verb = argv.slice(i + 1).find((a) => /^[a-z][a-z-]*$/.test(a));
  return verb === undefined ? [program] : [program, verb];
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

/** The environment's description: the whole command line, made one printable line. */
export function descriptionFor(argv: readonly string[] | null): string {
  if (argv === null || argv.length === 0) return 'before a package operation';
  const shown = INTERPRETER.test(basename(argv[0]!)) && argv.length > 1 ? argv.slice(1) : argv;
  return asDescription(shown.join(' '));
}

/** Inside a chroot sysprime entered itself (src/updaters/chroot.ts sets it): staging's clone, `sysprime shell`. */
export function insideSysprimeChroot(env: NodeJS.ProcessEnv = process.env): boolean {
  return (env['SYSPRIME_CHROOT'] ?? '') !== '';
}

export type AptHookOutcome =
  | { made: EnvironmentInfo; operation: string }
  | { skipped: 'disabled' | 'nothing-to-do' | 'busy'; why: string };

/**
 * Make the environment for one apt run, or say why not. Never waits for the
 * lock: while staging (or any verb) holds it, the answer is `busy`. The
 * caller bounds the time and turns every failure into a message.
 */
export async function environmentBeforePackages(ctx: Context, input: HookInput, argv: readonly string[] | null, now: Date = new Date()): Promise<AptHookOutcome> {
  if (!ctx.config.aptHook.enabled) return { skipped: 'disabled', why: '[apt_hook] enabled = false' };
  if (input.actions.length === 0) return { skipped: 'nothing-to-do', why: 'dpkg has nothing to install, configure or remove' };
  const base = nameFor(argv, now);
  const taken = new Set((await ctx.backend.listEnvironments()).map((e) => e.name));
  let name = base;
  for (let n = 2; taken.has(name); n++) name = `${base}-${n}`;
  const description = descriptionFor(argv);
  try {
    const made = await createEnvironment(ctx, name, undefined, { description, auto: APT_AUTO });
    return { made, operation: description };
  } catch (err) {
    if (isSysprimeError(err) && err.code === 'BUSY') return { skipped: 'busy', why: err.message };
    throw err;
  }
}
