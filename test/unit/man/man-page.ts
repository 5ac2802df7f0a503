/**
 * Reads the structure the man pages share: in a section (COMMANDS, OPTIONS),
 * the items of its top-level list, each with the flags of the items of the
 * list nested in it. Enough mdoc to check a page against the program.
 */
import { readFileSync } from 'node:fs';

export interface ManItem {
  /** The words after `.It Cm` (a verb, "bart create"), or the flags for OPTIONS. */
  key: string;
  /** The `.It` line itself. */
  head: string;
  /** Flags documented as `.It Fl ...` in the list nested in this item. */
  flags: Set<string>;
  /** Every line of the item, its nested lists included. */
  body: string[];
}

export function readManPage(name: string): string {
  return readFileSync(new URL(`../../../../man/${name}`, import.meta.url), 'utf8');
}

/** `.It Fl c , Fl -config Ar file` → ["-c", "--config"]. */
export function flagsOf(line: string): string[] {
  return [...line.matchAll(/\bFl (\S+)/g)].map((m) => `-${m[1]}`);
}

/** Words after `Cm` up to the next macro: `.It Cm bart compare Oo Ar x` → "bart compare". */
function commandOf(line: string): string | undefined {
  const m = /^\.It Cm (.*)$/.exec(line);
  if (!m) return undefined;
  const words: string[] = [];
  for (const w of m[1]!.split(/\s+/)) {
    if (/^[A-Z][a-z]$/.test(w)) break;
    words.push(w);
  }
  return words.join(' ');
}

/** The top-level items of the first list in section `section`. */
export function itemsOf(page: string, section: string): ManItem[] {
  const items: ManItem[] = [];
  let inSection = false;
  let depth = 0;
  let current: ManItem | undefined;
  for (const line of page.split('\n')) {
    if (line.startsWith('.Sh ')) {
      inSection = line.slice(4).trim() === section;
      depth = 0;
      current = undefined;
      continue;
    }
    if (!inSection || line.startsWith('.\\"')) continue;
    if (line.startsWith('.Bl ')) depth++;
    else if (line.startsWith('.El')) depth--;
    else if (line.startsWith('.It ') && depth === 1) {
      const key = commandOf(line) ?? flagsOf(line).join(' ');
      current = { key, head: line, flags: new Set(section === 'OPTIONS' ? flagsOf(line) : []), body: [] };
      items.push(current);
    } else if (line.startsWith('.It ') && depth === 2 && current) {
      for (const f of flagsOf(line)) current.flags.add(f);
    }
    current?.body.push(line);
  }
  return items;
}
