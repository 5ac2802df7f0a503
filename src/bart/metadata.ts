/**
 * ACLs and extended attributes. Node has no xattr API, so both come from
 * the acl/attr tools, run once per manifest over the list of paths the walk
 * found (never a second walk of their own, which would cross mounts):
 *
 * - ACLs: `getfacl -s` reads the path list on stdin and prints only files
 *   whose ACL says more than their mode, so the common case costs one
 *   getxattr per file in another process, in parallel with hashing.
 * - xattrs: `getfattr -d -m -` with the paths as arguments, in batches;
 *   only when a rule checks `xattr`.
 */
import { run } from '../process/run.js';
import { hashBytes } from './hash.js';
import type { HashAlgorithm } from './types.js';

/** Longer values are recorded by digest, shorter ones in full (enough to replay them). */
export const XATTR_INLINE_MAX = 128;

const C_LOCALE = { LC_ALL: 'C' };

/** Undo the `\ooo` quoting getfacl and getfattr apply to names. */
function unquoteTool(s: string): string {
  return s.indexOf('\\') < 0 ? s : s.replace(/\\([0-7]{3})|\\\\/g, (m, o: string | undefined) => (o === undefined ? '\\' : String.fromCharCode(parseInt(o, 8) & 0xff)));
}

/** Split tool output into `# file:` blocks: absolute path (byte string) → body lines. */
function blocks(out: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of out.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = [];
      map.set(unquoteTool(line.slice(8)), current);
    } else if (current !== undefined && line !== '' && !line.startsWith('#')) current.push(line);
  }
  return map;
}

/**
 * Extended ACLs of the given absolute paths (byte strings), as short text
 * (`user::rw-,user:1000:r--,group::r--,mask::r--,other::r--`, default
 * entries prefixed `default:`). Paths with only a base ACL are absent.
 */
export async function readAcls(paths: readonly string[]): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  if (paths.length === 0) return result;
  const plain = paths.filter((p) => !p.includes('\n'));
  const odd = paths.filter((p) => p.includes('\n'));
  const outputs: string[] = [];
  if (plain.length > 0) {
    const input = Buffer.from(plain.join('\n') + '\n', 'latin1');
    const r = await run('getfacl', ['-s', '-P', '-n', '-p', '-'], { input, allowFailure: true, binary: true, env: C_LOCALE });
    outputs.push((r.stdoutBuffer ?? Buffer.alloc(0)).toString('latin1'));
  }
  for (const p of odd) {
    // A name with a newline cannot go through the line-based list.
    const r = await run('getfacl', ['-s', '-P', '-n', '-p', '--', Buffer.from(p, 'latin1').toString('utf8')], { allowFailure: true, binary: true, env: C_LOCALE });
    outputs.push((r.stdoutBuffer ?? Buffer.alloc(0)).toString('latin1'));
  }
  for (const out of outputs) {
    for (const [path, lines] of blocks(out)) {
      const entries = lines.map((l) => l.replace(/\s*#.*$/, '').trim()).filter((l) => l !== '');
      if (entries.length > 0) result.set(path, entries.join(','));
    }
  }
  return result;
}

const XATTR_BATCH = 500;

/** Extended attributes (POSIX ACL ones excluded: they are the acl field). */
export async function readXattrs(paths: readonly string[], alg: HashAlgorithm): Promise<Map<string, Record<string, string>>> {
  const result = new Map<string, Record<string, string>>();
  for (let i = 0; i < paths.length; i += XATTR_BATCH) {
    // Arguments go to spawn as UTF-8 strings; names that are not valid UTF-8 are rare enough to accept the loss.
    const args = paths.slice(i, i + XATTR_BATCH).map((p) => Buffer.from(p, 'latin1').toString('utf8'));
    const r = await run('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', '--', ...args], { allowFailure: true, binary: true, env: C_LOCALE });
    for (const [path, lines] of blocks((r.stdoutBuffer ?? Buffer.alloc(0)).toString('latin1'))) {
      const attrs: Record<string, string> = {};
      for (const l of lines) {
        const eq = l.indexOf('=');
        const name = unquoteTool(eq < 0 ? l : l.slice(0, eq));
        if (name.startsWith('system.posix_acl_')) continue;
        const raw = eq < 0 ? '' : l.slice(eq + 1).replace(/^0x/, '').replace(/^""$/, '');
        const bytes = Buffer.from(raw, 'hex');
        attrs[name] = bytes.length <= XATTR_INLINE_MAX ? '0x' + bytes.toString('hex') : '#' + hashBytes(alg, bytes);
      }
      if (Object.keys(attrs).length > 0) result.set(path, attrs);
    }
  }
  return result;
}
