import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cloneDefaults } from '../../../src/config/schema.js';
import { isSysprimeError } from '../../../src/errors.js';
import { createUpdater } from '../../../src/updaters/registry.js';
import { mountsAtOrBelow, parseMountinfo } from '../../../src/os/mounts.js';
import { buildTinyTree } from './tiny-tree.js';

let scratch: string;
before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'sysprime-command-'));
});
after(() => rmSync(scratch, { recursive: true, force: true }));

function updater(command: string, chroot: boolean) {
  const c = cloneDefaults();
  c.update.method = 'command';
  c.update.command = command;
  c.update.chroot = chroot;
  return createUpdater(c);
}

function dir(name: string): string {
  const d = join(scratch, name);
  mkdirSync(d);
  return d;
}

test('exit 0 means updated; the command finds the tree in SYSPRIME_ROOT', async () => {
  const root = dir('plain');
  const script = join(scratch, 'update.sh');
  writeFileSync(script, '#!/bin/sh\nset -e\necho "version 2" > "$SYSPRIME_ROOT/version"\n', { mode: 0o755 });
  const res = await updater(script, false).apply({ root, timeout: 60, verbose: false });
  assert.equal(res.changed, true);
  assert.equal(readFileSync(join(root, 'version'), 'utf8'), 'version 2\n');
});

test('exit 100 means nothing to update', async () => {
  const root = dir('nothing');
  const res = await updater('test -e "$SYSPRIME_ROOT/newer" || exit 100', false).apply({ root, timeout: 60, verbose: false });
  assert.equal(res.changed, false);
  assert.match(res.summary, /nothing to update/);
});

test('any other status fails with the command\'s stderr', async () => {
  const root = dir('fails');
  await assert.rejects(
    updater('echo "mirror unreachable" >&2; exit 4', false).apply({ root, timeout: 60, verbose: false }),
    (err: unknown) => isSysprimeError(err, 'COMMAND_FAILED') && /exit status 4\): mirror unreachable/.test(err.message) && /mirror unreachable/.test(err.detail ?? ''),
  );
});

test('the timeout from the options stops the command', async () => {
  const root = dir('slow');
  await assert.rejects(updater('while :; do :; done', false).apply({ root, timeout: 1, verbose: false }), (err: unknown) => isSysprimeError(err, 'TIMEOUT'));
});

test('chrooted, the command sees the tree as / and leaves no mounts behind', async () => {
  const root = dir('chrooted');
  buildTinyTree(root);
  const u = updater('test "$SYSPRIME_ROOT" = / && test -d /proc/self && echo updated > /version', true);
  const res = await u.apply({ root, timeout: 60, verbose: false });
  assert.equal(res.changed, true);
  assert.equal(readFileSync(join(root, 'version'), 'utf8'), 'updated\n');
  assert.equal(existsSync(join(root, 'usr/sbin/policy-rc.d')), false);
  assert.deepEqual(mountsAtOrBelow(parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8')), root), []);
  const nothing = await updater('exit 100', true).apply({ root, timeout: 60, verbose: false });
  assert.equal(nothing.changed, false);
});
