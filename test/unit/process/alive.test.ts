import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { processAlive, processStart } from '../../../src/process/alive.js';

test('processAlive: this process is, by pid and by pid and start time', () => {
  const start = processStart(process.pid);
  assert.ok(start !== null && /^\d+$/.test(start));
  assert.equal(processAlive(process.pid), true);
  assert.equal(processAlive(process.pid, start!), true);
  // The same pid with another start time is a later process, not the one recorded.
  assert.equal(processAlive(process.pid, String(Number(start) + 1)), false);
  assert.equal(processAlive(process.pid, ''), false);
});

test('processAlive: a finished process and pids no process can have are not', () => {
  const child = spawnSync('true');
  assert.equal(processAlive(child.pid!), false);
  assert.equal(processStart(child.pid!), null);
  for (const pid of [0, -1, Number.NaN, 1.5, 2 ** 60]) assert.equal(processAlive(pid), false, String(pid));
});

test('faultPoint kills the process at the point SYSPRIME_FAULT_INJECT names, and only there', () => {
  const fault = fileURLToPath(new URL('../../../src/process/fault.js', import.meta.url));
  const script = `const { faultPoint } = await import(${JSON.stringify(fault)}); faultPoint('backend:zfs', 'other'); faultPoint('stage', 'clone:after'); faultPoint('backend:zfs', 'destroy-destroyed'); console.log('not reached');`;
  const run = (spec: string) => spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, SYSPRIME_FAULT_INJECT: spec }, encoding: 'utf8' });
  const killed = run('kill:backend:zfs:destroy-destroyed');
  assert.equal(killed.signal, 'SIGKILL');
  assert.equal(killed.stdout, '');
  const passed = run('kill:backend:zfs:nowhere');
  assert.equal(passed.status, 0, passed.stderr);
  assert.equal(passed.stdout, 'not reached\n');
});
