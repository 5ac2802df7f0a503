/**
 * /proc/self/mountinfo, parsed (proc(5)). Pure functions: the chroot code
 * reads the file and asks these what is mounted below a root and which of
 * those mounts it made.
 */
import { posix } from 'node:path';

export interface MountEntry {
  id: number;
  parent: number;
  /** major:minor of the filesystem. */
  dev: string;
  /** The directory of the filesystem that is mounted (not "/" for bind mounts and subvolumes). */
  root: string;
  mountPoint: string;
  options: string;
  /** Optional fields such as shared:1, master:2. */
  propagation: string[];
  fsType: string;
  source: string;
}

/** Undoes the octal escapes the kernel uses for space, tab, newline and backslash. */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 6 || fields.length < dash + 3) continue;
    out.push({
      id: Number(fields[0]),
      parent: Number(fields[1]),
      dev: fields[2] ?? '',
      root: unescapeMountField(fields[3] ?? ''),
      mountPoint: unescapeMountField(fields[4] ?? ''),
      options: fields[5] ?? '',
      propagation: fields.slice(6, dash),
      fsType: fields[dash + 1] ?? '',
      source: unescapeMountField(fields[dash + 2] ?? ''),
    });
  }
  return out;
}

export function isAtOrBelow(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);
}

/** Mounts whose mount point is `dir` or below it, in mountinfo order (parents first). */
export function mountsAtOrBelow(entries: readonly MountEntry[], dir: string): MountEntry[] {
  return entries.filter((e) => isAtOrBelow(e.mountPoint, dir));
}

/**
 * A directory bind-mounted onto itself: same filesystem as the mount it sits
 * on, showing exactly the directory it covers. Nothing but a self-bind looks
 * like this, which is how a crashed session's self-bind is told apart from
 * the environment's own mount at the same place.
 */
export function isSelfBind(entry: MountEntry, entries: readonly MountEntry[]): boolean {
  const parent = entries.find((e) => e.id === entry.parent);
  if (parent === undefined || parent.dev !== entry.dev) return false;
  if (!isAtOrBelow(entry.mountPoint, parent.mountPoint)) return false;
  const rel = posix.relative(parent.mountPoint, entry.mountPoint);
  return posix.join(parent.root, rel) === entry.root;
}

/** Deepest first: the order to unmount in. */
export function unmountOrder(entries: readonly MountEntry[]): MountEntry[] {
  const index = new Map(entries.map((e, i) => [e.id, i] as const));
  return [...entries].sort((a, b) => {
    const depth = b.mountPoint.split('/').length - a.mountPoint.split('/').length;
    return depth !== 0 ? depth : (index.get(b.id) ?? 0) - (index.get(a.id) ?? 0);
  });
}

export interface FstabEntry {
  source: string;
  mountPoint: string;
  fsType: string;
  options: string[];
}

/** fstab(5): one filesystem a line, fields separated by blanks, escapes as in mountinfo. */
export function parseFstab(text: string): FstabEntry[] {
  const out: FstabEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/[ \t]+/);
    if (fields[0] === undefined || fields[0] === '' || fields[0].startsWith('#') || fields.length < 2) continue;
    out.push({
      source: unescapeMountField(fields[0]),
      mountPoint: unescapeMountField(fields[1]!),
      fsType: fields[2] ?? 'auto',
      options: (fields[3] ?? 'defaults').split(','),
    });
  }
  return out;
}
