/**
 * Reading and writing extended attributes (file capabilities, SELinux
 * labels, user attributes, and POSIX ACLs, which the kernel keeps as the
 * `system.posix_acl_access` and `system.posix_acl_default` attributes).
 *
 * Always through `/proc/<pid>/fd/<fd>` of an O_PATH handle opened without
 * following links: the kernel resolves that to exactly the inode we hold
 * (a symbolic link itself included), so no name is looked up again and no
 * name that is not UTF-8 has to pass through a command line.
 *
 * ACLs are copied as the raw attribute value rather than as text through
 * setfacl: the binary form carries numeric ids, so it means the same in the
 * target whatever the host's passwd says about names.
 */
import { run } from '../process/run.js';

/** A path inside a file descriptor a child process can use. */
function childFdPath(fd: number): string {
  return `/proc/${process.pid}/fd/${fd}`;
}

const ACL_NAMES = ['system.posix_acl_access', 'system.posix_acl_default'] as const;

export function isAclName(name: string): boolean {
  return (ACL_NAMES as readonly string[]).includes(name);
}

/** Name → value. */
export type Xattrs = Map<string, Buffer>;

const C_LOCALE = { LC_ALL: 'C' };

function unquote(s: string): string {
  return s.indexOf('\\') < 0 ? s : s.replace(/\\([0-7]{3})|\\\\/g, (_m, o: string | undefined) => (o === undefined ? '\\' : String.fromCharCode(parseInt(o, 8) & 0xff)));
}

function quote(name: string): string {
  // getfattr's quoting, which setfattr --restore undoes: octal for anything outside printable ASCII, and for '=' and '\'.
  let out = '';
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    out += c <= 0x20 || c >= 0x7f || c === 0x3d || c === 0x5c ? '\\' + c.toString(8).padStart(3, '0') : name[i];
  }
  return out;
}

/** All extended attributes of the inode behind an O_PATH descriptor. */
export async function readXattrsOf(fd: number): Promise<Xattrs> {
  return (await readXattrsOfMany([fd])).get(fd)!;
}

/**
 * The attributes of many inodes in one `getfattr` (a process per file costs
 * far more than the reading). The paths are `/proc/<pid>/fd/<fd>` of
 * handles already open, so every name is ASCII and every inode exactly the
 * one held. getfattr prints a section only for inodes that have attributes;
 * the others, and inodes on filesystems without xattrs, get an empty map.
 */
export async function readXattrsOfMany(fds: readonly number[]): Promise<Map<number, Xattrs>> {
  const out = new Map<number, Xattrs>(fds.map((fd) => [fd, new Map()]));
  if (fds.length === 0) return out;
  const byPath = new Map(fds.map((fd) => [childFdPath(fd), fd]));
  const r = await run('getfattr', ['-d', '-m', '-', '-e', 'hex', '--absolute-names', ...byPath.keys()], { allowFailure: true, binary: true, env: C_LOCALE });
  let current: Xattrs | undefined;
  const text = (r.stdoutBuffer ?? Buffer.alloc(0)).toString('latin1');
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      const fd = byPath.get(line.slice('# file: '.length));
      current = fd === undefined ? undefined : out.get(fd);
      continue;
    }
    if (line === '' || line.startsWith('#') || current === undefined) continue;
    const eq = line.indexOf('=');
    const name = unquote(eq < 0 ? line : line.slice(0, eq));
    const raw = eq < 0 ? '' : line.slice(eq + 1);
    current.set(name, raw.startsWith('0x') ? Buffer.from(raw.slice(2), 'hex') : raw === '""' ? Buffer.alloc(0) : Buffer.from(raw.replace(/^"|"$/g, ''), 'latin1'));
  }
  return out;
}

/**
 * Whether a new inode made in a directory with these attributes can start
 * with attributes of its own: ACL inheritance (a default ACL) and security
 * modules' labels (SELinux, Smack, IMA/EVM, all `security.*`) are the only
 * sources, and a directory on a labelled filesystem carries a label itself.
 */
export function childrenInherit(parent: Xattrs): boolean {
  for (const name of parent.keys()) if (name === 'system.posix_acl_default' || name.startsWith('security.')) return true;
  return false;
}

export function xattrsEqual(a: Xattrs, b: Xattrs): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w === undefined || !w.equals(v)) return false;
  }
  return true;
}

/**
 * Make the inode's attributes exactly `want`: remove the others, set the
 * differing ones. `current` is what it has now. ACLs are written before the
 * rest and `security.capability` last (the kernel drops it on chown, so the
 * caller sets owners first).
 */
export async function writeXattrs(fd: number, want: Xattrs, current: Xattrs): Promise<boolean> {
  const path = childFdPath(fd);
  let changed = false;
  for (const name of current.keys()) {
    if (want.has(name)) continue;
    await run('setfattr', ['-x', name, path], { env: C_LOCALE });
    changed = true;
  }
  const order = [...want.keys()].sort((x, y) => rank(x) - rank(y) || (x < y ? -1 : x > y ? 1 : 0));
  const lines: string[] = [];
  for (const name of order) {
    const v = want.get(name)!;
    const cur = current.get(name);
    if (cur !== undefined && cur.equals(v)) continue;
    lines.push(v.length === 0 ? `${quote(name)}=""` : `${quote(name)}=0x${v.toString('hex')}`);
  }
  if (lines.length > 0) {
    // One setfattr for all of them: a getfattr dump on stdin.
    const dump = `# file: ${path}\n${lines.join('\n')}\n\n`;
    await run('setfattr', ['--restore=-'], { input: Buffer.from(dump, 'latin1'), env: C_LOCALE });
    changed = true;
  }
  return changed;
}

function rank(name: string): number {
  if (isAclName(name)) return 0;
  if (name === 'security.capability') return 2;
  return 1;
}
