import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cloneDefaults } from '../../../src/config/schema.js';
import { createUpdater } from '../../../src/updaters/registry.js';
import { interpretExit } from '../../../src/updaters/command/index.js';
import { isSysprimeError } from '../../../src/errors.js';

test('the configured method picks the updater', async () => {
  const c = cloneDefaults();
  for (const method of ['none', 'store', 'command', 'apt'] as const) {
    c.update.method = method;
    assert.equal(createUpdater(c).method, method);
  }
});

test('"none" has nothing to update', async () => {
  const c = cloneDefaults();
  c.update.method = 'none';
  const u = createUpdater(c);
  await u.probe();
  const r = await u.apply({ root: '/nonexistent', timeout: 1, verbose: false });
  assert.equal(r.changed, false);
  assert.deepEqual(r.packages, []);
});

test('store and command updaters say which key is missing', async () => {
  const c = cloneDefaults();
  c.update.method = 'store';
  await assert.rejects(createUpdater(c).probe(), (err: unknown) => isSysprimeError(err, 'CONFIG') && /update.repository/.test(err.message));
  c.update.method = 'command';
  await assert.rejects(createUpdater(c).probe(), (err: unknown) => isSysprimeError(err, 'CONFIG') && /update.command/.test(err.message));
});

test('a method no updater serves is a configuration error', () => {
  const c = cloneDefaults();
  c.update.method = 'bogus' as never;
  assert.throws(() => createUpdater(c), (err: unknown) => isSysprimeError(err, 'CONFIG'));
});

test('command exit statuses: 0 updated, 100 nothing to do, else failure with stderr', () => {
  assert.equal(interpretExit('x', { exitCode: 0, stdout: '', stderr: '' }).changed, true);
  assert.equal(interpretExit('x', { exitCode: 100, stdout: '', stderr: '' }).changed, false);
  assert.throws(
    () => interpretExit('x', { exitCode: 3, stdout: '', stderr: '\nmirror unreachable\nmore\n' }),
    (err: unknown) => isSysprimeError(err, 'COMMAND_FAILED') && /exit status 3\): mirror unreachable/.test(err.message) && /more/.test(err.detail ?? ''),
  );
});
