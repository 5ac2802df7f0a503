/**
 * Extended attributes read ahead in batches during apply: the result is
 * exactly what reading each object would give (inherited ACLs on new files
 * included), and the number of `getfattr` processes grows with batches and
 * directories, not with files.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { createManifest, parseRules } from '../../../src/bart/index.js';
import { planReintegration } from '../../../src/reintegrate/plan.js';
import { applyPlan } from '../../../src/reintegrate/apply.js';

let dir = '';
let shim = '';
const P = (...p: string[]) => join(dir, ...p);
const RULES = parseRules('CHECK all\nCHECK xattr\nIGNORE dirmtime mtime lnmtime\n');
const FILES = 600;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sysprime-xattr-cache-'));
  chmodSync(dir, 0o755);
  // A getfattr that counts its runs, then is the real one.
  shim = P('bin');
  mkdirSync(shim);
  writeFileSync(join(shim, 'getfattr'), `#!/bin/sh\necho run >> "${P('getfattr.count')}"\nexec /usr/bin/getfattr "$@"\n`);
  chmodSync(join(shim, 'getfattr'), 0o755);
});

after(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

const runs = (): number => {
  try {
    return readFileSync(P('getfattr.count'), 'utf8').split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
};

async function applyCounted(base: string, ours: string, target: string) {
  const manifest = async (root: string) => (await createManifest({ root, rules: RULES, threads: 1 })).manifest;
  const b = await manifest(base);
  const plan = planReintegration({ base: b, ours: await manifest(ours), theirs: b });
  rmSync(P('getfattr.count'), { force: true });
  const path = process.env['PATH'];
  process.env['PATH'] = `${shim}:${path}`;
  try {
    const report = await applyPlan(plan, { baseRoot: base, oursRoot: ours, theirsRoot: base, targetRoot: target });
    return { report, runs: runs() };
  } finally {
    process.env['PATH'] = path;
  }
}

test(`${FILES} admin files in three directories: a handful of getfattr runs, every attribute carried`, async () => {
  const [base, ours, target] = [P('many/base'), P('many/ours'), P('many/target')];
  for (const root of [base, ours, target]) for (const d of ['etc/a', 'etc/b', 'srv/c']) mkdirSync(join(root, d), { recursive: true });
  for (let i = 0; i < FILES; i++) {
    const d = ['etc/a', 'etc/b', 'srv/c'][i % 3]!;
    writeFileSync(join(ours, d, `f${i}`), `admin ${i}\n`);
    // Already in the target with other contents, as an update would leave it.
    if (i % 2 === 0) writeFileSync(join(target, d, `f${i}`), `update ${i}\n`);
  }
  await run('setfattr', ['-n', 'user.admin', '-v', 'kept', join(ours, 'etc/a/f0')]);

  const { report, runs: n } = await applyCounted(base, ours, target);
  assert.equal(report.counts.failed, 0, JSON.stringify(report.items.filter((i) => i.outcome === 'failed').slice(0, 3)));
  assert.equal(report.counts.applied, FILES);
  assert.equal(readFileSync(join(target, 'srv/c/f599'), 'utf8'), 'admin 599\n');
  const attr = await run('getfattr', ['-n', 'user.admin', '--only-values', join(target, 'etc/a/f0')]);
  assert.equal(attr.stdout, 'kept');
  // Reads ahead: ours, target and the update's tree in batches (256 or more, as open files allow), and one read per directory written into.
  assert.ok(n <= 16, `getfattr ran ${n} times for ${FILES} files`);

  const again = await applyCounted(base, ours, target);
  assert.equal(again.report.counts.applied, 0, 'applying again changes nothing');
  assert.ok(again.runs <= 16, `getfattr ran ${again.runs} times on the second apply`);
});

test('a new file in a directory with a default ACL ends with exactly the admin attributes, not the inherited ACL', async () => {
  const [base, ours, target] = [P('acl/base'), P('acl/ours'), P('acl/target')];
  for (const root of [base, ours, target]) mkdirSync(join(root, 'etc/shared'), { recursive: true });
  await run('setfacl', ['-d', '-m', 'u:4321:r', join(target, 'etc/shared')]);
  writeFileSync(join(ours, 'etc/shared/plain'), 'no acl\n');
  writeFileSync(join(ours, 'etc/shared/tagged'), 'user attribute\n');
  await run('setfattr', ['-n', 'user.tag', '-v', 'x', join(ours, 'etc/shared/tagged')]);

  const { report } = await applyCounted(base, ours, target);
  assert.equal(report.counts.failed, 0);
  const dump = async (f: string) => (await run('getfattr', ['-d', '-m', '-', '--absolute-names', join(target, 'etc/shared', f)], { allowFailure: true })).stdout;
  assert.doesNotMatch(await dump('plain'), /posix_acl/, 'the inherited ACL is removed: the admin file had none');
  const tagged = await dump('tagged');
  assert.match(tagged, /user\.tag="x"/);
  assert.doesNotMatch(tagged, /posix_acl/);
});
