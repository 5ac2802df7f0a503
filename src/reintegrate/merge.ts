/**
 * Line-level three-way merge of text files (diff3, through node-diff3).
 *
 * Lines keep their terminators as part of the line, so a missing final
 * newline is an ordinary difference of the last line and the merge writes
 * back exactly the bytes each side chose. When the three versions do not
 * agree on line endings (one side converted CRLF to LF), they are merged
 * as LF and written back in the admin's style: the admin's choice wins.
 * Anything that is not valid UTF-8 or holds a NUL byte is binary and never
 * merged; nor is a text of more than MERGE_MAX_LINES lines (below).
 */
import { isUtf8 } from 'node:buffer';
import { diff3Merge } from 'node-diff3';

export type MergeOutcome =
  | { kind: 'merged'; content: Buffer; /** true when one side's version was taken whole. */ trivial: boolean }
  | { kind: 'conflict'; /** Overlapping regions, as line ranges of the admin's version (1-based). */ regions: { oursStart: number; oursEnd: number }[] }
  | { kind: 'binary'; which: ('base' | 'ours' | 'theirs')[] }
  | { kind: 'too-long'; lines: number };

/**
 * diff3 here takes time quadratic in the number of lines, and its recursion
 * overflows the stack somewhere past 120,000 (measured: 40,000 distinct
 * lines merge in 3 s, 120,000 in 30 s, 160,000 fail after 45 s). A longer
 * text is not merged: the caller keeps both versions as a conflict. The
 * lines are counted in the bytes, before anything is decoded or split: 16 MiB
 * of short lines split into strings would cost hundreds of MiB of memory
 * only to be refused.
 */
export const MERGE_MAX_LINES = 50_000;

/** Valid UTF-8 without a NUL, checked in place (no string is made of it). */
export function isBinary(content: Buffer): boolean {
  return content.includes(0) || !isUtf8(content);
}

/** The lines splitLines would make of these bytes, counted without decoding them: line feeds, and a last line without one. */
export function countLines(content: Buffer): number {
  let n = 0;
  for (let i = content.indexOf(0x0a); i >= 0; i = content.indexOf(0x0a, i + 1)) n++;
  return content.length > 0 && content[content.length - 1] !== 0x0a ? n + 1 : n;
}

type Eol = 'lf' | 'crlf';

/** 'crlf' when every line feed has a carriage return before it. */
function eolOf(text: string): Eol | 'none' {
  const lf = (text.match(/\n/g) ?? []).length;
  if (lf === 0) return 'none';
  const crlf = (text.match(/\r\n/g) ?? []).length;
  return crlf === lf ? 'crlf' : 'lf';
}

/** Lines with their terminators; the last one may have none. */
export function splitLines(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', start)) {
    out.push(text.slice(start, i + 1));
    start = i + 1;
  }
  if (start < text.length) out.push(text.slice(start));
  return out;
}

export function mergeText(base: Buffer, ours: Buffer, theirs: Buffer): MergeOutcome {
  // Identical sides need no merge, whatever they hold and however long.
  if (ours.equals(theirs) || theirs.equals(base)) return { kind: 'merged', content: ours, trivial: true };
  if (ours.equals(base)) return { kind: 'merged', content: theirs, trivial: true };
  const binary = (
    [
      ['base', base],
      ['ours', ours],
      ['theirs', theirs],
    ] as const
  )
    .filter(([, b]) => isBinary(b))
    .map(([w]) => w);
  if (binary.length > 0) return { kind: 'binary', which: binary };
  const longest = Math.max(countLines(ours), countLines(base), countLines(theirs));
  if (longest > MERGE_MAX_LINES) return { kind: 'too-long', lines: longest };

  let [b, o, t] = [base, ours, theirs].map((x) => x.toString('utf8')) as [string, string, string];
  const styles = new Set([eolOf(b), eolOf(o), eolOf(t)].filter((e) => e !== 'none'));
  const oursStyle = eolOf(o);
  const normalise = styles.size > 1;
  if (normalise) [b, o, t] = [b, o, t].map((x) => x.replace(/\r\n/g, '\n')) as [string, string, string];

  const [ol, bl, tl] = [splitLines(o), splitLines(b), splitLines(t)];
  const regions = diff3Merge(ol, bl, tl, { excludeFalseConflicts: true });
  const lines: string[] = [];
  const conflicts: { oursStart: number; oursEnd: number }[] = [];
  for (const r of regions) {
    if (r.ok) lines.push(...r.ok);
    else if (r.conflict) {
      conflicts.push({ oursStart: r.conflict.aIndex + 1, oursEnd: r.conflict.aIndex + r.conflict.a.length });
    }
  }
  if (conflicts.length > 0) return { kind: 'conflict', regions: conflicts };
  let text = lines.join('');
  if (normalise && oursStyle === 'crlf') text = text.replace(/\n/g, '\r\n');
  return { kind: 'merged', content: Buffer.from(text, 'utf8'), trivial: false };
}
