/**
 * The mount tables, one home for reading them: the kernel's
 * /proc/self/mountinfo (proc(5)), and fstab(5), the format of /etc/fstab and
 * of the kernel's /proc/self/mounts. The parsers and the questions asked of
 * their entries are pure functions of their input; `readMountinfo` and
 * `readMounts` read the running system's tables.
 */
import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';

/** Undoes the octal escapes the kernel and fstab use for space, tab, newline and backslash (`\040`, `\011`, `\012`, `\134`). */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Is the path `path` equal to `dir` or below it (both absolute, normalised)? */
export function isAtOrBelow(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);
}

// ---- /proc/self/mountinfo

export interface MountinfoEntry {
  id: number;
  parent: number;
  /** major:minor of the filesystem; every mount of one filesystem shares it. */
  dev: string;
  /** The directory of the filesystem that is mounted (not "/" for bind mounts and subvolumes: `/ROOT/name`). */
  root: string;
  mountPoint: string;
  /** Per-mount options, as written (`rw,relatime`). */
  options: string;
  /** Optional fields such as shared:1, master:2. */
  propagation: string[];
  fsType: string;
  source: string;
  /** Per-filesystem options (`rw,subvolid=256,subvol=/@`). */
  superOptions: string[];
}

/** /proc/self/mountinfo: one mount a line, fields separated by one space; a line that is not one is passed over. */
export function parseMountinfo(text: string): MountinfoEntry[] {
  const out: MountinfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const fields = line.split(' ');
    // The optional fields end at a lone "-"; searching from the seventh field, a mount point "-" is not taken for it.
    const dash = fields.indexOf('-', 6);
    if (dash < 0 || fields.length < dash + 3) continue;
    const superOptions = fields[dash + 3];
    out.push({
      id: Number(fields[0]),
      parent: Number(fields[1]),
      dev: fields[2]!,
      root: unescapeMountField(fields[3]!),
      mountPoint: unescapeMountField(fields[4]!),
      options: fields[5]!,
      propagation: fields.slice(6, dash),
      fsType: fields[dash + 1]!,
      source: unescapeMountField(fields[dash + 2]!),
      superOptions: superOptions === undefined ? [] : superOptions.split(','),
    });
  }
  return out;
}

/** The running system's mounts, from /proc/self/mountinfo. */
export async function readMountinfo(): Promise<MountinfoEntry[]> {
  return parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/** The mount visible at a path: the last one mounted there hides the others. */
export function mountAt<T extends { mountPoint: string }>(entries: readonly T[], path: string): T | undefined {
  return entries.filter((e) => e.mountPoint === path).at(-1);
}

/**
 * The mount a path is on: of the mounts at the path or at a directory above
 * it, the deepest, and of those the last mounted. `path` absolute and
 * normalised, links resolved (the tables name real directories).
 */
export function mountHolding<T extends { mountPoint: string }>(entries: readonly T[], path: string): T | undefined {
  let found: T | undefined;
  for (const e of entries) {
    if (!isAtOrBelow(path, e.mountPoint)) continue;
    if (found === undefined || e.mountPoint.length >= found.mountPoint.length) found = e;
  }
  return found;
}

/** Mounts whose mount point is `dir` or below it, in mountinfo order (parents first). */
export function mountsAtOrBelow(entries: readonly MountinfoEntry[], dir: string): MountinfoEntry[] {
  return entries.filter((e) => isAtOrBelow(e.mountPoint, dir));
}

/**
 * A directory bind-mounted onto itself: same filesystem as the mount it sits
 * on, showing exactly the directory it covers. Nothing but a self-bind looks
 * like this, which is how a crashed session's self-bind is told apart from
 * the environment's own mount at the same place.
 */
export function isSelfBind(entry: MountinfoEntry, entries: readonly MountinfoEntry[]): boolean {
  const parent = entries.find((e) => e.id === entry.parent);
  if (parent === undefined || parent.dev !== entry.dev) return false;
  if (!isAtOrBelow(entry.mountPoint, parent.mountPoint)) return false;
  const rel = posix.relative(parent.mountPoint, entry.mountPoint);
  return posix.join(parent.root, rel) === entry.root;
}

/** Deepest first: the order to unmount in. */
export function unmountOrder(entries: readonly MountinfoEntry[]): MountinfoEntry[] {
  const index = new Map(entries.map((e, i) => [e.id, i] as const));
  return [...entries].sort((a, b) => {
    const depth = b.mountPoint.split('/').length - a.mountPoint.split('/').length;
    return depth !== 0 ? depth : (index.get(b.id) ?? 0) - (index.get(a.id) ?? 0);
  });
}

// ---- fstab(5) and /proc/self/mounts

/** One line of fstab(5) format, cut at its blanks so that it can be put back together byte for byte. */
export interface FstabLine {
  /** Fields and blanks alternating, a field first (empty before a leading blank, and after a trailing one): `parts.join('')` is the line. */
  parts: string[];
  /** Index in `parts` of each field. */
  at: number[];
  /** The fields as written, escapes not undone. */
  fields: string[];
}

/** A line (without its newline) cut into fields at blanks (spaces and tabs); null for a blank line or a comment. */
export function splitFstabLine(line: string): FstabLine | null {
  const parts = line.split(/([ \t]+)/);
  const at: number[] = [];
  for (let i = 0; i < parts.length; i += 2) if (parts[i] !== '') at.push(i);
  const fields = at.map((i) => parts[i]!);
  if (fields.length === 0 || fields[0]!.startsWith('#')) return null;
  return { parts, at, fields };
}

export interface FstabEntry {
  /** 0-based line number in the text. */
  line: number;
  source: string;
  mountPoint: string;
  /** `auto` when the line does not say. */
  fsType: string;
  /** `defaults` when the line does not say. */
  options: string[];
}

/** fstab(5): one filesystem a line, fields separated by blanks, escapes as in mountinfo; comments, blank lines and lines of one field are not entries. */
export function parseFstab(text: string): FstabEntry[] {
  const out: FstabEntry[] = [];
  text.split('\n').forEach((raw, line) => {
    const s = splitFstabLine(raw.replace(/\r$/, ''));
    if (s === null || s.fields.length < 2) return;
    const [source, mountPoint, fsType, options] = s.fields as [string, string, string | undefined, string | undefined];
    out.push({
      line,
      source: unescapeMountField(source),
      mountPoint: unescapeMountField(mountPoint),
      fsType: fsType ?? 'auto',
      options: (options ?? 'defaults').split(','),
    });
  });
  return out;
}

/** /proc/self/mounts, which the kernel writes in fstab(5) format. */
export function parseMounts(text: string): FstabEntry[] {
  return parseFstab(text);
}

/** The running system's mounts, from /proc/self/mounts. */
export async function readMounts(): Promise<FstabEntry[]> {
  return parseMounts(await readFile('/proc/self/mounts', 'utf8'));
}
