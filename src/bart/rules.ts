/**
 * bart_rules(4): which paths a manifest lists and which attributes compare
 * checks.
 *
 *   [global CHECK/IGNORE statements]
 *   /subtree [pattern ...]        several subtree lines form one block
 *   /other   [!pattern ...]
 *   CHECK|IGNORE keyword ...      applies to every subtree of the block
 *
 * Patterns of one subtree line are ANDed; `!` negates one; a trailing `/`
 * makes it a directory pattern (matches any run of directory components).
 * Of the rules whose subtree holds a path, the last one in the file whose
 * patterns accept it decides. A rule whose attributes are all ignored and
 * has no patterns leaves its subtree out of the manifest and is not walked.
 *
 * `all` means every Solaris attribute (and reporting additions and
 * deletions); `xattr` is our extension and is only checked when named,
 * because collecting extended attributes costs a second pass over the tree.
 */
import { SysprimeError } from '../errors.js';
import { globToRegExp, hasGlob, unquoteGlob } from './glob.js';
import type { AttributeName, EntryType } from './types.js';

export const ATTR = {
  contents: 0x0001,
  type: 0x0002,
  size: 0x0004,
  mode: 0x0008,
  uid: 0x0010,
  gid: 0x0020,
  acl: 0x0040,
  dest: 0x0080,
  devnode: 0x0100,
  mtime: 0x0200,
  lnmtime: 0x0400,
  dirmtime: 0x0800,
  add: 0x1000,
  delete: 0x2000,
  xattr: 0x4000,
} as const;

/** Every Solaris attribute plus add/delete: what `CHECK all` sets. */
export const ALL = 0x3fff;
/** What `IGNORE all` clears. */
export const EVERYTHING = 0x7fff;
/** Flags before any statement: compare everything Solaris compares. */
export const DEFAULT_FLAGS = ALL;
/**
 * What `bart compare` checks before any rule, as Solaris's
 * init_default_flags: every attribute but dirmtime (a directory's mtime
 * moves with every entry added or removed, which are reported themselves).
 */
export const COMPARE_DEFAULT_FLAGS = ALL & ~ATTR.dirmtime;

export const KEYWORDS: readonly (AttributeName | 'all' | 'add' | 'delete')[] = [
  'all', 'contents', 'size', 'mode', 'acl', 'mtime', 'lnmtime', 'dirmtime', 'uid', 'gid', 'dest', 'devnode', 'type', 'add', 'delete', 'xattr',
];

/** The flags of a keyword, in any case (`CHECK ALL`, `IGNORE Mtime`, as Solaris reads them). */
export function keywordFlags(word: string): number | undefined {
  const w = word.toLowerCase();
  if (w === 'all') return ALL;
  return Object.prototype.hasOwnProperty.call(ATTR, w) ? ATTR[w as keyof typeof ATTR] : undefined;
}

interface Modifier {
  include: boolean;
  isDir: boolean;
  /** Number of path components the pattern spans. */
  width: number;
  re: RegExp;
  text: string;
}

export interface Rule {
  /** The subtree as written (relative to the -R root). */
  subtree: string;
  /** One matcher per component of the subtree; empty for "/". */
  parts: RegExp[];
  /** The leading components without wildcards, unquoted: where a walk starts. */
  literalPrefix: string;
  modifiers: Modifier[];
  flags: number;
  line: number;
  /** Position in the file: later rules win. */
  index: number;
}

export interface Rules {
  source: string;
  /** Flags of the global block (what rules without a CHECK/IGNORE of their own get). */
  globalFlags: number;
  /** Rules in file order. With no subtree lines, one rule for "/" with the global flags. */
  rules: Rule[];
  /** Whether the file named subtrees (compare then also covers other paths with the global flags, as Solaris does). */
  hasSubtrees: boolean;
}

function rulesError(source: string, line: number, what: string): never {
  throw new SysprimeError('RULES', `${source}, line ${line}: ${what}`, {
    hint: 'see bart_rules(4): subtree lines start with /, then CHECK or IGNORE with attribute keywords',
  });
}

interface Statement {
  line: number;
  tokens: string[];
}

/** Split into statements: `\` at the end of a line continues it, `#` starts a comment. */
function lex(text: string): Statement[] {
  const out: Statement[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let logical = lines[i]!.replace(/\r$/, '');
    while (/(^|[^\\])(\\\\)*\\$/.test(logical) && i + 1 < lines.length) {
      logical = logical.slice(0, -1) + ' ' + lines[++i]!.replace(/\r$/, '');
    }
    const tokens = tokenize(logical);
    if (tokens.length > 0) out.push({ line: start, tokens });
  }
  return out;
}

