import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfigText, loadConfig, isCron } from '../../../src/config/load.js';
import { DEFAULTS } from '../../../src/config/schema.js';
import { isSysprimeError } from '../../../src/errors.js';

test('no file means the built-in defaults', () => {
  const c = parseConfigText('', 'x.toml');
  assert.equal(c.retention.keep, DEFAULTS.retention.keep);
  assert.equal(c.backend, undefined);
});

test('every section is read into the model', () => {
  const c = parseConfigText(
    `backend = "zfs"
[zfs]
pool = "tank"
[state]
dir = "/srv/state"
[boot]
loader = "none"
tries = 2
[update]
method = "command"
command = "apt-get -y upgrade"
chroot = false
[retention]
keep = 3
min_free_percent = 10
[schedule]
stage = "*/5 * * * * *"
[bart]
hash = "sha256"
`,
    'x.toml',
  );
  assert.equal(c.backend, 'zfs');
  assert.equal(c.zfs.pool, 'tank');
  assert.equal(c.state.dir, '/srv/state');
  assert.equal(c.boot.loader, 'none');
  assert.equal(c.boot.tries, 2);
  assert.equal(c.update.method, 'command');
  assert.equal(c.update.chroot, false);
  assert.equal(c.retention.keep, 3);
  assert.equal(c.retention.minFreePercent, 10);
  assert.equal(c.schedule.stage, '*/5 * * * * *');
  assert.equal(c.bart.hash, 'sha256');
});

test('an unknown key is an error naming it, with a suggestion', () => {
  assert.throws(
    () => parseConfigText('[retention]\nkeeep = 3\n', 'x.toml'),
    (e: unknown) => isSysprimeError(e, 'CONFIG') && e.message.includes("'retention.keeep'") && (e.hint ?? '').includes('retention.keep'),
  );
});

test('a value of the wrong type is an error naming the key', () => {
  assert.throws(() => parseConfigText('[retention]\nkeep = "five"\n', 'x.toml'), (e: unknown) => isSysprimeError(e, 'CONFIG') && e.message.includes("'retention.keep'"));
  assert.throws(() => parseConfigText('backend = "ext4"\n', 'x.toml'), (e: unknown) => isSysprimeError(e, 'CONFIG') && e.message.includes('btrfs, zfs'));
  assert.throws(() => parseConfigText('[state]\ndir = "relative"\n', 'x.toml'), (e: unknown) => isSysprimeError(e, 'CONFIG') && e.message.includes('absolute'));
  assert.throws(() => parseConfigText('[schedule]\nstage = "tomorrow"\n', 'x.toml'), (e: unknown) => isSysprimeError(e, 'CONFIG'));
});

test('broken TOML names the line', () => {
  assert.throws(() => parseConfigText('backend = "zfs"\n[zfs\n', 'x.toml'), (e: unknown) => isSysprimeError(e, 'CONFIG') && /line 2/.test(e.message));
});

test('--config beats SYSPRIME_CONFIG; a missing explicit file is an error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-config-'));
  try {
    const a = join(dir, 'a.toml');
    const b = join(dir, 'b.toml');
    writeFileSync(a, '[retention]\nkeep = 7\n');
    writeFileSync(b, '[retention]\nkeep = 9\n');
    assert.equal(loadConfig(a, { SYSPRIME_CONFIG: b }).retention.keep, 7);
    assert.equal(loadConfig(undefined, { SYSPRIME_CONFIG: b }).retention.keep, 9);
    assert.throws(() => loadConfig(join(dir, 'missing.toml'), {}), (e: unknown) => isSysprimeError(e, 'CONFIG'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cron expressions', () => {
  assert.ok(isCron('0 4 * * *'));
  assert.ok(isCron('*/2 * * * * *'));
  assert.ok(isCron('off'));
  assert.ok(!isCron('0 4 * *'));
});
