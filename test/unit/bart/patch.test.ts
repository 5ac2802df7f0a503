/**
 * patchManifest against a full walk: the base manifest of a tree, the tree
 * changed, only the changed paths read again, and the result must be the
 * walk's line for line. The names are chosen to sort on both sides of '/'
 * ('a b', 'a-b', 'a.b' before 'a/…', 'a0' after), where a subtree's entries
 * and its neighbours interleave in manifest order; a seeded random run
 * repeats it on generated trees and change sets.
 */
import { describe, test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, linkSync, lstatSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createManifest, formatEntry, formatIndex, formatManifest, lookupInManifest, lookupInText, parseRules, type EntryLookup, type Manifest } from '../../../src/bart/index.js';
import { patchManifest } from '../../../src/bart/patch.js';

const RULES = parseRules(`/
CHECK all
/skip
IGNORE all
`, 'test.rules');

const lines = (m: Manifest): string[] => m.entries.map(formatEntry);

let root = '';
afterEach(() => {
  if (root !== '') rmSync(root, { recursive: true, force: true });
  root = '';
});

function write(rel: string, text: string): void {
  writeFileSync(join(root, rel), text);
}

/** A name as manifests hold it: its bytes, one character each. */
const bytesOf = (p: string): string => Buffer.from(p, 'utf8').toString('latin1');

/** What changed, as the filesystem's listing hands it over: single paths and whole subtrees. */
class Changes {
  readonly paths = new Set<string>(['/']);
  readonly subtrees = new Set<string>();
  private parent(p: string): void {
    this.paths.add(p.slice(0, p.lastIndexOf('/')) || '/');
  }
  modified(p: string): void {
    this.paths.add(bytesOf(p));
    this.parent(bytesOf(p));
  }
  whole(p: string): void {
    this.subtrees.add(bytesOf(p));
    this.parent(bytesOf(p));
  }
}

async function patchedEqualsWalk(base: Manifest, changes: Changes, opts: { previous?: EntryLookup } = {}): Promise<Manifest> {
  const full = await createManifest({ root, rules: RULES });
  const patched = await patchManifest({ base, root, rules: RULES, paths: changes.paths, subtrees: changes.subtrees, ...opts });
  assert.deepEqual(lines(patched.manifest), lines(full.manifest));
  assert.equal(patched.manifest.header.xattrs, full.manifest.header.xattrs);
  assert.equal(patched.status, 0);
  return patched.manifest;
}

