/**
 * BART's quoting of names: a byte that would break a whitespace-separated
 * line or be read as a glob (`*`, `?`, `[`, `\`) is written as `\ooo`.
 * Solaris leaves 8-bit bytes raw; we escape every byte outside printable
 * ASCII too, so a manifest is plain ASCII whatever the file names are.
 */

// Characters written as they are: printable ASCII minus space and the glob/escape set.
// eslint-disable-next-line no-control-regex
const NEEDS_QUOTING = /[^\x21-\x29\x2b-\x3e\x40-\x5a\x5d-\x7e]/;

/** Encode a byte-string path (or link target) for a manifest line. */
export function encodeName(name: string): string {
  if (!NEEDS_QUOTING.test(name)) return name;
  let out = '';
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c > 0x20 && c < 0x7f && c !== 0x2a && c !== 0x3f && c !== 0x5b && c !== 0x5c) out += name[i];
    else out += '\\' + (c & 0xff).toString(8).padStart(3, '0');
  }
  return out;
}

/**
 * Decode a manifest token back to a byte string. `\ooo` is a byte; a
 * backslash before any other character stands for that character (how the
 * man pages write `\*`).
 */
export function decodeName(token: string): string {
  if (token.indexOf('\\') < 0) return token;
  let out = '';
  for (let i = 0; i < token.length; i++) {
    const ch = token[i]!;
    if (ch !== '\\' || i === token.length - 1) {
      out += ch;
      continue;
    }
    const oct = token.slice(i + 1, i + 4);
    if (/^[0-7]{3}$/.test(oct)) {
      out += String.fromCharCode(parseInt(oct, 8) & 0xff);
      i += 3;
    } else {
      out += token[i + 1];
      i += 1;
    }
  }
  return out;
}
