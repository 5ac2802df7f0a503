#!/usr/bin/env node
// `npm test` after the build: the unit and pool tests, and beside them the
// VM suite. The pool tests keep about one core busy (one test file at a
// time, mostly waiting on btrfs, zfs and the processes they start), so the
// VM suite takes the other: one VM or image build while the pool tests run,
// two once they are done (`--beside`). Both always run to the end; the
// status is the first failure's. The VM suite's lines are marked `vm|`.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const root = new URL('..', import.meta.url).pathname;
const node = process.execPath;

const tests = spawn(node, ['scripts/run-tests.mjs'], { cwd: root, stdio: 'inherit' });
const vm = spawn(node, ['dist/vm-tests/run.js', '--beside', String(tests.pid), ...process.argv.slice(2)], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
for (const [from, to] of [[vm.stdout, process.stdout], [vm.stderr, process.stderr]]) {
  createInterface({ input: from, crlfDelay: Infinity }).on('line', (l) => to.write(`vm| ${l}\n`));
}

const ended = (child) => new Promise((done) => child.on('exit', (code, signal) => done(code ?? 128 + (signal === 'SIGKILL' ? 9 : 15))));
// A Ctrl-C or a CI stop reaches both: the VM suite cleans up its loop devices, mounts and VMs.
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const child of [tests, vm]) if (child.exitCode === null) child.kill(sig);
  });
}
const [t, v] = await Promise.all([ended(tests), ended(vm)]);
console.log(`unit and pool tests: ${t === 0 ? 'passed' : `failed (${t})`}; VM suite: ${v === 0 ? 'passed' : `failed (${v})`}`);
process.exit(t !== 0 ? t : v);
