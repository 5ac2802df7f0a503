/**
 * The root line of a Btrfs environment's fstab(5) without its subvolume
 * selection, pure; the lines are cut into fields by `src/os/mounts.ts`.
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
import { splitFstabLine, unescapeMountField } from '../../os/mounts.js';

/** A Btrfs mount option that selects the subvolume. */
const isSubvolumeOption = (o: string): boolean => o.startsWith('subvol=') || o.startsWith('subvolid=');

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
    const s = splitFstabLine(body);
    if (s === null || s.fields.length < 4) return raw;
    const [, file, vfstype, options] = s.fields as [string, string, string, string];
    if (unescapeMountField(file) !== '/' || vfstype !== 'btrfs') return raw;
    const opts = options.split(',');
    const kept = opts.filter((o) => !isSubvolumeOption(o));
    if (kept.length === opts.length) return raw;
    removed.push(...opts.filter(isSubvolumeOption));
    const parts = [...s.parts];
    parts[s.at[3]!] = kept.length === 0 ? 'defaults' : kept.join(',');
    return parts.join('') + cr;
  });
  return { text: lines.join('\n'), changed: removed.length > 0, removed };
}
