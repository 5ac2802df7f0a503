/**
 * Account databases merged by entry, not by line: passwd, group, shadow,
 * gshadow, subuid, subgid (and their `-` backups, which the shadow tools
 * write beside them).
 *
 * For each name, a three-way decision: the admin's entry wins whenever the
 * admin changed it (added, edited or deleted it); an entry only the update
 * changed takes the update's line; entries the update added are appended in
 * the update's order. Group member lists are merged as sets (members the
 * update added join the admin's list, members it removed leave it unless the
 * admin added them). shadow and gshadow follow the merged passwd and group:
 * a name without an account there has no line, an account without a line
 * gets the one that exists. An id used by two different names is a conflict:
 * the admin's entry stays as it is, the update's is still added (so what it
 * installed can resolve its owner) and the report tells the admin to renumber.
 */

export type AccountKind = 'passwd' | 'group' | 'shadow' | 'gshadow' | 'subuid' | 'subgid';

const FILES: Record<string, AccountKind> = {
  '/etc/passwd': 'passwd',
  '/etc/group': 'group',
  '/etc/shadow': 'shadow',
  '/etc/gshadow': 'gshadow',
  '/etc/subuid': 'subuid',
  '/etc/subgid': 'subgid',
};

/** The account database a manifest path is, or undefined. Backups (`/etc/passwd-`) count as their database. */
export function accountKindOf(path: string): AccountKind | undefined {
  return FILES[path] ?? (path.endsWith('-') ? FILES[path.slice(0, -1)] : undefined);
}

/** The database whose names a shadow-like file follows. */
export function primaryOf(kind: AccountKind): AccountKind | undefined {
  return kind === 'shadow' ? 'passwd' : kind === 'gshadow' ? 'group' : undefined;
}

export interface AccountNote {
  kind: 'conflict' | 'notice';
  name: string;
  message: string;
}

export interface AccountMerge {
  content: string;
  notes: AccountNote[];
}

interface Line {
  /** The entry's key (its name), or undefined for a comment or blank line. */
  key: string | undefined;
  text: string;
  fields: string[];
}

function parse(text: string, kind: AccountKind): Line[] {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines.map((raw, i) => {
    const t = raw.replace(/\r$/, '');
    if (t.trim() === '' || t.startsWith('#')) return { key: undefined, text: t, fields: [] };
    const fields = t.split(':');
    // subuid/subgid may list several ranges for one name: the range is part of the key.
    const key = kind === 'subuid' || kind === 'subgid' ? t : fields[0]!;
    return { key: key === '' ? `\0line${i}` : key, text: t, fields };
  });
}

function byKey(lines: Line[]): Map<string, Line> {
  const m = new Map<string, Line>();
  for (const l of lines) if (l.key !== undefined && !m.has(l.key)) m.set(l.key, l);
  return m;
}

/** Index of the member list in a group-like line. */
function membersField(kind: AccountKind): number | undefined {
  return kind === 'group' ? 3 : kind === 'gshadow' ? 3 : undefined;
}

function members(l: Line | undefined, idx: number): string[] {
  const v = l?.fields[idx];
  return v === undefined || v === '' ? [] : v.split(',');
}

/** Members: the admin's list, plus what the update added, minus what it removed that the admin did not add. */
function mergeMembers(base: Line | undefined, ours: Line, theirs: Line | undefined, idx: number): string {
  const b = new Set(members(base, idx));
  const t = members(theirs, idx);
  const tSet = new Set(t);
  const out = members(ours, idx).filter((m) => !(theirs !== undefined && base !== undefined && b.has(m) && !tSet.has(m)));
  for (const m of t) if (!b.has(m) && !out.includes(m)) out.push(m);
  return out.join(',');
}

function withField(l: Line, idx: number, value: string): string {
  const f = [...l.fields];
  while (f.length <= idx) f.push('');
  f[idx] = value;
  return f.join(':');
}

/** Which numeric id field names the entry (uid for passwd, gid for group). */
function idField(kind: AccountKind): number | undefined {
  return kind === 'passwd' || kind === 'group' ? 2 : undefined;
}

export interface AccountMergeInput {
  kind: AccountKind;
  base: string;
  ours: string;
  theirs: string;
  /** For shadow/gshadow: the names of the merged passwd/group, in order. */
  accounts?: string[];
}

