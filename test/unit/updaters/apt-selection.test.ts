import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PackageState } from '../../../src/updaters/apt/dpkg-status.js';
import { describePlan, isEmptyPlan, parsePolicyCandidates, planSelection, splitAvailable, transactionArguments } from '../../../src/updaters/apt/selection.js';

function state(installed: Record<string, string>, more: { held?: string[]; configFiles?: string[]; auto?: string[] } = {}): PackageState {
  return {
    native: 'amd64',
    installed: new Map(Object.entries(installed)),
    held: new Set(more.held ?? []),
    configFiles: new Set(more.configFiles ?? []),
    auto: new Set(more.auto ?? []),
  };
}

const BASE = { base: '1', demo: '1', nano: '7', vim: '9', curl: '8' };

test('no drift: nothing to do', () => {
  const plan = planSelection(state(BASE), state(BASE), state(BASE));
  assert.equal(isEmptyPlan(plan), true);
  assert.equal(describePlan(plan), 'no package-selection drift');
  assert.deepEqual(transactionArguments(plan), []);
});

test('what the admin installed by hand is installed; its dependencies come along by themselves', () => {
  const live = state({ ...BASE, extra: '1', libextra: '1' }, { auto: ['libextra'] });
  const plan = planSelection(state(BASE), live, state(BASE));
  assert.deepEqual(plan.install, ['extra']);
  assert.deepEqual(transactionArguments(plan), ['extra']);
});

test('removed packages are removed; purged ones purged', () => {
  const { nano: _n, vim: _v, ...rest } = BASE;
  const live = state(rest, { configFiles: ['nano'] });
  const plan = planSelection(state(BASE), live, state(BASE));
  assert.deepEqual(plan.remove, ['nano']);
  assert.deepEqual(plan.purge, ['vim']);
  assert.deepEqual(transactionArguments(plan), ['nano-', 'vim-']);
});

test('holds set on live are replayed, holds lifted on live are lifted', () => {
  const pristine = state(BASE, { held: ['curl'] });
  const live = state(BASE, { held: ['demo'] });
  const plan = planSelection(pristine, live, state(BASE, { held: ['curl'] }));
  assert.deepEqual(plan.hold, ['demo']);
  assert.deepEqual(plan.unhold, ['curl']);
  assert.match(describePlan(plan), /hold demo; unhold curl/);
});

test('the clone is read, not assumed: a second run plans nothing', () => {
  const { nano: _n, ...rest } = BASE;
  const pristine = state(BASE);
  const live = state({ ...rest, extra: '1' }, { held: ['demo'] });
  const first = planSelection(pristine, live, pristine);
  assert.deepEqual(first, { install: ['extra'], remove: [], purge: ['nano'], hold: ['demo'], unhold: [] });
  const cloneAfter = state({ ...rest, extra: '1', demo: '2' }, { held: ['demo'] });
  assert.equal(isEmptyPlan(planSelection(pristine, live, cloneAfter)), true);
});

test('a package held in pristine and removed on live is removed, not unheld', () => {
  const { curl: _c, ...rest } = BASE;
  const plan = planSelection(state(BASE, { held: ['curl'] }), state(rest), state(BASE, { held: ['curl'] }));
  assert.deepEqual(plan.purge, ['curl']);
  assert.deepEqual(plan.unhold, []);
});

test('foreign-architecture packages keep their qualified names', () => {
  const plan = planSelection(state(BASE), state({ ...BASE, 'libc6:i386': '2.36' }), state(BASE));
  assert.deepEqual(plan.install, ['libc6:i386']);
});

test('apt-cache policy: candidates, "(none)", and packages apt does not know', () => {
  const out = `sysprime-demo:
  Installed: (none)
  Candidate: 2
  Version table:
     2 500
        500 file:/var/cache/repo ./ Packages
     1 500
        500 file:/var/cache/repo ./ Packages
old-thing:
  Installed: (none)
  Candidate: (none)
  Version table:
libc6:i386:
  Installed: (none)
  Candidate: 2.36-9
  Version table:
`;
  const candidates = parsePolicyCandidates(out);
  assert.deepEqual([...candidates], [
    ['sysprime-demo', '2'],
    ['old-thing', null],
    ['libc6:i386', '2.36-9'],
  ]);
  const plan = { install: ['gone', 'libc6:i386', 'old-thing', 'sysprime-demo'], remove: ['x'], purge: [], hold: [], unhold: [] };
  const split = splitAvailable(plan, candidates);
  assert.deepEqual(split.plan.install, ['libc6:i386', 'sysprime-demo']);
  assert.deepEqual(split.unavailable, ['gone', 'old-thing']);
  assert.deepEqual(split.plan.remove, ['x']);
});
