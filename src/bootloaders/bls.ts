/**
 * Boot Loader Specification (Type #1) entries as text, and the pieces of
 * systemd-boot's behaviour sysprime must predict: the boot counting suffix in
 * file names (`+LEFT` or `+LEFT-DONE` right before `.conf`), the `default`
 * glob of loader.conf, and the order in which it picks an entry. All pure.
 *
 * How sysprime makes "the default, or else the one that booted before" work
 * with one glob: loader.conf says `default sysprime-*`, and systemd-boot
 * takes the first matching entry in its sort order. sysprime gives the
 * default environment the first sort key and the fallback the second; an
 * entry whose tries ran out is sorted after everything, so the fallback wins.
 */
import type { BootEntry, Counting, RootLocation } from './types.js';
import { ENTRY_PREFIX } from './entries.js';

/**
 * Kernel arguments that select an environment's root, for initramfs-tools
 * and dracut; with a ZFS boot pool also its /boot, which
 * sysprime-boot-generator (share/systemd/system-generators) mounts: nothing
 * else tells the booted system which of the boot datasets is its own.
 */
export function rootArgsFor(root: RootLocation): string {
  if (root.fs === 'btrfs') return `root=UUID=${root.uuid} rootflags=subvol=${root.subvolume}`;
  return root.boot === undefined ? `root=ZFS=${root.dataset}` : `root=ZFS=${root.dataset} ${BOOT_ARG}=${root.boot.dataset}`;
}

/** The kernel argument naming an environment's boot dataset (see rootArgsFor). */
export const BOOT_ARG = 'sysprime.boot';

export const DEFAULT_PATTERN = `${ENTRY_PREFIX}*`;
export const SORT_KEY = { default: 'sysprime-1-default', fallback: 'sysprime-2-fallback', other: 'sysprime-3' } as const;
export type Rank = keyof typeof SORT_KEY;

const COUNTER_RE = /\+(\d+)(?:-(\d+))?$/;

/**
 * Why an environment name cannot become an entry file name, or null. A name
 * ending in `+<digits>` would read as a boot counter.
 */
export function blsNameProblem(name: string): string | null {
  if (COUNTER_RE.test(name)) return 'it ends in "+<number>", which systemd-boot would read as a boot counter';
  return null;
}

function counterSuffix(counting: Counting): string {
  switch (counting.state) {
    case 'counting':
      return counting.done > 0 ? `+${counting.left}-${counting.done}` : `+${counting.left}`;
    case 'bad':
      return `+0-${counting.done}`;
    default:
      return '';
  }
}

export function entryFileName(name: string, counting: Counting): string {
  return `${ENTRY_PREFIX}${name}${counterSuffix(counting)}.conf`;
}

/** Counting state from the stem of any entry file name (without `.conf`). */
export function parseCounter(stem: string): { base: string; counting: Counting } {
  const m = COUNTER_RE.exec(stem);
  if (!m) return { base: stem, counting: { state: 'blessed' } };
  const left = Number(m[1]);
  const done = m[2] === undefined ? 0 : Number(m[2]);
  return { base: stem.slice(0, m.index), counting: left === 0 ? { state: 'bad', done } : { state: 'counting', left, done } };
}

/** `sysprime-<name>[+L[-D]].conf` → name and counting; null for any other file. */
export function parseEntryFileName(file: string): { name: string; counting: Counting } | null {
  if (!file.startsWith(ENTRY_PREFIX) || !file.endsWith('.conf')) return null;
  const { base, counting } = parseCounter(file.slice(0, -'.conf'.length));
  const name = base.slice(ENTRY_PREFIX.length);
  return name.length === 0 ? null : { name, counting };
}

export interface BlsPaths {
  /** Paths as the bootloader sees them, from the root of the ESP: `/sysprime/<name>/vmlinuz-<v>`. */
  linux: string;
  initrd: string | null;
}

/**
 * The text of one entry. Field values never hold newlines: names are
 * checked, descriptions and options are single-line. BLS has no escapes: a
 * value is the rest of its line, except that systemd-boot drops a pair of
 * double quotes around all of it; a title starts with the environment's
 * name, never with a quote, so the admin's description shows as written.
 */
export function renderBlsEntry(entry: BootEntry, paths: BlsPaths, rank: Rank): string {
  const oneLine = (v: string): string => v.replace(/[\r\n]+/g, ' ').trim();
  const lines = [
    '# Written by sysprime; rewritten on every change of the environments. Edit sysprime.toml, not this file.',
    `title ${oneLine(entry.title)}`,
    `sort-key ${SORT_KEY[rank]}`,
    `version ${entry.generation}`,
    `linux ${paths.linux}`,
    ...(paths.initrd === null ? [] : [`initrd ${paths.initrd}`]),
    `options ${oneLine(entry.options)}`,
  ];
  return `${lines.join('\n')}\n`;
}

/** Keys and values of an entry file; repeated keys (initrd) keep every value in order. */
export function parseBlsEntry(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.length === 0 || line.startsWith('#')) continue;
    const m = /^(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1]!;
    const list = out.get(key) ?? [];
    list.push(m[2]!.trim());
    out.set(key, list);
  }
  return out;
}

