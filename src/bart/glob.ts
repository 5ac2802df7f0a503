/**
 * fnmatch(3) with FNM_PATHNAME over byte strings, compiled once to a RegExp:
 * `*` and `?` never match `/`, `[...]` classes with `!` or `^`, and a
 * backslash quotes the next character or, as `\ooo`, one byte in octal.
 */

const REGEX_SPECIAL = /[.*+?^${}()|[\]\\/-]/g;

function quote(ch: string): string {
  return ch.replace(REGEX_SPECIAL, '\\$&');
}

/** Read an escape at `i` (pointing at the backslash): the literal char and the next index. */
function readEscape(glob: string, i: number): [string, number] {
  const oct = glob.slice(i + 1, i + 4);
  if (/^[0-7]{3}$/.test(oct)) return [String.fromCharCode(parseInt(oct, 8) & 0xff), i + 4];
  if (i + 1 < glob.length) return [glob[i + 1]!, i + 2];
  return ['\\', i + 1];
}

export function hasGlob(glob: string): boolean {
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '\\') {
      i = readEscape(glob, i)[1] - 1;
      continue;
    }
    if (c === '*' || c === '?' || c === '[') return true;
  }
  return false;
}

/** The literal text a pattern without wildcards stands for. */
export function unquoteGlob(glob: string): string {
  let out = '';
  for (let i = 0; i < glob.length; ) {
    if (glob[i] === '\\') {
      const [ch, next] = readEscape(glob, i);
      out += ch;
      i = next;
    } else out += glob[i++];
  }
  return out;
}

export function globToRegExp(glob: string): RegExp {
  let re = '^';
  for (let i = 0; i < glob.length; ) {
    const c = glob[i]!;
    if (c === '\\') {
      const [ch, next] = readEscape(glob, i);
      re += quote(ch);
      i = next;
    } else if (c === '*') {
      re += '[^/]*';
      i++;
    } else if (c === '?') {
      re += '[^/]';
      i++;
    } else if (c === '[') {
      const close = findClassEnd(glob, i);
      if (close < 0) {
        re += '\\[';
        i++;
        continue;
      }
      let j = i + 1;
      let cls = '[';
      if (glob[j] === '!' || glob[j] === '^') {
        cls += '^/';
        j++;
      }
      for (; j < close; ) {
        if (glob[j] === '\\') {
          const [ch, next] = readEscape(glob, j);
          cls += quote(ch);
          j = next;
        } else if (glob[j] === '-' && j > i + 1 && j + 1 < close) {
          cls += '-';
          j++;
        } else cls += quote(glob[j++]!);
      }
      re += cls + ']';
      i = close + 1;
    } else {
      re += quote(c);
      i++;
    }
  }
  return new RegExp(re + '$');
}

function findClassEnd(glob: string, open: number): number {
  let j = open + 1;
  if (glob[j] === '!' || glob[j] === '^') j++;
  if (glob[j] === ']') j++; // a leading ']' is a member
  for (; j < glob.length; j++) {
    if (glob[j] === '\\') j++;
    else if (glob[j] === ']') return j;
  }
  return -1;
}
