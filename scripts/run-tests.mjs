#!/usr/bin/env node
// Runs the compiled tests with node's own runner. `unit` runs only the pure
// tests; `real` only the ones that build loop-file pools; any other argument
// is a substring a test file's path must contain.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const testDir = join(root, 'dist', 'test');
const filter = process.argv[2];

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

let files = walk(testDir).sort();
if (filter === 'unit') files = files.filter((f) => relative(testDir, f).startsWith('unit/'));
else if (filter === 'real') files = files.filter((f) => relative(testDir, f).startsWith('real/'));
else if (filter) files = files.filter((f) => f.includes(filter));
if (files.length === 0) {
  console.error(`no test files match ${filter ?? '(all)'}`);
  process.exit(1);
}
// The tests run on the runtime package.json pins (scripts/setup.sh installs
// it), whichever node started this script.
const pinned = join(root, 'node_modules', '.bin', 'node');
// The pool tests start sysprime some thousands of times; V8's compiled code
// kept between runs (Node's compile cache, in the tests' own cache
// directory, root's) saves about a quarter of each start's module loading.
const cache = process.env['SYSPRIME_TEST_CACHE'] ?? '/var/cache/sysprime-test';
const env = process.getuid?.() === 0 && process.env['NODE_COMPILE_CACHE'] === undefined ? { ...process.env, NODE_COMPILE_CACHE: join(cache, 'node-compile-cache') } : process.env;
const res = spawnSync(existsSync(pinned) ? pinned : process.execPath, ['--test', '--test-reporter=spec', ...files], { stdio: 'inherit', env });
process.exit(res.status ?? 1);
