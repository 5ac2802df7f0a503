/**
 * The GRUB menu sysprime generates (`/boot/grub/sysprime.cfg`), pure. GRUB
 * reads kernels straight from the environments (Btrfs subvolume paths, or
 * ZFS's `dataset@/path` form), so nothing is copied. The file is sourced by
 * `/etc/grub.d/42_sysprime`, which keeps `update-grub` in charge of grub.cfg.
 *
 * Boot counting (greenboot's variables in grubenv): when `boot_counter` is
 * set and the last boot was not marked good, each boot lowers it by one; at 0
 * the menu's default becomes `sysprime_fallback`. Stock GRUB has no
 * `decrement`, so the step is an explicit chain of comparisons.
 */
import type { BootEntry } from '../types.js';

const MAX_TRIES = 99;

/**
 * One GRUB word, quoted when it needs to be: single quotes stop variable
 * expansion and keep every character as it is (`$`, `"`, `\`, `;`, `{`, `#`,
 * spaces); a single quote itself cannot be inside them, so it ends the
 * quoted part, comes as `\'`, and a new quoted part begins. Newlines never
 * reach here (names, descriptions and options are one line).
 */
export function grubQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The words of one line of GRUB script as GRUB's lexer reads them, without
 * expanding variables: `'...'` keeps everything, unquoted text takes a
 * backslash as an escape of the next character, `"..."` of `$`, `"` and
 * `\`. The inverse of grubQuote, so `inspect` reads back the title
 * sysprime wrote whatever it holds.
 */
export function grubWords(line: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === ' ' || c === '\t') {
      if (word !== null) words.push(word);
      word = null;
      continue;
    }
    word ??= '';
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      word += line.slice(i + 1, end < 0 ? line.length : end);
      i = end < 0 ? line.length : end;
    } else if (c === '"') {
      // Inside double quotes a backslash escapes only $, " and itself.
      for (i++; i < line.length && line[i] !== '"'; i++) word += line[i] === '\\' && '$"\\'.includes(line[i + 1] ?? 'x') ? line[++i]! : line[i]!;
    } else if (c === '\\' && i + 1 < line.length) {
      word += line[++i]!;
    } else {
      word += c;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

/** The title of a menu entry block (its first line's second word), or null. */
export function menuTitle(block: string): string | null {
  const [keyword, title] = grubWords(block.split('\n', 1)[0] ?? '');
  return keyword === 'menuentry' && title !== undefined ? title : null;
}

/** Kernel arguments split as the kernel splits them: spaces inside double quotes do not separate. */
export function splitKernelArgs(options: string): string[] {
  return options.match(/(?:[^\s"]+|"[^"]*"?)+/g) ?? [];
}

function argsOf(options: string): string {
  return splitKernelArgs(options).map(grubQuote).join(' ');
}

/**
 * The path GRUB opens for a file inside an environment. On ZFS GRUB names a
 * file `/<dataset below the pool>@<snapshot>/<path in the dataset>`, the
 * snapshot empty for the dataset as it is: `/ROOT/gen-1@/boot/vmlinuz-6.1`.
 * With a boot pool the kernels are in the environment's boot dataset, whose
 * root is the environment's /boot: `/BOOT/gen-1@/vmlinuz-6.1`, what
 * grub-mkconfig writes on the guides' layout.
 */
export function grubPath(entry: Pick<BootEntry, 'root'>, inTree: string): string {
  const root = entry.root;
  if (root.fs === 'btrfs') return `/${root.subvolume.replace(/^\/+/, '')}${inTree}`;
  if (root.boot !== undefined && inTree.startsWith('/boot/')) return `${root.boot.dataset.slice(root.boot.pool.length)}@${inTree.slice('/boot'.length)}`;
  return `${root.dataset.slice(root.pool.length)}@${inTree}`;
}

/** The pool GRUB reads an entry's kernel from: the boot pool where the environment has a boot dataset. */
function searchLine(entry: BootEntry): string[] {
  const root = entry.root;
  if (root.fs === 'btrfs') return ['insmod btrfs', `search --no-floppy --fs-uuid --set=root ${grubQuote(root.uuid)}`];
  const kernelsIn = root.boot !== undefined && entry.kernel.kernelInTree.startsWith('/boot/') ? root.boot.pool : root.pool;
  // GRUB's zfs module gives a pool its name as the label.
  return ['insmod zfs', `search --no-floppy --label --set=root ${grubQuote(kernelsIn)}`];
}

export function renderMenuEntry(entry: BootEntry): string {
  const k = entry.kernel;
  const lines = [
    `menuentry ${grubQuote(entry.title)} --class gnu-linux --class os --id ${grubQuote(entry.id)} {`,
    `\t# sysprime generation ${entry.generation}`,
    ...searchLine(entry).map((l) => `\t${l}`),
    `\techo ${grubQuote(`Loading ${entry.name} (Linux ${k.version}) ...`)}`,
    `\tlinux ${grubQuote(grubPath(entry, k.kernelInTree))}${entry.options ? ` ${argsOf(entry.options)}` : ''}`,
    ...(k.initrdInTree === null ? [] : [`\tinitrd ${grubQuote(grubPath(entry, k.initrdInTree))}`]),
    '}',
  ];
  return lines.join('\n');
}

