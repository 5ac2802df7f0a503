/**
 * Comparing two manifests: a pure merge over both entry lists in encoded
 * C order, the order bart create writes and Solaris' compare reads. Rules
 * are consulted only for entries that differ, so identical trees cost one
 * pass of field comparisons.
 */
import { encodeName } from './escape.js';
import { formatMtime, lastField } from './format.js';
import { ATTR, DEFAULT_FLAGS, EVERYTHING, keywordFlags, ruleFor, type Rules } from './rules.js';
import type { AttributeDifference, AttributeName, Difference, Manifest, ManifestEntry } from './types.js';
import { SysprimeError } from '../errors.js';

export interface CompareOptions {
  /** Attributes never reported, whatever the rules say (compare's -i). */
  ignore?: readonly string[] | number;
}

function ignoreMask(ignore: CompareOptions['ignore']): number {
  if (ignore === undefined) return 0;
  if (typeof ignore === 'number') return ignore;
  let mask = 0;
  for (const w of ignore) {
    const f = keywordFlags(w);
    if (f === undefined) throw new SysprimeError('USAGE', `unknown attribute '${w}' to ignore`, { hint: 'use bart_rules(4) keywords: contents, size, mode, acl, mtime, ...' });
    mask |= w === 'all' ? EVERYTHING : f;
  }
  return mask;
}

interface Keyed {
  keys: string[];
  entries: ManifestEntry[];
}

function keyed(m: Manifest): Keyed {
  const entries = m.entries;
  const keys = new Array<string>(entries.length);
  let sorted = true;
  for (let i = 0; i < entries.length; i++) {
    keys[i] = encodeName(entries[i]!.path);
    if (i > 0 && keys[i]! < keys[i - 1]!) sorted = false;
  }
  if (sorted) return { keys, entries };
  // Hand-edited or foreign manifests: sort a copy rather than trusting the order.
  const idx = keys.map((_, i) => i).sort((a, b) => (keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : 0));
  return { keys: idx.map((i) => keys[i]!), entries: idx.map((i) => entries[i]!) };
}

function sameXattrs(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  if (a === b) return true;
  const ka = a === undefined ? [] : Object.keys(a);
  const kb = b === undefined ? [] : Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) if (a![k] !== b?.[k]) return false;
  return true;
}

function identical(c: ManifestEntry, t: ManifestEntry): boolean {
  return (
    c.type === t.type &&
    c.size === t.size &&
    c.mode === t.mode &&
    c.mtime === t.mtime &&
    c.uid === t.uid &&
    c.gid === t.gid &&
    c.acl === t.acl &&
    c.contents === t.contents &&
    c.dest === t.dest &&
    c.devnode === t.devnode &&
    sameXattrs(c.xattrs, t.xattrs)
  );
}

function field(e: ManifestEntry, which: 'contents' | 'dest' | 'devnode'): string {
  const wanted = which === 'contents' ? 'F' : which === 'dest' ? 'L' : e.type === 'B' ? 'B' : 'C';
  return e.type === wanted ? lastField(e) : '-';
}

/** The attribute differences of one path, in the order Solaris reports them. */
export function entryDifferences(c: ManifestEntry, t: ManifestEntry, flags: number, xattrsComparable = true): AttributeDifference[] {
  const out: AttributeDifference[] = [];
  const push = (name: AttributeName, control: string, test: string) => {
    if (control !== test) out.push({ name, control, test });
  };
  if (flags & ATTR.type) push('type', c.type, t.type);
  if (flags & ATTR.size) push('size', String(c.size), String(t.size));
  if (flags & ATTR.mode) push('mode', c.mode.toString(8), t.mode.toString(8));
  if (flags & ATTR.acl) push('acl', c.acl === '-' ? '-' : encodeName(c.acl), t.acl === '-' ? '-' : encodeName(t.acl));
  if (c.mtime !== t.mtime) {
    const tag: AttributeName = c.type !== t.type ? 'mtime' : c.type === 'D' ? 'dirmtime' : c.type === 'L' ? 'lnmtime' : 'mtime';
    if (flags & ATTR[tag]) push(tag, formatMtime(c.mtime), formatMtime(t.mtime));
  }
  if (flags & ATTR.uid) push('uid', String(c.uid), String(t.uid));
  if (flags & ATTR.gid) push('gid', String(c.gid), String(t.gid));
  if (flags & ATTR.devnode) push('devnode', field(c, 'devnode'), field(t, 'devnode'));
  if (flags & ATTR.dest) push('dest', field(c, 'dest'), field(t, 'dest'));
  if (flags & ATTR.contents) push('contents', field(c, 'contents'), field(t, 'contents'));
  if (flags & ATTR.xattr && xattrsComparable && !sameXattrs(c.xattrs, t.xattrs)) {
    const names = [...new Set([...Object.keys(c.xattrs ?? {}), ...Object.keys(t.xattrs ?? {})])].sort();
    for (const n of names) {
      const cv = c.xattrs?.[n] ?? '-';
      const tv = t.xattrs?.[n] ?? '-';
      if (cv !== tv) out.push({ name: 'xattr', xattr: n, control: cv, test: tv });
    }
  }
  return out;
}