export function mergeAccounts({ kind, base, ours, theirs, accounts }: AccountMergeInput): AccountMerge {
  const notes: AccountNote[] = [];
  const B = byKey(parse(base, kind));
  const oursLines = parse(ours, kind);
  const O = byKey(oursLines);
  const theirsLines = parse(theirs, kind);
  const T = byKey(theirsLines);
  const memberIdx = membersField(kind);
  const out: { key: string | undefined; text: string }[] = [];

  for (const l of oursLines) {
    if (l.key === undefined) {
      out.push(l);
      continue;
    }
    const b = B.get(l.key);
    const t = T.get(l.key);
    if (b !== undefined && b.text === l.text && t !== undefined) {
      // The admin left this entry alone: the update's version of it, member lists merged.
      out.push({ key: l.key, text: t.text });
      continue;
    }
    if (b !== undefined && t === undefined && b.text === l.text) {
      notes.push({ kind: 'notice', name: l.key, message: `the update removed ${l.key}; kept, files may still belong to it` });
    }
    let text = l.text;
    if (memberIdx !== undefined && t !== undefined) text = withField(l, memberIdx, mergeMembers(b, l, t, memberIdx));
    if (t !== undefined && t.text !== l.text && (b === undefined || b.text !== t.text)) {
      notes.push({ kind: 'notice', name: l.key, message: `the update also changed ${l.key}; the admin's entry is kept` });
    }
    out.push({ key: l.key, text });
  }

  for (const t of theirsLines) {
    if (t.key === undefined || O.has(t.key)) continue;
    if (B.has(t.key)) {
      notes.push({ kind: 'notice', name: t.key, message: `${t.key} was deleted by the admin; the deletion is kept` });
      continue;
    }
    out.push({ key: t.key, text: t.text });
  }

  let lines = out;
  if (accounts !== undefined) lines = followAccounts(lines, accounts, T, O, notes);
  const idIdx = idField(kind);
  if (idIdx !== undefined) checkIds(lines, idIdx, O, notes, kind);
  checkNameIds(kind, O, T, B, idIdx, notes);
  return { content: lines.map((l) => l.text + '\n').join(''), notes };
}

/** shadow/gshadow: a line per merged account, none for names without one. */
function followAccounts(
  lines: { key: string | undefined; text: string }[],
  accounts: string[],
  T: Map<string, Line>,
  O: Map<string, Line>,
  notes: AccountNote[],
): { key: string | undefined; text: string }[] {
  const wanted = new Set(accounts);
  const kept = lines.filter((l) => l.key === undefined || wanted.has(l.key));
  const have = new Set(kept.map((l) => l.key));
  for (const name of accounts) {
    if (have.has(name)) continue;
    const src = O.get(name) ?? T.get(name);
    if (src !== undefined) kept.push({ key: name, text: src.text });
    else notes.push({ kind: 'notice', name, message: `${name} has an account but no line in either version; none written` });
  }
  return kept;
}

function checkIds(lines: { key: string | undefined; text: string }[], idIdx: number, O: Map<string, Line>, notes: AccountNote[], kind: AccountKind): void {
  const owner = new Map<string, string>();
  for (const l of lines) {
    if (l.key === undefined) continue;
    const id = l.text.split(':')[idIdx];
    if (id === undefined || id === '') continue;
    const first = owner.get(id);
    if (first === undefined) {
      owner.set(id, l.key);
      continue;
    }
    // Ids the admin already shares between names (root and toor) are the admin's business.
    if (O.has(first) && O.has(l.key)) continue;
    const [admin, update] = O.has(first) && !O.has(l.key) ? [first, l.key] : O.has(l.key) && !O.has(first) ? [l.key, first] : [first, l.key];
    const what = kind === 'passwd' ? 'uid' : 'gid';
    notes.push({
      kind: 'conflict',
      name: update,
      message: `${what} ${id} is both ${admin} (admin) and ${update} (update): files owned by ${what} ${id} belong to both; renumber one of them`,
    });
  }
}

/** The same name with a different id in the admin's and the update's new entry. */
function checkNameIds(kind: AccountKind, O: Map<string, Line>, T: Map<string, Line>, B: Map<string, Line>, idIdx: number | undefined, notes: AccountNote[]): void {
  if (idIdx === undefined) return;
  for (const [name, t] of T) {
    if (B.has(name)) continue;
    const o = O.get(name);
    if (o === undefined) continue;
    const oi = o.fields[idIdx];
    const ti = t.fields[idIdx];
    if (oi !== ti) {
      const what = kind === 'passwd' ? 'uid' : 'gid';
      notes.push({
        kind: 'conflict',
        name,
        message: `${name} was added by both: the admin with ${what} ${oi}, the update with ${what} ${ti}; the admin's is kept, files the update installed for ${name} are owned by ${what} ${ti}`,
      });
    }
  }
}

/** The names of a passwd or group file, in order: what its shadow file follows. */
export function accountNames(text: string): string[] {
  return parse(text, 'passwd')
    .filter((l) => l.key !== undefined)
    .map((l) => l.fields[0]!)
    .filter((n) => n !== '');
}
