/**
 * The kernel command line of an entry, apart from the root selection
 * (bls.ts rootArgsFor): what the running system booted with, then the
 * environment's /etc/kernel/cmdline, then `[boot] cmdline` (docs/boot.md).
 * Pure: the texts in, one line out.
 */

/** The root selection (with a boot pool's `sysprime.boot`) and what the bootloader adds itself: sysprime writes its own. */
const NOT_CARRIED = new Set(['root', 'rootflags', 'rootfstype', 'BOOT_IMAGE', 'initrd', 'sysprime.boot']);
/** Arguments of one boot, not carried from the running system's command line (they may still be configured). */
const ONE_BOOT = new Set(['single', 'S', '1', 'emergency', 'rescue', 'systemd.unit', 'init', 'rdinit', 'break', 'rd.break', 'systemd.debug_shell']);

export interface CmdlineSources {
  /** /proc/cmdline of the running system, when it runs from an environment of this pool. */
  booted: string | null;
  /** The environment's /etc/kernel/cmdline (systemd's kernel-install convention). */
  environment: string | null;
  /** `[boot] cmdline`. */
  config: string;
}

/** Arguments as the kernel splits them: blanks separate, double quotes group (and stay). */
export function splitArgs(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let any = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && /\s/.test(ch)) {
      if (any) out.push(cur);
      cur = '';
      any = false;
      continue;
    }
    cur += ch;
    any = true;
  }
  if (any) out.push(cur);
  return out;
}

/** The parameter's name: before the first `=`, quotes aside. */
function argKey(arg: string): string {
  const eq = arg.indexOf('=');
  return (eq < 0 ? arg : arg.slice(0, eq)).replace(/"/g, '');
}

interface Parts {
  kernel: string[];
  /** After `--`: arguments for init, which must stay last. */
  init: string[];
}

function parts(text: string): Parts {
  const args = splitArgs(text);
  const dash = args.indexOf('--');
  return dash < 0 ? { kernel: args, init: [] } : { kernel: args.slice(0, dash), init: args.slice(dash + 1) };
}

/**
 * One source over the ones before it: a name it gives replaces every
 * argument of that name before it (so `console=ttyS1` replaces both of
 * `console=tty0 console=ttyS0`, while one source may give a name several
 * times); `-name` in it removes the name; a repeated flag is kept once.
 */
function over(before: string[], source: string[]): string[] {
  const removed = new Set(source.filter((a) => a.startsWith('-') && a.length > 1).map((a) => argKey(a.slice(1))));
  const given = source.filter((a) => !(a.startsWith('-') && a.length > 1));
  const replaced = new Set(given.map(argKey));
  const out = before.filter((a) => !replaced.has(argKey(a)) && !removed.has(argKey(a)));
  for (const a of given) if (!out.includes(a)) out.push(a);
  return out;
}

/** The arguments for every entry, root selection aside: running system < /etc/kernel/cmdline < `[boot] cmdline`. */
export function composeCmdline(s: CmdlineSources): string {
  const booted = parts(s.booted ?? '');
  const env = parts(s.environment ?? '');
  const config = parts(s.config);
  const strip = (args: string[]) => args.filter((a) => !NOT_CARRIED.has(argKey(a)));
  // What made this one boot special (the recovery entry's `single`, a rescue target picked at the menu) is not every boot's.
  const fromBoot = (args: string[]) => strip(args).filter((a) => !ONE_BOOT.has(argKey(a)));
  let kernel: string[] = [];
  for (const [i, p] of [booted, env, config].entries()) kernel = over(kernel, i === 0 ? fromBoot(p.kernel) : strip(p.kernel));
  // init's arguments are not merged: the most specific source that has any gives them.
  const init = [config, env, booted].find((p) => p.init.length > 0)?.init ?? [];
  return [...kernel, ...(init.length > 0 ? ['--', ...init] : [])].join(' ');
}
