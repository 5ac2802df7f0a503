/**
 * sysprime-boot-generator: on a ZFS layout with a boot pool, the booted
 * environment's own boot dataset (named by its entry's `sysprime.boot=`) is
 * mounted at /boot, whatever else shares the mount point; without the
 * argument, or with one that is no dataset name, nothing is written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../../src/process/run.js';

const GENERATOR = fileURLToPath(new URL('../../../../share/systemd/system-generators/sysprime-boot-generator', import.meta.url));

/** Run the generator as systemd does (normal, early, late directories) on a given command line; the early directory after. */
async function generate(cmdline: string): Promise<{ early: string; files: string[]; done(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-gen-'));
  const dirs = ['normal', 'early', 'late'].map((d) => join(dir, d));
  for (const d of dirs) await run('mkdir', ['-p', d]);
  writeFileSync(join(dir, 'cmdline'), `${cmdline}\n`);
  const r = await run(GENERATOR, dirs, { env: { SYSPRIME_PROC_CMDLINE: join(dir, 'cmdline') }, allowFailure: true });
  assert.equal(r.exitCode, 0, r.stderr);
  assert.deepEqual(readdirSync(dirs[0]!), [], 'nothing in the normal directory');
  assert.deepEqual(readdirSync(dirs[2]!), [], 'nothing in the late directory');
  return { early: dirs[1]!, files: readdirSync(dirs[1]!).sort(), done: () => rmSync(dir, { recursive: true, force: true }) };
}

test("an entry's sysprime.boot= becomes /boot's mount unit, required by local-fs.target, after the pools are imported", async () => {
  const g = await generate('BOOT_IMAGE=/BOOT/next@/vmlinuz-6.1.0-18-amd64 root=ZFS=rpool/ROOT/next sysprime.boot=bpool/BOOT/next ro quiet');
  try {
    assert.deepEqual(g.files, ['boot.mount', 'local-fs.target.requires']);
    const unit = readFileSync(join(g.early, 'boot.mount'), 'utf8');
    assert.match(unit, /^What=bpool\/BOOT\/next$/m);
    assert.match(unit, /^Where=\/boot$/m);
    assert.match(unit, /^Type=zfs$/m);
    // mountpoint=/boot is not legacy: mount.zfs takes it only with zfsutil.
    assert.match(unit, /^Options=zfsutil$/m);
    assert.match(unit, /^After=zfs-import\.target$/m);
    assert.equal(readlinkSync(join(g.early, 'local-fs.target.requires', 'boot.mount')), '../boot.mount');
  } finally {
    g.done();
  }
});

test('without sysprime.boot= (no boot pool, another bootloader entry) nothing is written', async () => {
  const g = await generate('BOOT_IMAGE=/BOOT/debian@/vmlinuz-6.1.0-18-amd64 root=ZFS=rpool/ROOT/debian ro');
  try {
    assert.deepEqual(g.files, []);
  } finally {
    g.done();
  }
});

test('a sysprime.boot= that is no dataset below a pool is not written into a unit', async () => {
  for (const bad of ['bpool', '/boot', 'bpool/BOOT/x\\nExecStart=/bin/evil', 'bpool/BOOT/$(reboot)', 'bpool//BOOT', 'bpool/BOOT/']) {
    const g = await generate(`root=ZFS=rpool/ROOT/x sysprime.boot=${bad}`);
    try {
      assert.deepEqual(g.files, [], bad);
      assert.ok(!existsSync(join(g.early, 'boot.mount')), bad);
    } finally {
      g.done();
    }
  }
});
