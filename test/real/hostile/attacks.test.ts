/**
 * Attacks on manifests and reintegration, run as an admin or an attacker
 * would: a forged file that keeps size, mtime and xxh64; file lists and
 * rules that try to leave `-R`; a directory swapped for a link while
 * reintegration writes below it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sysprime } from '../../fixtures/cli.js';
import { forgeXxh64 } from '../../fixtures/xxh64-forge.js';
import { createManifest, parseRules } from '../../../src/bart/index.js';
import { planReintegration } from '../../../src/reintegrate/plan.js';
import { applyPlan } from '../../../src/reintegrate/apply.js';

let dir = '';
const P = (...p: string[]) => join(dir, ...p);

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sysprime-attacks-'));
  chmodSync(dir, 0o755);
});

after(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

const entryLine = (manifest: string, path: string): string | undefined => manifest.split('\n').find((l) => l.startsWith(`${path} `));

test('a forged file with the same size, mtime and xxh64: the xxh64 manifest cannot see it, the sha256 one does', async () => {
  const root = P('forge');
  mkdirSync(join(root, 'etc/ssh'), { recursive: true });
  const config = join(root, 'etc/ssh/sshd_config');
  const original = Buffer.from('# hardened\nPermitRootLogin no\nPasswordAuthentication no\nX11Forwarding no\nUsePAM yes\n'.repeat(4));
  writeFileSync(config, original);
  const before = statSync(config);
  for (const hash of ['xxh64', 'sha256']) {
    const r = await sysprime(['bart', 'create', '-R', root, '--hash', hash, '-o', P(`forge.${hash}`)]);
    assert.equal(r.code, 0, r.stderr);
  }

  const forged = forgeXxh64(original, Buffer.from('PermitRootLogin yes\nPasswordAuthentication yes\n#'));
  assert.notDeepEqual(forged, original);
  writeFileSync(config, forged);
  utimesSync(config, before.atime, before.mtime);

  for (const hash of ['xxh64', 'sha256']) {
    const r = await sysprime(['bart', 'create', '-R', root, '--hash', hash, '-o', P(`forged.${hash}`)]);
    assert.equal(r.code, 0, r.stderr);
  }
  const xxOld = readFileSync(P('forge.xxh64'), 'utf8');
  const xxNew = readFileSync(P('forged.xxh64'), 'utf8');
  assert.equal(entryLine(xxNew, '/etc/ssh/sshd_config'), entryLine(xxOld, '/etc/ssh/sshd_config'), 'the forgery keeps size, mtime and xxh64');
  const xx = await sysprime(['bart', 'compare', P('forge.xxh64'), P('forged.xxh64')]);
  assert.equal(xx.code, 0, 'an xxh64 manifest is not tamper-proof: the forged file compares equal');

  const sha = await sysprime(['bart', 'compare', P('forge.sha256'), P('forged.sha256')]);
  assert.equal(sha.code, 1, sha.stdout + sha.stderr);
  assert.match(sha.stdout, /\/etc\/ssh\/sshd_config/);
  assert.match(sha.stdout, /contents/);
});

/** A tree below -R with a link to / and one to a directory outside it. */
function escapeTree(): { root: string; outside: string } {
  const root = P('escape/root');
  const outside = P('escape/outside');
  if (statSync(root, { throwIfNoEntry: false }) !== undefined) return { root, outside };
  mkdirSync(join(root, 'etc'), { recursive: true });
  mkdirSync(outside, { recursive: true });
  writeFileSync(join(root, 'etc/inside'), 'in\n');
  writeFileSync(join(outside, 'secret'), 'outside the root\n');
  symlinkSync('/', join(root, 'etc/slash'));
  symlinkSync(outside, join(root, 'etc/out'));
  return { root, outside };
}

test('-I never lists a file outside -R, through `..` or through a link', async () => {
  const { root } = escapeTree();
  const depth = root.split('/').length;
  const list = [
    '/etc/inside',
    `/${'../'.repeat(depth)}etc/hostname`,
    `/etc/${'../'.repeat(depth + 1)}etc/hostname`,
    '/etc/slash/etc/hostname',
    '/etc/out/secret',
  ];
  const r = await sysprime(['bart', 'create', '-R', root, '-I'], { input: list.join('\n') + '\n' });
  assert.equal(r.code, 1, 'refused paths are non-fatal errors');
  const entries = r.stdout.split('\n').filter((l) => l.startsWith('/'));
  assert.deepEqual(
    entries.map((l) => l.split(' ')[0]),
    ['/etc/inside'],
    `only the path inside the root is listed:\n${r.stdout}`,
  );
  assert.doesNotMatch(r.stdout, /hostname|secret/);
  assert.match(r.stderr, /\.\./, 'the `..` paths are named');
  assert.match(r.stderr, /etc\/slash/, 'the path through a link is named');
  assert.match(r.stderr, /etc\/out/);
});