/**
 * Differences from `control` to `test`. Without rules every Solaris
 * attribute is checked; with rules each path is checked as its deciding
 * rule says (paths outside every subtree with the global flags).
 */
export function compareManifests(control: Manifest, test: Manifest, rules?: Rules, opts: CompareOptions = {}): Difference[] {
  const mask = ~ignoreMask(opts.ignore);
  const flagsOf = (e: ManifestEntry): number => (rules === undefined ? DEFAULT_FLAGS : ruleFor(rules, e.path, e.type, true)!.flags) & mask;
  // Extended attributes are only comparable when both sides collected them.
  const xattrsComparable = control.header.xattrs === true && test.header.xattrs === true;
  const c = keyed(control);
  const t = keyed(test);
  const out: Difference[] = [];
  let i = 0;
  let j = 0;
  while (i < c.keys.length || j < t.keys.length) {
    const ck = c.keys[i];
    const tk = t.keys[j];
    if (tk === undefined || (ck !== undefined && ck < tk)) {
      const e = c.entries[i++]!;
      if (flagsOf(e) & ATTR.delete) out.push({ path: e.path, kind: 'delete', control: e, attributes: [] });
    } else if (ck === undefined || tk < ck) {
      const e = t.entries[j++]!;
      if (flagsOf(e) & ATTR.add) out.push({ path: e.path, kind: 'add', test: e, attributes: [] });
    } else {
      const ce = c.entries[i++]!;
      const te = t.entries[j++]!;
      if (identical(ce, te)) continue;
      const attrs = entryDifferences(ce, te, flagsOf(ce), xattrsComparable);
      if (attrs.length > 0) out.push({ path: ce.path, kind: 'modify', control: ce, test: te, attributes: attrs });
    }
  }
  return out;
}

function attrLabel(a: AttributeDifference): string {
  return a.name === 'xattr' ? `xattr:${encodeName(a.xattr ?? '')}` : a.name;
}

/** bart compare's default (verbose) report. */
export function formatVerbose(diffs: readonly Difference[]): string {
  let out = '';
  for (const d of diffs) {
    out += `${encodeName(d.path)}:\n`;
    if (d.kind !== 'modify') out += `  ${d.kind}\n`;
    else for (const a of d.attributes) out += `  ${attrLabel(a)}  control:${a.control}  test:${a.test}\n`;
  }
  return out;
}

/** bart compare -p: one line per path, `name attr control test ...`, each field followed by a space. */
export function formatProgrammatic(diffs: readonly Difference[]): string {
  if (diffs.length === 0) return '';
  const lines = diffs.map((d) => {
    let line = `${encodeName(d.path)} `;
    if (d.kind !== 'modify') line += `${d.kind} `;
    else for (const a of d.attributes) line += `${attrLabel(a)} ${a.control} ${a.test} `;
    return line;
  });
  return lines.join('\n') + '\n';
}

export function differencesToJson(diffs: readonly Difference[]): object {
  return {
    differences: diffs.map((d) => ({
      name: encodeName(d.path),
      kind: d.kind,
      attributes: d.attributes.map((a) => ({ name: a.name, ...(a.xattr === undefined ? {} : { xattr: a.xattr }), control: a.control, test: a.test })),
    })),
  };
}