/** One line of loader.conf, kept as written so the admin's lines survive our edits byte for byte. */
export interface ConfLine {
  raw: string;
  key: string | null;
  value: string;
}

export function parseLoaderConf(text: string): ConfLine[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.map((raw) => {
    const t = raw.trim();
    if (t.length === 0 || t.startsWith('#')) return { raw, key: null, value: '' };
    const m = /^(\S+)\s*(.*)$/.exec(t)!;
    return { raw, key: m[1]!, value: m[2]!.trim() };
  });
}

export function loaderConfValue(lines: readonly ConfLine[], key: string): string | null {
  // systemd-boot lets a later line win.
  let value: string | null = null;
  for (const l of lines) if (l.key === key) value = l.value;
  return value;
}

/** A new loader.conf with one `default` line set to `pattern` (in place of the first one), every other line kept. */
export function withLoaderDefault(text: string, pattern: string): string {
  const lines = parseLoaderConf(text);
  const out: string[] = [];
  let placed = false;
  for (const l of lines) {
    if (l.key === 'default') {
      if (!placed) out.push(`default ${pattern}`);
      placed = true;
      continue;
    }
    out.push(l.raw);
  }
  if (!placed) out.push(`default ${pattern}`);
  return `${out.join('\n')}\n`;
}

/** systemd-boot's glob (`*`, `?`, `[...]`), case-insensitive as its entry ids are case-folded. */
export function globMatch(pattern: string, text: string): boolean {
  const p = pattern.toLowerCase();
  const t = text.toLowerCase();
  const match = (pi: number, ti: number): boolean => {
    while (pi < p.length) {
      const c = p[pi]!;
      if (c === '*') {
        for (let k = ti; k <= t.length; k++) if (match(pi + 1, k)) return true;
        return false;
      }
      if (ti >= t.length) return false;
      if (c === '?') {
        pi++;
        ti++;
        continue;
      }
      if (c === '[') {
        const end = p.indexOf(']', pi + 1);
        if (end < 0) return false;
        const set = p.slice(pi + 1, end);
        const ch = t[ti]!;
        let ok = false;
        for (let k = 0; k < set.length; k++) {
          if (set[k + 1] === '-' && k + 2 < set.length) {
            if (ch >= set[k]! && ch <= set[k + 2]!) ok = true;
            k += 2;
          } else if (set[k] === ch) ok = true;
        }
        if (!ok) return false;
        pi = end + 1;
        ti++;
        continue;
      }
      if (c !== t[ti]) return false;
      pi++;
      ti++;
    }
    return ti === t.length;
  };
  return match(0, 0);
}

/** dpkg-like comparison is close enough to systemd's strverscmp for the versions sysprime writes (integers). */
function versionCompare(a: string, b: string): number {
  const na = Number(a);
  const nb = Number(b);
  if (Number.isFinite(na) && Number.isFinite(nb)) return na - nb;
  return a.localeCompare(b, 'en', { numeric: true });
}

export interface SortableEntry {
  /** The file name, `.conf` included: systemd-boot's entry id. */
  id: string;
  sortKey: string | null;
  version: string | null;
  counting: Counting;
}

/** The order systemd-boot shows entries in (and searches them in for `default`). */
export function bootOrder<T extends SortableEntry>(entries: readonly T[]): T[] {
  const left = (e: SortableEntry): number => (e.counting.state === 'counting' ? e.counting.left : e.counting.state === 'bad' ? 0 : -1);
  const done = (e: SortableEntry): number => (e.counting.state === 'counting' || e.counting.state === 'bad' ? e.counting.done : 0);
  return [...entries].sort((a, b) => {
    const badA = left(a) === 0 ? 1 : 0;
    const badB = left(b) === 0 ? 1 : 0;
    if (badA !== badB) return badA - badB;
    if ((a.sortKey === null) !== (b.sortKey === null)) return a.sortKey === null ? 1 : -1;
    if (a.sortKey !== null && b.sortKey !== null) {
      if (a.sortKey !== b.sortKey) return a.sortKey < b.sortKey ? -1 : 1;
      const v = versionCompare(b.version ?? '', a.version ?? '');
      if (v !== 0) return v;
    }
    const id = versionCompare(b.id, a.id);
    if (id !== 0) return id;
    if (left(a) < 0 || left(b) < 0) return 0;
    return left(b) - left(a) || done(a) - done(b);
  });
}

/** The entry systemd-boot boots without a key press: one-shot first, then the default glob, then the first in order. */
export function predictBoot<T extends SortableEntry>(entries: readonly T[], opts: { defaultPattern: string | null; oneShot?: string | null }): T | null {
  const ordered = bootOrder(entries);
  for (const pattern of [opts.oneShot ?? null, opts.defaultPattern]) {
    if (pattern === null) continue;
    const hit = ordered.find((e) => globMatch(pattern, e.id));
    if (hit) return hit;
  }
  return ordered[0] ?? null;
}
