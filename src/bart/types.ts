/**
 * The BART data model shared by create, compare, drift and reintegration.
 *
 * Paths are *byte strings*: JavaScript strings whose every character is one
 * byte (0-255) of the on-disk name, i.e. the name decoded as latin1. That
 * round-trips names that are not valid UTF-8, keeps `<` on two paths equal to
 * C (byte) collation, and costs nothing for ASCII names. Use `toFsPath()` to
 * hand one to `node:fs` and `displayPath()` to show one to a person.
 */

/** O: a Solaris door, read from Solaris manifests (Linux has none). */
export type EntryType = 'F' | 'D' | 'L' | 'P' | 'S' | 'B' | 'C' | 'O';

export type HashAlgorithm = 'xxh64' | 'sha256' | 'md5';

export const HASH_ALGORITHMS: readonly HashAlgorithm[] = ['xxh64', 'sha256', 'md5'];

/** What a manifest's `! Hash` line may name: what sysprime writes, and what Solaris 11 can write too. */
export type ManifestHash = HashAlgorithm | 'sha1' | 'sha384' | 'sha512';

/** What the incremental path needs to trust a previous hash; never in the Solaris text. */
export interface StatIndex {
  dev: number;
  ino: number;
  /** st_mtime and st_ctime in milliseconds with the sub-millisecond fraction node reports. */
  mtimeMs: number;
  ctimeMs: number;
}

export interface ManifestEntry {
  /** Absolute path below the manifest's root, as a byte string ("/etc/passwd"). */
  path: string;
  type: EntryType;
  size: number;
  /** Full st_mode (file type bits included), written in octal. */
  mode: number;
  /** Extended POSIX ACL in short text form, or '-' when the mode says it all. */
  acl: string;
  /** Modification time in seconds since the epoch, written in hex. */
  mtime: number;
  uid: number;
  gid: number;
  /** F: hex digest, or '-' when not computed or unreadable. */
  contents?: string;
  /** L: the link's target, a byte string. */
  dest?: string;
  /** B and C: st_rdev, written in hex (absent in Solaris 10 manifests before 2010). */
  devnode?: number;
  /** Extended attributes (name → '0x<hex value>' or '#<digest>' for long values); absent when not collected. */
  xattrs?: Record<string, string>;
  /** Side index for the incremental path. */
  stat?: StatIndex;
}

export interface ManifestHeader {
  /** '1.0' (md5, as old Solaris writes) or '1.1' (with a Hash line). */
  version: string;
  hash: ManifestHash;
  /** The -R root the paths are relative to; '/' when none. */
  root: string;
  /** The date line as written (date(1)-like local time). */
  date: string;
  /** Extended attributes were collected for every entry (`! XATTRS`): an entry without any has none. */
  xattrs?: boolean;
}

export interface Manifest {
  header: ManifestHeader;
  /** Sorted by encoded path in C collation, as the text lists them. */
  entries: ManifestEntry[];
}

/** Attribute keywords of bart_rules(4), plus our `xattr`. */
export type AttributeName =
  | 'contents'
  | 'type'
  | 'size'
  | 'mode'
  | 'uid'
  | 'gid'
  | 'acl'
  | 'dest'
  | 'devnode'
  | 'mtime'
  | 'lnmtime'
  | 'dirmtime'
  | 'xattr';

export type DifferenceKind = 'add' | 'delete' | 'modify';

export interface AttributeDifference {
  /** 'mtime' | 'dirmtime' | 'lnmtime' follow the control entry's type, as Solaris names them. */
  name: AttributeName;
  /** For name 'xattr': which attribute. */
  xattr?: string;
  /** Values as written in the manifest text ('-' when absent). */
  control: string;
  test: string;
}

export interface Difference {
  path: string;
  kind: DifferenceKind;
  /** The control entry (delete, modify) and the test entry (add, modify). */
  control?: ManifestEntry;
  test?: ManifestEntry;
  attributes: AttributeDifference[];
}

export function toFsPath(path: string): string | Buffer {
  // ASCII byte strings are valid UTF-8 as they are; others must go as bytes.
  // eslint-disable-next-line no-control-regex
  return /[^\x00-\x7f]/.test(path) ? Buffer.from(path, 'latin1') : path;
}

export function fromFsName(name: Buffer): string {
  return name.toString('latin1');
}

const CONTROL_NAMES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** A control character as an escape: `\n`, `\r`, `\t`, else `\xNN` (`\u0085` for C1 controls, which are characters here, not bytes). */
function escapeControl(c: string): string {
  const code = c.charCodeAt(0);
  return CONTROL_NAMES[c] ?? (code < 0x80 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`);
}

/** Text for one line of a terminal (a detail that quotes a path): its control characters escaped. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f\u0080-\u009f]/g, escapeControl);
}

/**
 * Best effort for people: valid UTF-8 shown as such, other bytes escaped,
 * and control characters (C0, DEL, C1) escaped so that a name can never
 * move the cursor, clear a line or hide itself on a terminal
 * (`backdoor\r\e[2Kmodified  motd`).
 */
export function displayPath(path: string): string {
  let shown = path;
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(path)) {
    const bytes = Buffer.from(path, 'latin1');
    const text = bytes.toString('utf8');
    shown = Buffer.from(text, 'utf8').equals(bytes) ? text : path.replace(/[\x80-\xff]/g, (c) => `\\x${c.charCodeAt(0).toString(16)}`);
  }
  return printable(shown);
}