test('rules whose subtree leaves -R, through `..` or through a link, walk nothing outside it', async () => {
  const { root } = escapeTree();
  const depth = root.split('/').length;
  const dots = P('escape/dots.rules');
  writeFileSync(dots, `/${'../'.repeat(depth)}etc\nCHECK all\n`);
  const r1 = await sysprime(['bart', 'create', '-R', root, '-r', dots]);
  assert.notEqual(r1.code, 0, r1.stdout);
  assert.match(r1.stderr, /\.\./);
  assert.match(r1.stderr, /line 1/, 'the rules line is named');
  assert.doesNotMatch(r1.stdout, /hostname|passwd/);

  // A subtree through a link is refused; a subtree that is a link is listed as the link.
  const linked = P('escape/linked.rules');
  writeFileSync(linked, '/etc/slash/etc\nCHECK all\n\n/etc/out\nCHECK all\n');
  const r2 = await sysprime(['bart', 'create', '-R', root, '-r', linked]);
  assert.equal(r2.code, 1, r2.stderr);
  const paths = r2.stdout.split('\n').filter((l) => l.startsWith('/')).map((l) => l.split(' ')[0]);
  assert.deepEqual(paths, ['/etc/out'], r2.stdout);
  assert.match(r2.stdout, /^\/etc\/out L /m);
  assert.match(r2.stderr, /etc\/slash.*symbolic link/);
  assert.doesNotMatch(r2.stdout, /hostname|passwd|secret/);

  // Where a subtree block also covers the link's directory, the walk meets the link and lists it, never entering it.
  const both = P('escape/both.rules');
  writeFileSync(both, '/etc/slash/etc\nCHECK all\n\n/etc\nCHECK all\n');
  const r3 = await sysprime(['bart', 'create', '-R', root, '-r', both]);
  const listed = r3.stdout.split('\n').filter((l) => l.startsWith('/')).map((l) => l.split(' ')[0]);
  assert.ok(listed.includes('/etc/inside') && listed.includes('/etc/slash'), r3.stdout);
  assert.ok(!listed.some((p) => p!.startsWith('/etc/slash/') || p!.startsWith('/etc/out/')), `nothing below a link:\n${r3.stdout}`);
});

test('a directory swapped for a link to outside while reintegration writes below it: nothing lands outside', async () => {
  const rules = parseRules('CHECK all\nIGNORE dirmtime mtime lnmtime\n');
  const base = P('race/base');
  const ours = P('race/ours');
  const target = P('race/target');
  const outside = P('race/outside');
  for (const d of [base, ours, target, outside]) mkdirSync(join(d, 'etc/app'), { recursive: true });
  // Many admin files below one directory, so the swap has time to hit mid-apply.
  for (let i = 0; i < 400; i++) writeFileSync(join(ours, 'etc/app', `conf-${i}`), `admin ${i}\n`);
  const manifest = async (root: string) => (await createManifest({ root, rules, threads: 1 })).manifest;
  const baseManifest = await manifest(base);
  const plan = planReintegration({ base: baseManifest, ours: await manifest(ours), theirs: baseManifest });

  // The attacker: swaps the target's etc/app for a link to `outside` and back, as fast as it can.
  const swapper = spawn(
    'bash',
    [
      '-c',
      'cd "$1" && while :; do mv -T app app.real 2>/dev/null && ln -sfn "$2" app && sleep 0.001 && rm -f app && mv -T app.real app 2>/dev/null; done',
      'swap',
      join(target, 'etc'),
      join(outside, 'etc/app'),
    ],
    { stdio: 'ignore' },
  );
  let report;
  try {
    // Later rounds write what a swap made fail earlier, while the swapping goes on.
    for (let round = 0; round < 3; round++) report = await applyPlan(plan, { baseRoot: base, oursRoot: ours, targetRoot: target });
  } finally {
    swapper.kill('SIGKILL');
    await new Promise((res) => swapper.once('exit', res));
  }
  assert.deepEqual(readdirSync(join(outside, 'etc/app')), [], 'no file was written through the link');
  assert.ok(report !== undefined);
  // Whatever was written is in the real directory, under whichever name it had at that moment, and whole.
  for (const d of [join(target, 'etc/app'), join(target, 'etc/app.real')]) {
    let names: string[] = [];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    for (const n of names) {
      assert.doesNotMatch(n, /^\.sysprime-tmp/, `no temporary file left in ${d}`);
      // The attacker's own links and directories may be there too; the files written are whole.
      if (n.startsWith('conf-') && lstatSync(join(d, n)).isFile()) assert.equal(readFileSync(join(d, n), 'utf8'), `admin ${n.slice('conf-'.length)}\n`);
    }
  }
});
