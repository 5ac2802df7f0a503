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

/** The guide's fstab of today: only the ESP; the pools' datasets mount themselves. */
const GUIDE_FSTAB = 'UUID=8A6B-1C2D /boot/efi vfat defaults 0 0\n';

/**
 * Run the generator as systemd does (normal, early, late directories) on a given command line and
 * environment's fstab; the early directory after.
 */
async function generate(cmdline: string, fstab = GUIDE_FSTAB): Promise<{ early: string; files: string[]; done(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-gen-'));
  const dirs = ['normal', 'early', 'late'].map((d) => join(dir, d));
  for (const d of dirs) await run('mkdir', ['-p', d]);
  writeFileSync(join(dir, 'cmdline'), `${cmdline}\n`);
  writeFileSync(join(dir, 'fstab'), fstab);
  const r = await run(GENERATOR, dirs, { env: { SYSPRIME_PROC_CMDLINE: join(dir, 'cmdline'), SYSPRIME_FSTAB: join(dir, 'fstab') }, allowFailure: true });
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

test("boot datasets with mountpoint=legacy (an fstab line mounts /boot, as the older guides did): the unit names the environment's own, without zfsutil", async () => {
  // The Root on ZFS guides of the Buster years: /boot from fstab, ordered after the boot pool's import.
  const fstab = `${GUIDE_FSTAB}# /boot from the boot pool\nbpool/BOOT/debian /boot zfs nodev,relatime,x-systemd.requires=zfs-import-bpool.service 0 0\n`;
  const g = await generate('root=ZFS=rpool/ROOT/next sysprime.boot=bpool/BOOT/next ro', fstab);
  try {
    const unit = readFileSync(join(g.early, 'boot.mount'), 'utf8');
    // The fstab line names the environment it was cloned from; the early directory's unit overrides fstab-generator's.
    assert.match(unit, /^What=bpool\/BOOT\/next$/m);
    // mount.zfs refuses a legacy dataset with zfsutil ("cannot be mounted using 'zfs mount'").
    assert.match(unit, /^Options=$/m);
  } finally {
    g.done();
  }
  // A commented-out line is no mount.
  const h = await generate('root=ZFS=rpool/ROOT/next sysprime.boot=bpool/BOOT/next ro', `${GUIDE_FSTAB}#bpool/BOOT/debian /boot zfs defaults 0 0\n`);
  try {
    assert.match(readFileSync(join(h.early, 'boot.mount'), 'utf8'), /^Options=zfsutil$/m);
  } finally {
    h.done();
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