/** Whitespace-separated tokens; quotes group; backslashes are kept for the glob layer. */
function tokenize(line: string): string[] {
  const tokens: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i]!)) i++;
    if (i >= line.length || line[i] === '#') break;
    let tok = '';
    let quote = '';
    if (line[i] === '"' || line[i] === "'") quote = line[i++]!;
    for (; i < line.length; i++) {
      const c = line[i]!;
      if (c === '\\' && i + 1 < line.length) {
        tok += c + line[++i];
        continue;
      }
      if (quote !== '' && c === quote) {
        i++;
        break;
      }
      if (quote === '' && /\s/.test(c)) break;
      tok += c;
    }
    tokens.push(tok);
  }
  return tokens;
}

export function splitComponents(path: string): string[] {
  return path.split('/').filter((c) => c !== '');
}

function makeRule(subtree: string, patterns: string[], flags: number, line: number, index: number, source: string): Rule {
  let s = subtree;
  while (s.length > 1 && s.endsWith('/')) s = s.slice(0, -1);
  const comps = splitComponents(s);
  const dots = comps.find((c) => c === '.' || c === '..');
  if (dots !== undefined) rulesError(source, line, `subtree ${s} has a '${dots}' component; subtrees are absolute paths below the root, without . or ..`);
  const literal: string[] = [];
  for (const c of comps) {
    if (hasGlob(c)) break;
    literal.push(unquoteGlob(c));
  }
  const modifiers: Modifier[] = patterns.map((p) => {
    const include = !p.startsWith('!');
    const body = include ? p : p.slice(1);
    if (body === '' || body === '/') rulesError(source, line, `empty pattern '${p}'`);
    const isDir = body.endsWith('/');
    const core = isDir ? body.replace(/\/+$/, '') : body;
    return { include, isDir, width: splitComponents(core).length, re: globToRegExp(core), text: p };
  });
  return { subtree: s, parts: comps.map(globToRegExp), literalPrefix: '/' + literal.join('/'), modifiers, flags, line, index };
}

/**
 * Parse a rules file. `initialFlags` are the flags before any statement
 * (compare's `-i` clears some of them).
 */
export function parseRules(text: string, source = 'rules', initialFlags = DEFAULT_FLAGS): Rules {
  let globalFlags = initialFlags;
  const rules: Rule[] = [];
  let blockStart = -1;
  let blockHasDirectives = false;
  for (const st of lex(text)) {
    const [head, ...rest] = st.tokens as [string, ...string[]];
    if (head.startsWith('/')) {
      if (blockStart < 0 || blockHasDirectives) {
        blockStart = rules.length;
        blockHasDirectives = false;
      }
      rules.push(makeRule(head, rest, globalFlags, st.line, rules.length, source));
    } else if (head.toUpperCase() === 'CHECK' || head.toUpperCase() === 'IGNORE') {
      // A bare CHECK or IGNORE (bart_rules(4)'s own sample has a CHECK) changes no flag, as on Solaris,
      // whose parser simply finds no keyword to apply; it still ends the block's subtree lines.
      const check = head.toUpperCase() === 'CHECK';
      for (const word of rest) {
        const f = keywordFlags(word);
        if (f === undefined) rulesError(source, st.line, `unknown attribute '${word}' (expected one of ${KEYWORDS.join(', ')})`);
        const bits = !check && word.toLowerCase() === 'all' ? EVERYTHING : f;
        if (blockStart < 0) globalFlags = check ? globalFlags | bits : globalFlags & ~bits;
        else for (let i = blockStart; i < rules.length; i++) rules[i]!.flags = check ? rules[i]!.flags | bits : rules[i]!.flags & ~bits;
      }
      if (blockStart >= 0) blockHasDirectives = true;
    } else {
      rulesError(source, st.line, `'${head}' is neither a subtree (an absolute path) nor CHECK/IGNORE`);
    }
  }
  const hasSubtrees = rules.length > 0;
  if (!hasSubtrees) rules.push(makeRule('/', [], globalFlags, 0, 0, source));
  return { source, globalFlags, rules, hasSubtrees };
}

/** The rules in effect with no rules file: everything under "/" with the given flags. */
export function defaultRules(flags = DEFAULT_FLAGS): Rules {
  return parseRules('', '(default rules)', flags);
}

/** Parse compare's `-i mode,uid` list into the flags left. */
export function applyIgnoreList(list: string, flags = DEFAULT_FLAGS): number {
  let out = flags;
  for (const word of list.split(',').map((w) => w.trim()).filter((w) => w !== '')) {
    const f = keywordFlags(word);
    if (f === undefined) throw new SysprimeError('USAGE', `-i: unknown attribute '${word}'`, { hint: `use some of: ${KEYWORDS.join(', ')}` });
    out &= ~(word.toLowerCase() === 'all' ? EVERYTHING : f);
  }
  return out;
}

export type Verdict = 'match' | 'skip' | 'prune';

