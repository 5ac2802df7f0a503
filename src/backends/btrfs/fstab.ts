/**
 * fstab(5) as far as a Btrfs environment needs it, pure: which lines mount
 * which subvolume, and the root line without its subvolume selection.
 *
 * An installer writes `/` with the subvolume it made (`subvol=@rootfs`,
 * `subvol=@`, `subvol=root`). A clone of that root lives elsewhere
 * (`ROOT/<name>`), and systemd remounts `/` with the fstab's options at boot:
 * a `subvol=` naming another subvolume than the mounted one makes that
 * remount fail. sysprime drops `subvol=` and `subvolid=` from the `/` line of
 * every environment it makes, so the line names no environment at all: the
 * kernel's `rootflags=subvol=ROOT/<name>` (every boot entry sysprime writes)
 * or the default subvolume (`activate`) chooses the root, and a rename, a
 * clone of a clone or the 3-way merge of the file at staging never meet a
 * stale name. Every other byte of the file stays as it was.
 */

export interface FstabEntry {
  /** 0-based line number in the file. */
  line: number;
  spec: string;
  /** Mount point, with fstab's octal escapes (`\040`) undone. */
  file: string;
  vfstype: string;
  options: string[];
}

/** One line split into fields and the whitespace around them, so it can be put back together byte for byte. */
interface SplitLine {
  /** [lead, field1, sep1, field2, sep2, ...rest]: alternating whitespace and fields. */
  parts: string[];
  fields: string[];
}

function splitLine(line: string): SplitLine | null {
  const trimmed = line.trimStart();
  if (trimmed === '' || trimmed.startsWith('#')) return null;
  const parts = line.split(/(\s+)/);
  // split with a capture group alternates field, space, field ...; a leading blank gives an empty first field.
  const fields = parts.filter((_, i) => i % 2 === 0).filter((f) => f !== '');
  if (fields.length < 4) return null;
  return { parts, fields };
}

const unescapeField = (f: string): string => f.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));

/** The mount lines of an fstab; comments, blank and malformed lines are not entries. */
export function parseFstab(text: string): FstabEntry[] {
  const out: FstabEntry[] = [];
  text.split('\n').forEach((raw, line) => {
    const s = splitLine(raw.replace(/\r$/, ''));
    if (s === null) return;
    const [spec, file, vfstype, options] = s.fields as [string, string, string, string];
    out.push({ line, spec, file: unescapeField(file), vfstype, options: options.split(',') });
  });
  return out;
}

/** A Btrfs mount option that selects the subvolume. */
export const isSubvolumeOption = (o: string): boolean => o.startsWith('subvol=') || o.startsWith('subvolid=');

export interface RootRewrite {
  text: string;
  changed: boolean;
  /** The options taken out (`subvol=@rootfs`), for the log. */
  removed: string[];
}

/**
 * The fstab with `subvol=` and `subvolid=` taken out of every Btrfs line for
 * `/` (an empty option list becomes `defaults`), every other byte unchanged.
 */
export function rootWithoutSubvolume(text: string): RootRewrite {
  const removed: string[] = [];
  const lines = text.split('\n').map((raw) => {
    const cr = raw.endsWith('\r') ? '\r' : '';
    const body = cr ? raw.slice(0, -1) : raw;
    const s = splitLine(body);
    if (s === null) return raw;
    const [, file, vfstype, options] = s.fields as [string, string, string, string];
    if (unescapeField(file) !== '/' || vfstype !== 'btrfs') return raw;
    const opts = options.split(',');
    const kept = opts.filter((o) => !isSubvolumeOption(o));
    if (kept.length === opts.length) return raw;
    removed.push(...opts.filter(isSubvolumeOption));
    // The options are the fourth field: parts holds [field, space, field, space, ...] (a leading blank adds an empty field first).
    const first = s.parts[0] === '' ? 2 : 0;
    const parts = [...s.parts];
    parts[first + 6] = kept.length === 0 ? 'defaults' : kept.join(',');
    return parts.join('') + cr;
  });
  return { text: lines.join('\n'), changed: removed.length > 0, removed };
}
