/**
 * The walk split between worker threads must list exactly what a plain
 * recursive walk lists, whatever the number of threads, names that are not
 * UTF-8 included. One filesystem only (a temp directory).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createManifest } from '../../../src/bart/create.js';
import { formatManifest } from '../../../src/bart/format.js';
import { parseRules, rootContext } from '../../../src/bart/rules.js';
import { splitPaths, toUnitContext, walkUnit, WalkSink, type WalkUnit } from '../../../src/bart/walk.js';
import type { Manifest } from '../../../src/bart/types.js';

let dir = '';

function body(m: Manifest): string {
  return formatManifest(m).split('\n').filter((l) => !l.startsWith('!')).join('\n');
}

/** Reference: a recursive walk with one lstat per entry, paths as byte strings, sorted bytewise. */
function referenceWalk(root: string): string[] {
  const out: string[] = [];
  const visit = (rel: string) => {
    for (const name of readdirSync(Buffer.from(root + rel, 'latin1'), { encoding: 'buffer' })) {
      const path = rel + '/' + name.toString('latin1');
      const st = lstatSync(Buffer.from(root + path, 'latin1'));
      out.push(`${path} ${st.isDirectory() ? 'D' : st.isSymbolicLink() ? `L ${readlinkSync(Buffer.from(root + path, 'latin1'), { encoding: 'latin1' })}` : `F ${st.size}`}`);
      if (st.isDirectory()) visit(path);
    }
  };
  visit('');
  return out.sort();
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sysprime-bart-walk-'));
  // Deeper than the levels handed out as separate units, and wide enough for several of them.
  for (let a = 0; a < 6; a++) {
    for (let b = 0; b < 5; b++) {
      const d = join(dir, `a${a}`, `b${b}`, 'c', 'd');
      mkdirSync(d, { recursive: true });
      for (let f = 0; f < 7; f++) writeFileSync(join(d, `f${f}.txt`), `${a}${b}${f}`.repeat(f + 1));
      writeFileSync(join(dir, `a${a}`, `b${b}`, 'top'), 'x');
      symlinkSync('c/d/f0.txt', join(dir, `a${a}`, `b${b}`, 'link'));
    }
  }
  mkdirSync(Buffer.from(join(dir, 'a1', 'dir-\xe9-\xff'), 'latin1'));
  writeFileSync(Buffer.from(join(dir, 'a1', 'dir-\xe9-\xff', 'n\xfcl\x01 x'), 'latin1'), 'bytes');
  symlinkSync(Buffer.from('dir-\xe9-\xff', 'latin1'), Buffer.from(join(dir, 'a1', 'l-\xff'), 'latin1'));
  writeFileSync(join(dir, 'a2', 'pattern.c'), 'int x;');
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('one thread, several threads and a plain walk list the same entries', async () => {
  const one = await createManifest({ root: dir, threads: 1, acl: false });
  const three = await createManifest({ root: dir, threads: 3, acl: false });
  assert.equal(one.status, 0);
  assert.equal(body(three.manifest), body(one.manifest));
  const listed = one.manifest.entries
    .filter((e) => e.path !== '/')
    .map((e) => `${e.path} ${e.type === 'D' ? 'D' : e.type === 'L' ? `L ${e.dest}` : `F ${e.size}`}`)
    .sort();
  assert.deepEqual(listed, referenceWalk(dir));
  assert.ok(one.manifest.entries.some((e) => e.path === '/a1/dir-\xe9-\xff/n\xfcl\x01 x' && e.contents !== '-'));
});

test('rules with patterns and pruned subtrees give the same manifest on any number of threads', async () => {
  const rules = parseRules('/\nCHECK all\n/a3\nIGNORE all\n/a2 *.c\n/a4 !b1/\nCHECK all\n');
  const one = await createManifest({ root: dir, rules, threads: 1, acl: false });
  const two = await createManifest({ root: dir, rules, threads: 2, acl: false });
  assert.equal(body(two.manifest), body(one.manifest));
  const paths = one.manifest.entries.map((e) => e.path);
  assert.ok(!paths.some((p) => p.startsWith('/a3/')));
  assert.ok(paths.includes('/a2/pattern.c'));
});

test('a unit that hands its directories back after N entries: the same entries, none twice, every unit bounded', () => {
  const rules = parseRules('/\nCHECK all\n/a3\nIGNORE all\n/a2 *.c\n');
  const dev = lstatSync(dir).dev;
  /** Every entry the units starting at the root list, walking the units handed back as create does. */
  const walkAll = (limit: number): { paths: string[]; units: number; largest: number } => {
    const queue: WalkUnit[] = [{ path: '', comps: [], ctx: toUnitContext(rootContext(rules)), dev, split: 0 }];
    const paths: string[] = [];
    let units = 0;
    let largest = 0;
    while (queue.length > 0) {
      const sink = new WalkSink(dir);
      walkUnit(rules, dir, queue.shift()!, sink, limit);
      const r = sink.result();
      const listed = splitPaths(r);
      paths.push(...listed);
      units++;
      largest = Math.max(largest, listed.length);
      queue.push(...r.more);
    }
    return { paths: paths.sort(), units, largest };
  };
  const whole = walkAll(Infinity);
  assert.equal(whole.units, 1);
  assert.equal(new Set(whole.paths).size, whole.paths.length);
  assert.ok(!whole.paths.some((p) => p.startsWith('/a3/')), 'the rules still prune');
  assert.ok(whole.paths.includes('/a2/pattern.c'));
  for (const limit of [0, 1, 5, 40]) {
    const cut = walkAll(limit);
    assert.deepEqual(cut.paths, whole.paths, `limit ${limit}`);
    assert.ok(cut.units > 1, `limit ${limit}: handed back`);
    // A unit stops after the directory that reached the limit: at most the limit plus one directory's entries (8 here).
    assert.ok(cut.largest < limit + 9, `limit ${limit}: largest unit ${cut.largest}`);
  }
});
