/**
 * Hostile trees through the real CLI and the reintegration engine: names of
 * 255 bytes, paths of 4,000 bytes and beyond PATH_MAX, deep nesting, a
 * directory of 200,000 files, files that vanish or grow during the walk.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sysprime } from '../../fixtures/cli.js';
import { run } from '../../../src/process/run.js';
import { createManifest, parseRules } from '../../../src/bart/index.js';
import { planReintegration } from '../../../src/reintegrate/plan.js';
import { applyPlan } from '../../../src/reintegrate/apply.js';

let dir = '';
const P = (...p: string[]) => join(dir, ...p);
const LONG = 'n'.repeat(255);
const SEGMENT = 's'.repeat(200);

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sysprime-trees-'));
  chmodSync(dir, 0o755);
});

after(async () => {
  // Paths beyond PATH_MAX cannot be removed by one rmSync call from here.
  if (dir !== '') await run('rm', ['-rf', dir]);
});

const paths = (manifest: string): string[] => manifest.split('\n').filter((l) => l.startsWith('/')).map((l) => l.split(' ')[0]!);

/** mkdir one component at a time below `root`, from a shell that cd's: works beyond PATH_MAX. */
async function deepDirs(root: string, comps: readonly string[], file: string): Promise<void> {
  await run('bash', ['-c', 'cd "$1" && shift && f=$1 && shift && for c in "$@"; do mkdir "$c" && cd "$c"; done && echo deep > "$f"', 'deep', root, file, ...comps]);
}

test('255-byte names, a 4,000-byte path and 1,500 levels of nesting are listed and compared', async () => {
  const root = P('long');
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc', LONG), 'long name\n');
  await deepDirs(root, Array.from({ length: 19 }, () => SEGMENT), 'f');
  await deepDirs(root, Array.from({ length: 1500 }, () => 'd'), 'leaf');
  const first = await sysprime(['bart', 'create', '-R', root, '-o', P('long.1')]);
  assert.equal(first.code, 0, first.stderr);
  const listed = paths(readFileSync(P('long.1'), 'latin1'));
  assert.ok(listed.includes(`/etc/${LONG}`));
  const deepFile = '/' + Array.from({ length: 19 }, () => SEGMENT).join('/') + '/f';
  assert.ok(deepFile.length > 3800);
  assert.ok(listed.includes(deepFile), 'the 4,000-byte path is listed');
  const nested = '/' + Array.from({ length: 1500 }, () => 'd').join('/') + '/leaf';
  assert.ok(listed.includes(nested), 'the deepest file is listed');

  await run('bash', ['-c', `cd "$1" && cd ${Array.from({ length: 19 }, () => SEGMENT).join('/')} && echo changed > f`, 'x', root]);
  const second = await sysprime(['bart', 'create', '-R', root, '-o', P('long.2')]);
  assert.equal(second.code, 0, second.stderr);
  const cmp = await sysprime(['bart', 'compare', P('long.1'), P('long.2')]);
  assert.equal(cmp.code, 1);
  assert.ok(cmp.stdout.includes(deepFile), 'the change at the end of the long path is reported');
});

test('a path beyond PATH_MAX is named as not listed, exit 1, and everything else is listed', async () => {
  const root = P('beyond');
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc/ok'), 'ok\n');
  await deepDirs(root, Array.from({ length: 30 }, () => SEGMENT), 'too-deep');
  const r = await sysprime(['bart', 'create', '-R', root]);
  assert.equal(r.code, 1, `a non-fatal error, not a crash:\n${r.stderr.slice(0, 2000)}`);
  assert.doesNotMatch(r.stderr, /internal error|this is a bug/);
  assert.match(r.stderr, /too long|PATH_MAX|ENAMETOOLONG/i);
  const listed = paths(r.stdout);
  assert.ok(listed.includes('/etc/ok'));
  assert.ok(listed.some((p) => p.length > 3000), 'what fits is still listed');
});

test('a directory of 200,000 files: every one listed, one changed file found', async () => {
  const root = P('many');
  mkdirSync(join(root, 'many'), { recursive: true });
  await run('bash', ['-c', 'cd "$1" && seq -f "f%06g" 1 200000 | xargs touch', 'many', join(root, 'many')]);
  const first = await sysprime(['bart', 'create', '-R', root, '-o', P('many.1')]);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(paths(readFileSync(P('many.1'), 'latin1')).length, 200_002, 'the root, the directory and 200,000 files');
  writeFileSync(join(root, 'many/f123456'), 'changed\n');
  const second = await sysprime(['bart', 'create', '-R', root, '-o', P('many.2')]);
  assert.equal(second.code, 0, second.stderr);
  const cmp = await sysprime(['bart', 'compare', P('many.1'), P('many.2')]);
  assert.equal(cmp.code, 1);
  assert.deepEqual(cmp.stdout.split('\n').filter((l) => l.startsWith('/')), ['/many/f123456:']);
});

test('files vanishing and growing during the walk: no crash, each one named, the rest listed', async () => {
  const root = P('busy');
  mkdirSync(join(root, 'churn'), { recursive: true });
  writeFileSync(join(root, 'stable'), 'stable\n');
  for (let i = 0; i < 2000; i++) writeFileSync(join(root, 'churn', `f${i}`), `${i}\n`);
  const churn = spawn(
    'bash',
    ['-c', 'cd "$1" && while :; do for i in $(seq 0 1999); do rm -f churn/f$i; echo $i > churn/f$i; done; head -c 65536 /dev/zero >> grow; done', 'churn', root],
    { stdio: 'ignore' },
  );
  try {
    for (let round = 0; round < 5; round++) {
      const r = await sysprime(['bart', 'create', '-R', root]);
      assert.ok(r.code === 0 || r.code === 1, `exit ${r.code}: ${r.stderr.slice(0, 500)}`);
      assert.doesNotMatch(r.stderr, /internal error|this is a bug/);
      if (r.code === 1) assert.match(r.stderr, new RegExp(root.replace(/[/.]/g, '\\$&')), 'each problem names its path');
      assert.ok(paths(r.stdout).includes('/stable'));
    }
  } finally {
    churn.kill('SIGKILL');
    await new Promise((res) => churn.once('exit', res));
  }
});

test('reintegration carries a path of nearly 4,000 bytes ending in a 255-byte name into the new tree', async () => {
  const rules = parseRules('CHECK all\nIGNORE dirmtime mtime lnmtime\n');
  const base = P('reint/base');
  const ours = P('reint/ours');
  const target = P('reint/target');
  for (const d of [base, ours, target]) mkdirSync(join(d, 'srv'), { recursive: true });
  await deepDirs(join(ours, 'srv'), Array.from({ length: 18 }, () => SEGMENT), LONG);
  const manifest = async (root: string) => (await createManifest({ root, rules, threads: 1 })).manifest;
  const baseManifest = await manifest(base);
  const plan = planReintegration({ base: baseManifest, ours: await manifest(ours), theirs: baseManifest });
  const report = await applyPlan(plan, { baseRoot: base, oursRoot: ours, targetRoot: target });
  assert.deepEqual(report.items.filter((i) => i.outcome === 'failed').map((i) => [i.path, i.detail]), []);
  const copied = await run('bash', ['-c', `cd "$1/srv" && cd ${Array.from({ length: 18 }, () => SEGMENT).join('/')} && cat ${LONG}`, 'x', target]);
  assert.equal(copied.stdout, 'deep\n');
});
