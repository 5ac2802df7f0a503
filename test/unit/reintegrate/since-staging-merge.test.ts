/**
 * The first boot's planner finds what changed since staging by a merge-join
 * of the two manifests of the admin's tree, comparing entries property by
 * property; before, it put every path of both in maps and compared their
 * JSON texts. Held here to that earlier planner
 * (test/fixtures/since-staging-by-maps.ts) on generated trees: files
 * changed in every property the comparison looks at (and only in times or
 * the stat index, which it does not), xattrs present, absent, empty or
 * undefined, properties set to undefined, a property no entry has, paths
 * added, removed and reverted, and manifests not in path order or naming a
 * path twice.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { changedPaths, planSinceStaging } from '../../../src/reintegrate/since-staging.js';
import { changedPaths as changedByMaps, planSinceStaging as planByMaps } from '../../fixtures/since-staging-by-maps.js';
import { sortEntries } from '../../../src/bart/format.js';
import type { Manifest, ManifestEntry } from '../../../src/bart/types.js';

/** mulberry32: the same trees on every run. */
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

const HDR = { version: '1.1', hash: 'xxh64', root: '/', date: 'x' } as const;
const NAMES = ['a', 'a b', 'a-b', 'a.b', 'a0', 'conf', 'x.sysprime-new', 'passwd'];

function file(path: string, v: number): ManifestEntry {
  return { path, type: 'F', size: 10, mode: 0o100644, acl: '-', mtime: 5, uid: 0, gid: 0, contents: `h${v}`, stat: { dev: 1, ino: v, mtimeMs: 5000, ctimeMs: 6000 } };
}

/** One entry changed in one way the comparison sees, or in one it must not see. */
function vary(rnd: () => number, e: ManifestEntry): ManifestEntry {
  const c: ManifestEntry = { ...e };
  switch (Math.floor(rnd() * 16)) {
    case 0: c.size += 1; break;
    case 1: c.mode ^= 0o22; break;
    case 2: c.acl = 'user::rw-,group::r--,other::r--'; break;
    case 3: c.uid = 1000; break;
    case 4: c.gid = 1000; break;
    case 5: c.contents = 'other'; break;
    case 6: delete c.contents; break;
    case 7: c.contents = undefined; break;
    case 8: c.xattrs = { 'user.k': '0x01' }; break;
    case 9: c.xattrs = {}; break;
    case 10: c.type = 'L'; c.dest = 'elsewhere'; delete c.contents; break;
    case 11: c.devnode = 3; break;
    case 12: c.mtime += 100; break; // times aside: not a change
    case 13: c.stat = { dev: 2, ino: 9, mtimeMs: 1, ctimeMs: 2 }; break; // nor the stat index
    case 14: (c as unknown as Record<string, unknown>)['flags'] = 1; break; // a property no entry has
    case 15: c.xattrs = undefined; break;
  }
  return c;
}

function manifest(entries: ManifestEntry[], rnd: () => number, order: 'sorted' | 'shuffled' | 'twice'): Manifest {
  const sorted = sortEntries(entries);
  if (order === 'sorted') return { header: { ...HDR }, entries: sorted };
  const out = [...sorted];
  if (order === 'twice') for (const e of sorted) if (rnd() < 0.05) out.push(vary(rnd, e));
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return { header: { ...HDR }, entries: out };
}

for (let seed = 1; seed <= 12; seed++) {
  test(`what changed since staging, and the plan, as the planner by maps: generated tree ${seed}`, () => {
    const rnd = random(seed);
    const base: ManifestEntry[] = [{ path: '/', type: 'D', size: 0, mode: 0o40755, acl: '-', mtime: 1, uid: 0, gid: 0 }];
    for (const d of ['/etc', '/usr']) base.push({ path: d, type: 'D', size: 0, mode: 0o40755, acl: '-', mtime: 1, uid: 0, gid: 0 });
    for (let i = 0; i < 300; i++) base.push(file(`/${rnd() < 0.5 ? 'etc' : 'usr'}/${NAMES[i % NAMES.length]}${i}`, i));
    // At staging: some of the admin's changes; now: some of them undone, others made, some paths added or gone.
    const atStaging = base.map((e) => (e.path.length > 4 && rnd() < 0.3 ? vary(rnd, e) : e));
    const now = atStaging
      .map((e, i) => (rnd() < 0.1 ? base[i]! : rnd() < 0.3 ? vary(rnd, e) : e))
      .filter((e) => e.path.length <= 4 || rnd() > 0.05);
    for (let i = 0; i < 10; i++) now.push(file(`/etc/new${seed}-${i}`, 1000 + i));
    const theirs = base.map((e) => (e.path.length > 4 && rnd() < 0.2 ? vary(rnd, e) : e));
    const order = seed % 3 === 0 ? 'shuffled' : seed % 3 === 1 ? 'sorted' : 'twice';
    const input = {
      base: manifest(base, rnd, 'sorted'),
      oursAtStaging: manifest(atStaging, rnd, order),
      oursNow: manifest(now, rnd, order === 'twice' ? 'sorted' : order),
      theirs: manifest(theirs, rnd, 'sorted'),
    };
    const changed = changedPaths(input.oursAtStaging, input.oursNow);
    assert.ok(changed.size > 0, 'something changed since staging');
    assert.deepEqual([...changed].sort(), [...changedByMaps(input.oursAtStaging, input.oursNow)].sort());
    const plan = planSinceStaging(input);
    restores += plan.counts.restore ?? 0;
    assert.deepEqual(plan, planByMaps(input));
  });
}

let restores = 0;
test('the generated trees have changes the admin undid after staging', () => {
  assert.ok(restores > 0, 'some path is put back');
});
