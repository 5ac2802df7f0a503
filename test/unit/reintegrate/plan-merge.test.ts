/**
 * The planner walks the three sorted manifests at once and asks the rules
 * only where base and ours differ; before, it indexed every path and asked
 * the rules at each. Held here to that earlier planner
 * (test/fixtures/plan-by-maps.ts) on generated trees with every kind of
 * change the plan tells apart: files changed, added, deleted and retyped by
 * either side or both, directories replaced with entries below them,
 * links, sidelined `.sysprime-new` files, names that sort around `/`,
 * unreadable files, shared paths, rules that leave paths and attributes
 * out, and manifests not in path order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planReintegration } from '../../../src/reintegrate/plan.js';
import { planReintegration as planByMaps } from '../../fixtures/plan-by-maps.js';
import { parseRules } from '../../../src/bart/rules.js';
import { sortEntries } from '../../../src/bart/format.js';
import type { EntryType, Manifest, ManifestEntry } from '../../../src/bart/types.js';

/** A small seeded generator (mulberry32): the same trees on every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const MODE: Record<EntryType, number> = { F: 0o100644, D: 0o40755, L: 0o120777, P: 0o10644, S: 0o140755, B: 0o60660, C: 0o20660, O: 0o150644 };
const NAMES = ['a', 'a b', 'a-b', 'a.b', 'a0', 'a*', 'b', 'conf', 'x.sysprime-new', 'passwd', 'shadow', 'group'];

function entry(path: string, type: EntryType, v: number): ManifestEntry {
  const e: ManifestEntry = { path, type, size: type === 'F' ? 10 + (v % 3) : 0, mode: MODE[type] | (v % 5 === 4 ? 0o600 : 0o644), acl: '-', mtime: 1 + v, uid: v % 7 === 6 ? 1000 : 0, gid: 0 };
  if (type === 'F') e.contents = v % 11 === 10 ? '-' : `h${v % 3}`;
  if (type === 'L') e.dest = `t${v % 2}`;
  if (type === 'C') e.devnode = v % 2;
  if (v % 13 === 12) e.xattrs = { 'user.k': `0x${v % 2}` };
  return e;
}

/** A tree of directories and leaves, as path → entry. */
function tree(rnd: () => number, size: number): Map<string, ManifestEntry> {
  const out = new Map<string, ManifestEntry>([['/', entry('/', 'D', 0)]]);
  const dirs = ['/'];
  for (const top of ['/etc', '/usr', '/var', '/home']) {
    out.set(top, entry(top, 'D', 0));
    dirs.push(top);
  }
  while (out.size < size) {
    const parent = dirs[Math.floor(rnd() * dirs.length)]!;
    const path = `${parent === '/' ? '' : parent}/${NAMES[Math.floor(rnd() * NAMES.length)]}${rnd() < 0.5 ? '' : Math.floor(rnd() * 4)}`;
    if (out.has(path)) continue;
    const r = rnd();
    const type: EntryType = r < 0.25 ? 'D' : r < 0.85 ? 'F' : r < 0.95 ? 'L' : 'C';
    out.set(path, entry(path, type, 0));
    if (type === 'D') dirs.push(path);
  }
  return out;
}

/** A copy of `t` with about `share` of its entries changed, retyped, deleted (with what is below), and new ones added. */
function changed(rnd: () => number, t: Map<string, ManifestEntry>, share: number, salt: number): Map<string, ManifestEntry> {
  const out = new Map(t);
  for (const [path, e] of t) {
    if (path === '/' || !out.has(path) || rnd() >= share) continue;
    const r = rnd();
    if (r < 0.45) out.set(path, entry(path, e.type, salt + Math.floor(rnd() * 20)));
    else if (r < 0.6) out.set(path, entry(path, (['F', 'D', 'L'] as const).find((x) => x !== e.type)!, salt));
    else if (r < 0.8) {
      for (const q of [...out.keys()]) if (q === path || q.startsWith(`${path}/`)) out.delete(q);
    } else {
      const dir = e.type === 'D' ? path : path.slice(0, path.lastIndexOf('/')) || '/';
      const added = `${dir === '/' ? '' : dir}/${NAMES[Math.floor(rnd() * NAMES.length)]}.n${salt}`;
      if (out.has(dir) && out.get(dir)!.type === 'D') out.set(added, entry(added, rnd() < 0.2 ? 'D' : 'F', salt));
    }
  }
  // The update's version an earlier staging saved beside a conflict, as the admin's tree holds it.
  for (const [path, e] of t) if (e.type === 'F' && rnd() < share / 4) out.set(`${path}.sysprime-new`, { ...e, path: `${path}.sysprime-new` });
  return out;
}

const HDR = { version: '1.1', hash: 'xxh64', root: '/', date: 'x' } as const;

function manifest(t: Map<string, ManifestEntry>, order: 'sorted' | 'shuffled', rnd: () => number): Manifest {
  // As bart lists them: by encoded name, where `a b` (`a\040b`) comes after `a/...`.
  const entries = sortEntries([...t.values()]);
  if (order === 'shuffled') {
    for (let i = entries.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [entries[i], entries[j]] = [entries[j]!, entries[i]!];
    }
  }
  return { header: { ...HDR }, entries };
}

const RULES = parseRules(['/', 'CHECK all', 'IGNORE mtime dirmtime', '/var', 'IGNORE contents size', '/home', 'IGNORE uid', '/etc !a0', 'CHECK all', '/usr b*', 'IGNORE all', '/etc conf*', 'IGNORE all', ''].join('\n'));

for (let seed = 1; seed <= 16; seed++) {
  test(`the same plan as the planner by indexes: generated tree ${seed}`, () => {
    const rnd = random(seed);
    const base = tree(rnd, 200 + Math.floor(rnd() * 600));
    const ours = changed(rnd, base, 0.1 + rnd() * 0.3, 100);
    const theirs = changed(rnd, base, 0.1 + rnd() * 0.3, 200);
    const order = seed % 4 === 0 ? 'shuffled' : 'sorted';
    const input = {
      base: manifest(base, order, rnd),
      ours: manifest(ours, 'sorted', rnd),
      theirs: manifest(theirs, order, rnd),
      ...(seed % 2 === 0 ? { rules: RULES } : {}),
      ...(seed % 3 === 0 ? { shared: ['/home'] } : {}),
    };
    const now = planReintegration(input);
    assert.ok(now.actions.length > 0, 'the tree has changes to plan');
    assert.deepEqual(now, planByMaps(input));
  });
}

test('a manifest naming a path twice: the last entry counts, as it did', () => {
  const f = (path: string, contents: string): ManifestEntry => ({ path, type: 'F', size: 1, mode: 0o100644, acl: '-', mtime: 1, uid: 0, gid: 0, contents });
  const d = (path: string): ManifestEntry => ({ path, type: 'D', size: 0, mode: 0o40755, acl: '-', mtime: 1, uid: 0, gid: 0 });
  const input = {
    base: { header: { ...HDR }, entries: [d('/etc'), f('/etc/a', 'b')] },
    ours: { header: { ...HDR }, entries: [d('/etc'), f('/etc/a', 'o'), f('/etc/a', 'b'), f('/etc/c', 'x'), f('/etc/c', 'y')] },
    theirs: { header: { ...HDR }, entries: [d('/etc'), f('/etc/a', 'b')] },
  };
  const now = planReintegration(input);
  assert.deepEqual(now, planByMaps(input));
  assert.deepEqual(
    now.actions.map((a) => [a.path, a.ours?.contents]),
    [['/etc/c', 'y']],
  );
});
