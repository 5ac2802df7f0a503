/**
 * `btrfs receive --dump` of a `btrfs send --no-data -p PARENT SNAPSHOT`
 * stream, read as the list of paths that changed between the two.
 *
 * Shape (btrfs-progs 6.2, read as latin1): one command per line, its name
 * padded to 16 columns, then a path, then `key=value` arguments.
 *
 *   snapshot        ./snap          uuid=... transid=8 parent_uuid=... parent_transid=7
 *   mkfile          ./snap/o276-8-0
 *   rename          ./snap/o276-8-0 dest=./snap/etc/new
 *   link            ./snap/etc/a-link dest=etc/a
 *   set_xattr       ./snap/etc/x    name=user.k data=v len=1
 *   utimes          ./snap/         atime=... mtime=... ctime=...
 *
 * Paths (and the `dest=` of rename, link and symlink) are escaped C-style:
 * `\a \b \e \f \n \r \t \v`, `\ ` for a space, `\\`, and `\ooo` (three octal
 * digits) for any other unprintable byte, bytes of 0x80 and up included. So
 * a path never holds a raw space or newline. Paths start with the stream's
 * subvolume (the first line); `link`'s dest is relative to it instead.
 *
 * `set_xattr` prints the attribute's name and value raw: a value with a
 * newline continues on the next lines, up to the ` len=N` that ends the
 * command. Those lines are skipped. Should a value contain text that looks
 * like the end of the command, the lines after it are read as commands: they
 * can only add paths (harmless: each is looked up again) or fail to parse
 * (the caller falls back to a walk); they cannot hide a real command.
 */
import { SysprimeError } from '../../errors.js';
import type { PathChange } from '../types.js';

const SIMPLE_ESCAPES: Record<string, string> = { a: '\x07', b: '\b', e: '\x1b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', ' ': ' ', '\\': '\\' };

function dumpError(what: string, line: string): SysprimeError {
  return new SysprimeError('BACKEND', `cannot read \`btrfs receive --dump\`: ${what}: ${JSON.stringify(line.slice(0, 200))}`, {
    hint: 'this btrfs-progs version prints something sysprime does not know; drift walks the tree instead',
  });
}

/** Undo print_path_escaped(): the byte string (latin1) of an escaped path. */
export function unescapeDumpPath(text: string): string {
  if (text.indexOf('\\') < 0) return text;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const next = text[i + 1];
    if (next !== undefined && /[0-7]/.test(next)) {
      const oct = text.slice(i + 1, i + 4);
      if (!/^[0-7]{3}$/.test(oct)) throw dumpError('bad octal escape', text);
      out += String.fromCharCode(parseInt(oct, 8) & 0xff);
      i += 3;
      continue;
    }
    const plain = next === undefined ? undefined : SIMPLE_ESCAPES[next];
    if (plain === undefined) throw dumpError('unknown escape', text);
    out += plain;
    i++;
  }
  return out;
}

/** The escaped token at `from`: up to the first unescaped space, or the end. */
function token(line: string, from: number): { text: string; end: number } {
  let i = from;
  while (i < line.length && line[i] !== ' ') i += line[i] === '\\' ? 2 : 1;
  return { text: line.slice(from, Math.min(i, line.length)), end: i };
}

const MODIFY = new Set([
  'write', 'clone', 'truncate', 'chmod', 'chown', 'utimes', 'set_xattr', 'remove_xattr', 'update_extent',
  // Stream v2 commands (btrfs-progs 6.0+ with --proto 2): contents or attributes of the path itself.
  'fallocate', 'fileattr', 'encoded_write', 'enable_verity',
]);
const CREATE = new Set(['mkfile', 'mkdir', 'mknod', 'mkfifo', 'mksock', 'symlink', 'link']);
const REMOVE = new Set(['unlink', 'rmdir']);

/**
 * The changes a dump lists, in stream order. Paths are relative to the sent
 * subvolume ('/' for its root); temporary names (`o257-8-0`) are kept as they
 * are: they exist only between two commands of the stream, so looking them up
 * afterwards finds nothing.
 */
export function parseSendDump(text: string): PathChange[] {
  const lines = text.split('\n');
  let prefix: string | undefined;
  const out: PathChange[] = [];
  const relative = (escaped: string, line: string): string => {
    const p = unescapeDumpPath(escaped);
    if (prefix === undefined) throw dumpError('a command before the subvolume line', line);
    if (p === prefix || p === `${prefix}/`) return '/';
    if (!p.startsWith(`${prefix}/`)) throw dumpError(`a path outside ${prefix}`, line);
    return normalise(p.slice(prefix.length));
  };
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!;
    if (line === '') continue;
    const sp = line.indexOf(' ');
    if (sp <= 0) throw dumpError('no command', line);
    const cmd = line.slice(0, sp);
    let at = sp;
    while (at < line.length && line[at] === ' ') at++;
    const path = token(line, at);
    if (path.text === '') throw dumpError('no path', line);
    const args = line.slice(path.end);
    if (cmd === 'snapshot' || cmd === 'subvol') {
      if (prefix !== undefined) throw dumpError('a second subvolume in one stream', line);
      prefix = unescapeDumpPath(path.text);
      continue;
    }
    if (cmd === 'set_xattr') {
      // The raw value may go on over several lines; the command ends with ` len=N`.
      let end = n;
      while (!/ len=\d+$/.test(lines[end]!) && end + 1 < lines.length) end++;
      if (!/ len=\d+$/.test(lines[end]!)) throw dumpError('set_xattr without its len=', line);
      n = end;
    }
    const p = relative(path.text, line);
    if (MODIFY.has(cmd)) out.push({ kind: 'modified', path: p });
    else if (REMOVE.has(cmd)) out.push({ kind: 'removed', path: p });
    else if (CREATE.has(cmd)) {
      out.push({ kind: 'created', path: p });
      if (cmd === 'link') {
        // The inode linked to gains a link: its other names are looked at again.
        const dest = /^\s+dest=(.*)$/.exec(args);
        if (!dest) throw dumpError('link without dest=', line);
        out.push({ kind: 'modified', path: normalise('/' + unescapeDumpPath(token(dest[1]!, 0).text)) });
      }
    } else if (cmd === 'rename') {
      const dest = /^\s+dest=(.*)$/.exec(args);
      if (!dest) throw dumpError('rename without dest=', line);
      out.push({ kind: 'renamed', path: p, to: relative(token(dest[1]!, 0).text, line) });
    } else throw dumpError(`unknown command ${cmd}`, line);
  }
  if (prefix === undefined && out.length === 0 && text.trim() !== '') throw dumpError('no subvolume line', text);
  return out;
}

/** '/a/b' form: one leading slash, no empty, '.' or trailing components. */
function normalise(p: string): string {
  const parts = p.split('/').filter((c) => c !== '' && c !== '.');
  return '/' + parts.join('/');
}