describe('patchManifest', () => {
  test('neighbours of a subtree that sort inside its range stay; the subtree is read again', async () => {
    root = mkdtempSync(join(tmpdir(), 'sysprime-patch-'));
    for (const d of ['a', 'a/b', 'a b', 'a-b', 'a.b', 'a0', 'skip', 'z']) mkdirSync(join(root, d));
    for (const f of ['a/1', 'a/b/2', 'a b/3', 'a-b/4', 'a.b/5', 'a0/6', 'a.txt', 'a!', 'skip/7', 'z/8']) write(f, f);
    symlinkSync('a/1', join(root, 'link'));
    const base = (await createManifest({ root, rules: RULES })).manifest;

    const c = new Changes();
    rmSync(join(root, 'a'), { recursive: true }); // a whole subtree gone
    c.whole('/a');
    mkdirSync(join(root, 'a'));
    write('a/new', 'new'); // and made again with other contents
    write('a.b/5', 'edited');
    c.modified('/a.b/5');
    renameSync(join(root, 'z'), join(root, 'y'));
    c.whole('/z');
    c.whole('/y');
    chmodSync(join(root, 'a0/6'), 0o600);
    c.modified('/a0/6');
    const after = await patchedEqualsWalk(base, c);
    for (const p of ['/a b/3', '/a-b/4', '/a.txt', '/a!', '/a0']) assert.ok(after.entries.some((e) => e.path === p), `${p} kept`);
  });

  test('another name of a changed inode is read again, even when the listing names only one', async () => {
    root = mkdtempSync(join(tmpdir(), 'sysprime-patch-'));
    mkdirSync(join(root, 'one'));
    mkdirSync(join(root, 'two'));
    write('one/f', 'before');
    linkSync(join(root, 'one/f'), join(root, 'two/f'));
    const base = (await createManifest({ root, rules: RULES })).manifest;
    write('one/f', 'after, longer');
    const c = new Changes();
    c.modified('/one/f');
    const after = await patchedEqualsWalk(base, c);
    const two = after.entries.find((e) => e.path === '/two/f')!;
    assert.equal(two.size, 'after, longer'.length);
  });

  test('an unsorted base is put in order; kept entries move to the new device number', async () => {
    root = mkdtempSync(join(tmpdir(), 'sysprime-patch-'));
    for (const d of ['d', 'd.x', 'e']) mkdirSync(join(root, d));
    for (const f of ['d/1', 'd.x/2', 'e/3']) write(f, f);
    const base = (await createManifest({ root, rules: RULES })).manifest;
    const reversed: Manifest = { header: base.header, entries: [...base.entries].reverse() };
    write('d/1', 'changed');
    const c = new Changes();
    c.modified('/d/1');
    await patchedEqualsWalk(reversed, c);

    const dev = lstatSync(root).dev;
    const moved = await patchManifest({ base, root, rules: RULES, paths: c.paths, keptDevice: { from: dev, to: dev + 1 } });
    const kept = moved.manifest.entries.find((e) => e.path === '/e/3')!;
    const reread = moved.manifest.entries.find((e) => e.path === '/d/1')!;
    assert.equal(kept.stat?.dev, dev + 1);
    assert.equal(reread.stat?.dev, dev);
    assert.equal(base.entries.find((e) => e.path === '/e/3')!.stat?.dev, dev, 'the base itself is not changed');
  });

  test('digests of files read again come from the previous manifest when the file is the same', async () => {
    root = mkdtempSync(join(tmpdir(), 'sysprime-patch-'));
    mkdirSync(join(root, 'd'));
    for (let i = 0; i < 20; i++) write(`d/${i}`, `file ${i}`);
    const base = (await createManifest({ root, rules: RULES })).manifest;
    write('d/3', 'edited');
    const previous = (await createManifest({ root, rules: RULES })).manifest;
    const c = new Changes();
    c.whole('/d');
    // Found in the parsed manifest, and in its bytes as a kept manifest is searched.
    for (const lookup of [lookupInManifest(previous), lookupInText(Buffer.from(formatManifest(previous), 'latin1'), Buffer.from(formatIndex(previous), 'latin1'))]) {
      const r = await patchManifest({ base, root, rules: RULES, paths: c.paths, subtrees: c.subtrees, previous: lookup });
      assert.equal(r.hashed, 0);
      assert.equal(r.reused, 20);
    }
  });

  test('random trees and changes: the patched manifest is the walk', async () => {
    let seed = 20261206;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const names = ['a', 'a b', 'a-b', 'a.b', 'a0', 'b', 'b~', 'c\\d', 'é', 'x y.z'];
    for (let round = 0; round < 12; round++) {
      root = mkdtempSync(join(tmpdir(), 'sysprime-patch-'));
      const files: string[] = [];
      const dirs: string[] = [''];
      for (let i = 0; i < 60; i++) {
        const parent = dirs[rand(dirs.length)]!;
        const p = `${parent}/${names[rand(names.length)]}${rand(3) === 0 ? '' : rand(4)}`;
        if (files.includes(p) || dirs.includes(p)) continue;
        if (rand(3) === 0) {
          mkdirSync(join(root, p));
          dirs.push(p);
        } else {
          writeFileSync(join(root, p), `${p} ${i}`);
          files.push(p);
        }
      }
      const base = (await createManifest({ root, rules: RULES })).manifest;
      const c = new Changes();
      for (let k = 0; k < 6; k++) {
        const what = rand(4);
        if (what === 0 && files.length > 0) {
          const f = files[rand(files.length)]!;
          writeFileSync(join(root, f), `edited ${k}`);
          c.modified(f);
        } else if (what === 1 && dirs.length > 1) {
          const d = dirs[1 + rand(dirs.length - 1)]!;
          rmSync(join(root, d), { recursive: true, force: true });
          c.whole(d);
        } else if (what === 2) {
          const d = dirs[rand(dirs.length)]!;
          const p = `${d}/new ${k}`;
          try {
            writeFileSync(join(root, p), 'new');
            c.whole(p);
          } catch {
            // its directory was removed above
          }
        } else if (files.length > 0) {
          const f = files[rand(files.length)]!;
          try {
            chmodSync(join(root, f), 0o640);
            c.modified(f);
          } catch {
            // removed above
          }
        }
      }
      await patchedEqualsWalk(base, c);
      rmSync(root, { recursive: true, force: true });
    }
    root = '';
  });
});
