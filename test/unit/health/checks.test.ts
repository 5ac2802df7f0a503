/**
 * The health checks of a boot, run for real on scripts in a scratch
 * directory: required scripts decide, wanted ones warn, the timeout stops
 * a hung check and fails it, and what follows a result is decided from the
 * environments' history.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cloneDefaults } from '../../../src/config/schema.js';
import { runHealthChecks } from '../../../src/health/checks.js';
import { decideAfterChecks } from '../../../src/health/after-boot.js';
import { whileBusy } from '../../../src/state/lock.js';
import { SysprimeError } from '../../../src/errors.js';
import { fallbacksSinceGood, lastHealth, onTrial } from '../../../src/health/history.js';

const scratch = mkdtempSync(join(tmpdir(), 'sysprime-health-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

let n = 0;
function checks(files: Record<string, string | null>) {
  const dir = join(scratch, String(n++));
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), body ?? 'not a script\n');
    if (body !== null) chmodSync(join(dir, name), 0o755);
  }
  const config = cloneDefaults();
  config.health.dir = dir;
  return config;
}

test('all required scripts pass: good; wanted failures and non-executables only warn', async () => {
  const config = checks({
    'required/10-ok': '#!/bin/sh\nexit 0\n',
    'required/20-ok': '#!/bin/sh\necho fine\n',
    'required/README': null,
    'required/30-x.dpkg-old': '#!/bin/sh\nexit 1\n',
    'wanted/50-disk': '#!/bin/sh\necho "disk 91% full" >&2\nexit 1\n',
  });
  const r = await runHealthChecks(config);
  assert.equal(r.result, 'good');
  assert.deepEqual(r.checks.map((c) => [c.name, c.ok]), [['required/10-ok', true], ['required/20-ok', true], ['wanted/50-disk', false]]);
  assert.deepEqual(r.failed, []);
  assert.ok(r.warnings.includes('wanted/50-disk: exited 1: disk 91% full'), r.warnings.join('\n'));
  assert.ok(r.warnings.some((w) => /required\/README: not an executable file, not run$/.test(w)));
});

test('a required script that fails makes the boot bad, with its last line of stderr as the reason', async () => {
  const config = checks({ 'required/10-http': '#!/bin/sh\necho checking\necho "curl: (7) connection refused" >&2\nexit 7\n', 'required/20-ok': '#!/bin/sh\n' });
  const r = await runHealthChecks(config);
  assert.equal(r.result, 'bad');
  assert.deepEqual(r.failed, ['required/10-http: exited 7: curl: (7) connection refused']);
});

test('a check still running at [health] timeout is stopped and fails, and the others are not waited for beyond it', async () => {
  const config = checks({ 'required/10-hang': '#!/bin/sh\nsleep 30\n' });
  config.health.timeout = 1;
  const started = Date.now();
  const r = await runHealthChecks(config);
  assert.ok(Date.now() - started < 15_000, 'the hung check was not stopped');
  assert.equal(r.result, 'bad');
  assert.match(r.failed[0] ?? '', /^required\/10-hang: did not finish within \[health\] timeout \(1 s\); stopped$/);
});

test('a required unit that is not active fails the boot; no directory and no units is good', async () => {
  const config = checks({});
  assert.equal((await runHealthChecks(config)).result, 'good');
  config.health.required = ['sysprime-no-such-unit.service'];
  const r = await runHealthChecks(config);
  assert.equal(r.result, 'bad');
  assert.match(r.failed[0] ?? '', /^unit sysprime-no-such-unit\.service: /);
});

test('after the checks: pass, fall back to the newest environment known good, or stay after max_reboots', () => {
  const others = [
    { name: 'old', lastGood: '2026-11-01T00:00:00Z' },
    { name: 'yesterday', lastGood: '2026-12-04T03:00:00Z' },
    { name: 'never-checked', lastGood: null },
  ];
  assert.deepEqual(decideAfterChecks({ result: 'good', running: 'new', fallbacksSoFar: 0, inTrial: true, maxReboots: 1, others }), { kind: 'passed' });
  assert.deepEqual(decideAfterChecks({ result: 'bad', running: 'new', fallbacksSoFar: 0, inTrial: true, maxReboots: 1, others }), { kind: 'fallback', to: 'yesterday', attempt: 1 });
  const stay = decideAfterChecks({ result: 'bad', running: 'new', fallbacksSoFar: 1, inTrial: true, maxReboots: 1, others });
  assert.equal(stay.kind, 'stay');
  assert.match(stay.kind === 'stay' ? stay.why : '', /fell back 1 time already \(\[health\] max_reboots = 1\)/);
  assert.equal(decideAfterChecks({ result: 'bad', running: 'new', fallbacksSoFar: 0, inTrial: true, maxReboots: 0, others }).kind, 'stay');
  assert.equal(decideAfterChecks({ result: 'bad', running: 'new', fallbacksSoFar: 0, inTrial: true, maxReboots: 3, others: [{ name: 'x', lastGood: null }] }).kind, 'stay');
});

test('the last health result of an environment, from its history', () => {
  const ev = (event: string, at: string, detail: Record<string, unknown> = {}) => ({ at, environment: 'e', event, detail });
  assert.equal(lastHealth([ev('activate', '1')]), null);
  assert.deepEqual(lastHealth([ev('health-good', '1'), ev('health-bad', '2', { failed: ['unit x: is failed'] }), ev('health-fallback', '3')]), { result: 'bad', at: '2', reasons: ['unit x: is failed'] });
});

test('a fallback waits while another sysprime holds the lock, then is made; other errors and a wait that runs out are not hidden', async () => {
  let tries = 0;
  const busy = () => new SysprimeError('BUSY', 'another sysprime (pid 1) is reintegrating');
  const made = await whileBusy(
    async () => {
      if (++tries < 3) throw busy();
      return 'activated';
    },
    { waitMs: 60_000, pauseMs: 1 },
  );
  assert.equal(made, 'activated');
  assert.equal(tries, 3);

  let t = 0;
  await assert.rejects(
    whileBusy(async () => { throw busy(); }, { waitMs: 10, pauseMs: 1, now: () => (t += 6) }),
    (err: unknown) => err instanceof SysprimeError && err.code === 'BUSY',
  );
  let calls = 0;
  await assert.rejects(
    whileBusy(async () => { calls++; throw new SysprimeError('NOT_FOUND', 'gone'); }, { waitMs: 60_000, pauseMs: 1 }),
    (err: unknown) => err instanceof SysprimeError && err.code === 'NOT_FOUND',
  );
  assert.equal(calls, 1, 'not retried');
});

test('max_reboots bounds the fallbacks since the environment last passed its checks, not every fallback it ever had', () => {
  const ev = (event: string) => ({ at: '2026-12-05T00:00:00Z', environment: 'new', event, detail: {} });
  assert.equal(fallbacksSinceGood([]), 0);
  assert.equal(fallbacksSinceGood([ev('health-bad'), ev('health-fallback'), ev('health-bad'), ev('health-fallback')]), 2);
  assert.equal(fallbacksSinceGood([ev('health-bad'), ev('health-fallback'), ev('health-good'), ev('health-bad')]), 0, 'a good boot since starts the count again');
  assert.equal(fallbacksSinceGood([ev('health-fallback'), ev('health-good'), ev('health-bad'), ev('health-fallback')]), 1);
});

test('only an environment on trial (activated since it last passed) falls back; one failing on an ordinary reboot stays', () => {
  const others = [{ name: 'yesterday', lastGood: '2026-12-01T00:00:00Z' }];
  const stay = decideAfterChecks({ result: 'bad', running: 'today', fallbacksSoFar: 0, inTrial: false, maxReboots: 1, others });
  assert.equal(stay.kind, 'stay');
  assert.match(stay.kind === 'stay' ? stay.why : '', /not on trial/);
  const ev = (event: string) => ({ at: '2026-12-05T00:00:00Z', environment: 'today', event, detail: {} });
  assert.equal(onTrial([ev('init')]), false, 'an adopted environment was never activated');
  assert.equal(onTrial([ev('stage'), ev('activate')]), true, 'a staged environment on its first boots');
  assert.equal(onTrial([ev('activate'), ev('health-good'), ev('health-bad')]), false, 'it passed since');
  assert.equal(onTrial([ev('activate'), ev('health-good'), ev('activate')]), true, 'activated again');
});

test('the history is of the environment that has the name now: one destroyed and made again under the same name starts afresh', () => {
  const ev = (event: string) => ({ at: '2026-12-05T00:00:00Z', environment: 'next', event, detail: { failed: ['x'] } });
  const reused = [ev('staged'), ev('activate'), ev('health-bad'), ev('health-fallback'), ev('destroy'), ev('staged'), ev('activate')];
  assert.equal(fallbacksSinceGood(reused), 0);
  assert.equal(onTrial(reused), true);
  assert.equal(lastHealth(reused), null, 'the old one\'s failure is not the new one\'s');
});