/** Do the patterns of `rule` accept `comps` (the path's components) of the given type? */
export function evaluateModifiers(rule: Rule, comps: readonly string[], type: EntryType): Verdict {
  const isDir = type === 'D';
  let verdict: Verdict = 'match';
  for (const m of rule.modifiers) {
    if (!m.isDir) {
      // File patterns say nothing about directories, except that they are not what was asked for.
      if (isDir) {
        if (m.include) verdict = 'skip';
        continue;
      }
      let ok = false;
      if (comps.length >= m.width) ok = m.re.test(comps.slice(comps.length - m.width).join('/'));
      if (ok !== m.include) return 'skip';
      continue;
    }
    // Directory patterns look at the directories below the subtree: the entry
    // itself when it is one, its parent otherwise.
    const dirs = comps.slice(rule.parts.length, isDir ? comps.length : comps.length - 1);
    let found = false;
    for (let i = 0; i + m.width <= dirs.length && !found; i++) found = m.re.test(dirs.slice(i, i + m.width).join('/'));
    if (m.include && !found) verdict = 'skip';
    if (!m.include && found) return isDir ? 'prune' : 'skip';
  }
  return verdict;
}

function subtreeHolds(rule: Rule, comps: readonly string[]): boolean {
  if (comps.length < rule.parts.length) return false;
  for (let i = 0; i < rule.parts.length; i++) if (!rule.parts[i]!.test(comps[i]!)) return false;
  return true;
}

/**
 * The rule that decides for one path (last match wins), or undefined when
 * no rule covers it. `forCompare` adds Solaris's catch-all: paths outside
 * every subtree are compared with the global flags.
 */
export function ruleFor(rules: Rules, path: string, type: EntryType, forCompare = false): Rule | undefined {
  const comps = splitComponents(path);
  for (let i = rules.rules.length - 1; i >= 0; i--) {
    const r = rules.rules[i]!;
    if (!subtreeHolds(r, comps)) continue;
    if (r.modifiers.length === 0 || evaluateModifiers(r, comps, type) === 'match') return r;
  }
  return forCompare ? catchAll(rules) : undefined;
}

const catchAllCache = new WeakMap<Rules, Rule>();
function catchAll(rules: Rules): Rule {
  let r = catchAllCache.get(rules);
  if (r === undefined) {
    r = makeRule('/', [], rules.globalFlags, 0, -1, rules.source);
    catchAllCache.set(rules, r);
  }
  return r;
}

/**
 * Incremental rule state for a tree walk: the rules whose subtree holds the
 * current directory (`active`, in file order) and those that may still hold
 * something deeper (`pending`). Siblings share arrays when nothing changes,
 * so most entries cost no pattern matching at all.
 */
export interface WalkContext {
  depth: number;
  active: Rule[];
  pending: Rule[];
}

export function rootContext(rules: Rules): WalkContext {
  return enter({ depth: -1, active: [], pending: rules.rules }, null);
}

/** The context of a child named `name` (or of the root when name is null). */
export function enter(ctx: WalkContext, name: string | null): WalkContext {
  const depth = ctx.depth + 1;
  let active = ctx.active;
  let pending: Rule[] = ctx.pending;
  if (ctx.pending.length > 0) {
    const nowActive: Rule[] = [];
    const stillPending: Rule[] = [];
    for (const r of ctx.pending) {
      if (depth > 0 && !r.parts[depth - 1]!.test(name!)) continue;
      if (r.parts.length === depth) nowActive.push(r);
      else stillPending.push(r);
    }
    if (nowActive.length > 0) active = [...ctx.active, ...nowActive].sort((a, b) => a.index - b.index);
    pending = stillPending.length === ctx.pending.length ? ctx.pending : stillPending;
  }
  return { depth, active, pending };
}

/** The deciding rule for an entry whose context is `ctx` and components `comps`. */
export function decide(ctx: WalkContext, comps: readonly string[], type: EntryType): Rule | undefined {
  for (let i = ctx.active.length - 1; i >= 0; i--) {
    const r = ctx.active[i]!;
    if (r.modifiers.length === 0 || evaluateModifiers(r, comps, type) === 'match') return r;
  }
  return undefined;
}

/** Whether a walk must go into a directory with context `ctx`. */
export function shouldDescend(ctx: WalkContext, comps: readonly string[]): boolean {
  if (ctx.pending.length > 0) return true;
  for (let i = ctx.active.length - 1; i >= 0; i--) {
    const r = ctx.active[i]!;
    if (r.modifiers.length === 0) return r.flags !== 0;
    if (evaluateModifiers(r, comps, 'D') !== 'prune') return true;
  }
  return false;
}

/** Where walks start: the literal prefixes of the rules, nested ones dropped. */
export function walkRoots(rules: Rules): string[] {
  const prefixes = [...new Set(rules.rules.filter((r) => r.flags !== 0 || r.modifiers.length > 0).map((r) => r.literalPrefix))].sort();
  const out: string[] = [];
  for (const p of prefixes) {
    if (out.some((q) => q === '/' || p === q || p.startsWith(q + '/'))) continue;
    out.push(p);
  }
  return out;
}
