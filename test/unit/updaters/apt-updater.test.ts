import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cloneDefaults } from '../../../src/config/schema.js';
import { isSysprimeError } from '../../../src/errors.js';
import { commandLabel, failedPackages } from '../../../src/updaters/apt/index.js';
import { createUpdater } from '../../../src/updaters/registry.js';

test('update.method = "apt" makes the apt updater', () => {
  const c = cloneDefaults();
  c.update.method = 'apt';
  const u = createUpdater(c);
  assert.equal(u.method, 'apt');
  assert.match(u.describe(), /apt/);
});

test('a tree without a dpkg database is refused before anything runs in it', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sysprime-apt-unit-'));
  try {
    const c = cloneDefaults();
    c.update.method = 'apt';
    await assert.rejects(
      createUpdater(c).apply({ root, timeout: 60, verbose: false }),
      (err: unknown) => isSysprimeError(err, 'NOT_FOUND') && /no dpkg database/.test(err.message) && err.message.includes(root),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('errors name apt\'s program and verb, not its options', () => {
  assert.equal(commandLabel(['apt-get', '-y', '-o', 'Dpkg::Options::=--force-confold', '-o', 'Dpkg::Use-Pty=0', 'dist-upgrade']), 'apt-get dist-upgrade');
  assert.equal(commandLabel(['apt-mark', 'hold', 'x']), 'apt-mark hold');
  assert.equal(commandLabel(['dpkg', '--purge', 'x']), 'dpkg --purge');
  assert.equal(commandLabel(['apt-get']), 'apt-get');
});

test('the packages dpkg gave up on are read from its summary', () => {
  const out = 'Setting up sysprime-demo (3) ...\ndpkg: error processing package sysprime-demo (--configure):\n installed sysprime-demo package post-installation script subprocess returned error exit status 1\nErrors were encountered while processing:\n sysprime-demo\n libfoo:i386\nE: Sub-process /usr/bin/dpkg returned an error code (1)\n';
  assert.deepEqual(failedPackages(out), ['sysprime-demo', 'libfoo:i386']);
  assert.deepEqual(failedPackages('all fine\n'), []);
});