export function renderCountingBlock(maxTries: number = MAX_TRIES): string {
  const steps: string[] = [];
  for (let n = 1; n <= maxTries; n++) steps.push(`  elif [ "\${boot_counter}" = "${n}" ]; then set boot_counter=${n - 1}`);
  return [
    '# Boot counting for a freshly staged environment (see docs/boot.md).',
    'if [ -n "${sysprime_fallback}" -a -n "${boot_counter}" -a "${boot_success}" = "0" ]; then',
    '  if [ "${boot_counter}" = "0" -o "${boot_counter}" = "-1" ]; then',
    '    set default="${sysprime_fallback}"',
    '    set boot_counter=-1',
    ...steps,
    '  fi',
    '  save_env boot_counter',
    'fi',
    'set boot_success=0',
    'save_env boot_success',
  ].join('\n');
}

/**
 * The saved default applies whatever GRUB_DEFAULT says (Debian ships 0): the
 * admin chose sysprime to decide the default, and a one-shot that GRUB's own
 * header already took (`boot_once`) still wins.
 */
function renderDefaultBlock(): string {
  return [
    '# The default environment (`sysprime activate`), unless this boot is a one-shot.',
    'if [ -z "${boot_once}" -a -n "${saved_entry}" ]; then',
    '  set default="${saved_entry}"',
    'fi',
  ].join('\n');
}

export function renderGrubMenu(entries: readonly BootEntry[]): string {
  return [
    '# Written by sysprime and sourced by /etc/grub.d/42_sysprime. Rewritten on',
    '# every change of the environments: edit sysprime.toml, not this file.',
    renderDefaultBlock(),
    renderCountingBlock(),
    '',
    ...entries.map(renderMenuEntry),
    '',
  ].join('\n');
}

/** Menu ids (`sysprime-<name>`) of the entries in a menu sysprime wrote. */
export function menuIds(text: string): string[] {
  const ids: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^menuentry .* --id '?(sysprime-[^' ]+)'? \{$/.exec(line);
    if (m) ids.push(m[1]!);
  }
  return ids;
}

/** Each entry's text, by id, so a sync can say what changed. */
export function menuBlocks(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = /^menuentry .* --id '?(sysprime-[^' ]+)'? \{$[\s\S]*?^\}$/gm;
  for (const m of text.matchAll(re)) out.set(m[1]!, m[0]);
  return out;
}

/** grubenv: `key=value` lines after a header, padded with `#` to 1024 bytes. */
export function parseGrubenv(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.includes('=')) continue;
    const at = line.indexOf('=');
    vars.set(line.slice(0, at), line.slice(at + 1));
  }
  return vars;
}
