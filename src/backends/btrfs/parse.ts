/**
 * Pure parsers of what btrfs-progs prints (the kernel's mount table is read
 * by `src/os/mounts.ts`). Each one accepts only
 * the shapes it knows and throws BACKEND on anything else, so a format change
 * in a new btrfs-progs shows up as a clear error instead of a wrong answer.
 *
 * Commands are run with LC_ALL=C: `btrfs subvolume show` formats times with
 * strftime's locale-dependent %X.
 */
import { SysprimeError } from '../../errors.js';
import type { MountinfoEntry } from '../../os/mounts.js';

export interface SubvolumeListEntry {
  id: number;
  /** Generation (transaction id) of the last change, not sysprime's generation. */
  gen: number;
  topLevel: number;
  /** Path relative to the top-level subvolume, no leading slash. */
  path: string;
}

export interface SubvolumeShow {
  /** Path as `btrfs subvolume show` printed it on its first line. */
  path: string;
  name: string;
  uuid: string;
  /** null for '-' (not a snapshot). */
  parentUuid: string | null;
  /** null for '-' (not made by `btrfs receive`), or when this version does not print it. */
  receivedUuid: string | null;
  id: number;
  /** null when the filesystem recorded none ('-', filesystems made before Linux 3.10). */
  created: Date | null;
  readonly: boolean;
}

function formatError(what: string, line: string): SysprimeError {
  return new SysprimeError('BACKEND', `cannot read ${what}: unexpected line ${JSON.stringify(line)}`, {
    hint: 'this btrfs-progs version prints something sysprime does not know; please report it with `btrfs --version`',
  });
}

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim().length > 0);
}

// `-a` and some versions prefix paths outside the given subvolume with this.
const FS_TREE_PREFIX = '<FS_TREE>/';

/**
 * `btrfs subvolume list PATH` without options (run on the top-level subvolume,
 * so every path is relative to it). Tolerates the extra columns of `-p`, `-c`,
 * `-u`, `-q`, `-R` so a caller may add them.
 */
export function parseSubvolumeList(text: string): SubvolumeListEntry[] {
  const re = /^ID (\d+) gen (\d+) (?:cgen \d+ )?(?:parent \d+ )?top level (\d+) (?:parent_uuid \S+\s+)?(?:received_uuid \S+\s+)?(?:uuid \S+ )?path (.+)$/;
  return lines(text).map((line) => {
    const m = re.exec(line);
    if (!m) throw formatError('`btrfs subvolume list`', line);
    let path = m[4]!;
    if (path.startsWith(FS_TREE_PREFIX)) path = path.slice(FS_TREE_PREFIX.length);
    return { id: Number(m[1]), gen: Number(m[2]), topLevel: Number(m[3]), path };
  });
}

/** `YYYY-MM-DD HH:MM:SS +hhmm` as printed with LC_ALL=C. */
export function parseBtrfsTime(value: string): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/.exec(value.trim());
  if (!m) throw formatError('a btrfs time', value);
  const [, y, mo, d, h, mi, s, sign, oh, om] = m;
  const utc = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  const offsetMin = (Number(oh) * 60 + Number(om)) * (sign === '-' ? -1 : 1);
  return new Date(utc - offsetMin * 60_000);
}

/** `btrfs subvolume show PATH`. */
export function parseSubvolumeShow(text: string): SubvolumeShow {
  const all = text.split('\n');
  const path = (all[0] ?? '').trim();
  if (path === '') throw formatError('`btrfs subvolume show`', text.slice(0, 80));
  const fields = new Map<string, string>();
  for (const line of all.slice(1)) {
    const m = /^\t([A-Za-z][A-Za-z ()]*?):\s*(.*)$/.exec(line);
    if (m) fields.set(m[1]!, m[2]!.trim());
  }
  const need = (key: string): string => {
    const v = fields.get(key);
    if (v === undefined) throw formatError('`btrfs subvolume show`', `(no "${key}:" line for ${path})`);
    return v;
  };
  const id = Number(need('Subvolume ID'));
  if (!Number.isInteger(id)) throw formatError('`btrfs subvolume show`', `Subvolume ID: ${need('Subvolume ID')}`);
  const parentUuid = need('Parent UUID');
  const receivedUuid = fields.get('Received UUID') ?? '-';
  const flags = need('Flags');
  return {
    path,
    name: need('Name'),
    uuid: need('UUID'),
    parentUuid: parentUuid === '-' ? null : parentUuid,
    receivedUuid: receivedUuid === '-' ? null : receivedUuid,
    id,
    created: need('Creation time') === '-' ? null : parseBtrfsTime(need('Creation time')),
    readonly: flags.split(/[\s,]+/).includes('readonly'),
  };
}

/**
 * Whether two subvolumes come from one another or from a common source, one
 * snapshot (or receive) away: one is a snapshot of the other, both are
 * snapshots of the same subvolume, or one was received as the other. Then
 * they share most of their tree, and `btrfs send -p` between them lists
 * only what differs; between strangers it would list nearly everything.
 */
export function shareLineage(a: SubvolumeShow, b: SubvolumeShow): boolean {
  const ids = (s: SubvolumeShow): string[] => [s.uuid, s.parentUuid, s.receivedUuid].filter((u): u is string => u !== null);
  const other = new Set(ids(b));
  return ids(a).some((u) => other.has(u));
}

/** `btrfs subvolume get-default PATH`: the id of the default subvolume (5 is the top level). */
export function parseGetDefault(text: string): number {
  const line = lines(text)[0] ?? '';
  const m = /^ID (\d+)(?: |$)/.exec(line);
  if (!m) throw formatError('`btrfs subvolume get-default`', line);
  return Number(m[1]);
}

/**
 * `btrfs qgroup show --raw PATH`: exclusive bytes per subvolume id (level-0
 * qgroups only). The column headers changed over versions (`rfer excl`,
 * `Referenced Exclusive Path`); the order of the first three did not.
 */
export function parseQgroupShow(text: string): Map<number, number> {
  const rows = lines(text);
  const header = (rows[0] ?? '').trim().split(/\s+/);
  if (!/^qgroupid$/i.test(header[0] ?? '') || !/^(rfer|referenced)$/i.test(header[1] ?? '') || !/^(excl|exclusive)$/i.test(header[2] ?? '')) {
    throw formatError('`btrfs qgroup show`', rows[0] ?? '');
  }
  const out = new Map<number, number>();
  for (const row of rows.slice(1)) {
    if (/^[-\s]+$/.test(row)) continue;
    const cols = row.trim().split(/\s+/);
    const m = /^(\d+)\/(\d+)$/.exec(cols[0] ?? '');
    if (!m || !/^\d+$/.test(cols[2] ?? '')) throw formatError('`btrfs qgroup show`', row);
    if (m[1] === '0') out.set(Number(m[2]), Number(cols[2]));
  }
  return out;
}

/** The subvolume id a Btrfs mount shows in its options (kernels since 4.x), or null. */
export function mountSubvolumeId(entry: MountinfoEntry): number | null {
  const opt = entry.superOptions.find((o) => o.startsWith('subvolid='));
  return opt === undefined ? null : Number(opt.slice('subvolid='.length));
}
