/** The reboot planner and the maintenance windows it reads: pure, in local time. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../../src/config/load.js';
import { nextWindow, openWindow, parseWindow, type Window } from '../../../src/config/windows.js';
import { isSysprimeError } from '../../../src/errors.js';
import { planReboot } from '../../../src/reboot/policy.js';

const win = (text: string): Window => {
  const w = parseWindow(text);
  if (typeof w === 'string') throw new Error(`${text}: ${w}`);
  return w;
};
// 5 December 2026 is a Saturday; the constructor reads local time, as the windows do.
const sat = (h: number, m = 0) => new Date(2026, 11, 5, h, m);
const next = { name: 'gen-2', generation: 2 };

test('windows parse with day lists, ranges, full names and no days at all', () => {
  assert.deepEqual([...win('Sat,Sun 02:00-05:00').days].sort(), [0, 6]);
  assert.deepEqual([...win('Mon-Fri 22:00-01:00').days].sort(), [1, 2, 3, 4, 5]);
  assert.deepEqual([...win('Fri-Mon 01:00-02:00').days].sort(), [0, 1, 5, 6]);
  assert.deepEqual([...win('saturday 00:00-24:00').days], [6]);
  assert.equal(win('03:00-04:30').days.size, 7);
  assert.equal(win('Mon-Fri 22:00-01:00').length, 180);
  assert.equal(win('saturday 00:00-24:00').length, 1440);
});

test('a window that does not parse says why', () => {
  for (const bad of ['Sat 2am-5am', 'Sat,Sun', 'Caturday 02:00-05:00', 'Sat 25:00-26:00', 'Sat 02:60-03:00', 'Sat 02:00-02:00', 'Sat 24:00-01:00', 'Mon-Wed-Fri 01:00-02:00', '']) {
    assert.equal(typeof parseWindow(bad), 'string', bad);
  }
});

test('open and next windows, also past midnight into the next day', () => {
  const w = [win('Sat,Sun 02:00-05:00')];
  assert.ok(openWindow(w, sat(3)));
  assert.equal(openWindow(w, sat(5)), undefined, 'the end is not inside');
  assert.equal(openWindow(w, sat(1, 59)), undefined);
  assert.deepEqual(nextWindow(w, sat(6))?.starts, new Date(2026, 11, 6, 2, 0));
  // Fri 23:00-01:00 is still open early on Saturday, and not on Sunday.
  const late = [win('Fri 23:00-01:00')];
  assert.ok(openWindow(late, sat(0, 30)));
  assert.equal(openWindow(late, new Date(2026, 11, 6, 0, 30)), undefined);
  assert.deepEqual(nextWindow(late, sat(12))?.starts, new Date(2026, 11, 11, 23, 0));
});

test('the plan: never waits, immediate reboots, window reboots only inside one', () => {
  const windows = [win('Sat,Sun 02:00-05:00')];
  assert.equal(planReboot({ policy: 'never', windows, now: sat(3), next, running: 'a' }).kind, 'wait');
  assert.deepEqual(planReboot({ policy: 'immediate', windows: [], now: sat(12), next, running: 'a' }), { kind: 'reboot', into: next, why: '[reboot] policy is "immediate"' });
  const inside = planReboot({ policy: 'window', windows, now: sat(3), next, running: 'a' });
  assert.equal(inside.kind, 'reboot');
  assert.match(inside.why, /Sat,Sun 02:00-05:00.*until 05:00/);
  const outside = planReboot({ policy: 'window', windows, now: sat(12), next, running: 'a' });
  assert.equal(outside.kind, 'wait');
  assert.deepEqual(outside.kind === 'wait' ? outside.until : null, new Date(2026, 11, 6, 2, 0));
});

test('nothing to reboot into: no activated staged environment, whatever the policy', () => {
  const p = planReboot({ policy: 'immediate', windows: [], now: sat(3), next: undefined, running: 'a' });
  assert.equal(p.kind, 'nothing');
  assert.match(p.why, /"a" boots next again/);
});

test('the configuration refuses a window that does not parse, and policy "window" without windows, in one line', () => {
  const refused = (text: string, re: RegExp) =>
    assert.throws(() => parseConfigText(text, 'x.toml'), (err: unknown) => isSysprimeError(err, 'CONFIG') && re.test(err.message) && !err.message.includes('\n'), text);
  refused('[reboot]\npolicy = "window"\nwindows = ["Sat 2am-5am"]\n', /'reboot\.windows': window "Sat 2am-5am" does not parse/);
  refused('[reboot]\npolicy = "window"\n', /policy = "window" needs reboot\.windows/);
  refused('[reboot]\npolicy = "sometimes"\n', /'reboot\.policy' must be one of never, window, immediate/);
  const c = parseConfigText('[reboot]\npolicy = "window"\nwindows = ["Sat,Sun 02:00-05:00"]\ncommand = "true"\n', 'x.toml');
  assert.equal(c.reboot.windows[0]?.start, 120);
  assert.equal(c.reboot.command, 'true');
});

test('fleet settings: slots of 0, a group that would reach into other keys, endpoints without a port', () => {
  const refused = (text: string, re: RegExp) => assert.throws(() => parseConfigText(text, 'x.toml'), (err: unknown) => isSysprimeError(err, 'CONFIG') && re.test(err.message), text);
  refused('[fleet]\nslots = 0\n', /'fleet\.slots' must be a whole number from 1/);
  refused('[fleet]\ngroup = "a/b"\n', /'fleet\.group' must be a name/);
  refused('[fleet]\nafter = ["ok", "../x"]\n', /'fleet\.after' must be a list of names/);
  refused('[fleet]\nendpoints = ["127.0.0.1"]\n', /'fleet\.endpoints' must be a list of endpoints/);
  refused('[fleet]\ngroup = "canary"\nafter = ["canary"]\n', /own group "canary"/);
});
