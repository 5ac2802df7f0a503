/**
 * The boot pool as the Buster-era Root on ZFS guides left it, kept by
 * machines upgraded in place since: `bpool/BOOT/debian` with
 * mountpoint=legacy, mounted at /boot by an fstab line. sysprime adopts the
 * pair, every clone's boot dataset stays legacy, staging's update writes the
 * new kernel into the clone's own, and the installed generator mounts the
 * booted environment's own boot dataset (without `zfsutil`, which mount.zfs
 * refuses for a legacy dataset) over the fstab line, which still names the
 * dataset the environment was cloned from.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { sysprime, type EnvJson } from '../../fixtures/cli.js';
import { makeZfsLayout, unmountPool, type ZfsLayout } from '../../fixtures/zfs-layouts.js';

async function zget(id: string, property: string): Promise<string> {
  return (await run('zfs', ['get', '-Hp', '-o', 'value', property, id])).stdout.trim();
}

describe('the OpenZFS boot pool with mountpoint=legacy and an fstab line (the older guides)', () => {
  let l: ZfsLayout;
  let dir: string;
  let bp: string;
  const sp = (...args: string[]) => sysprime(args, { config: l.config });
  const bootOf = (n: string) => `${bp}/BOOT/${n}`;
  async function mounted<T>(n: string, fn: (tree: string) => Promise<T> | T): Promise<T> {
    const at = join(dir, 'mnt');
    const m = await sp('mount', n, at);
    assert.equal(m.code, 0, m.stderr);
    try {
      return await fn(at);
    } finally {
      const u = await sp('umount', n);
      assert.equal(u.code, 0, u.stderr);
    }
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-bootpool-legacy-'));
    const script = join(dir, 'update.sh');
    writeFileSync(script, '#!/bin/sh\nset -e\necho "kernel 2" > "$SYSPRIME_ROOT/boot/vmlinuz-6.1.0-demo2"\n');
    chmodSync(script, 0o755);
    l = await makeZfsLayout('debian', `[update]\nmethod = "command"\ncommand = "${script}"\nchroot = false\n`, { legacyBoot: true });
    bp = l.bootPool!;
    await unmountPool(bp);
    await unmountPool(l.pool);
  });
  after(async () => {
    await l?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('init adopts the pair and leaves the boot dataset legacy; stage gives the clone a legacy boot dataset of its own with the new kernel', async () => {
    const i = await sp('init');
    assert.equal(i.code, 0, i.stderr);
    assert.equal(await zget(`${l.pool}/ROOT`, 'org.sysprime:boot-pool'), bp);
    assert.equal(await zget(bootOf('debian'), 'mountpoint'), 'legacy');

    const s = await sp('--json', 'stage');
    assert.equal(s.code, 0, s.stdout + s.stderr);
    assert.equal(s.json<{ name: string }>().name, 'gen-1');
    assert.equal(await zget(bootOf('gen-1'), 'origin'), `${bootOf('debian')}@sysprime-pristine`);
    assert.equal(await zget(bootOf('gen-1'), 'mountpoint'), 'legacy', 'the clone is mounted from fstab, as its source');
    assert.equal(await zget(bootOf('gen-1'), 'canmount'), 'noauto');
    await mounted('gen-1', (tree) => {
      assert.equal(readFileSync(join(tree, 'boot/vmlinuz-6.1.0-demo2'), 'utf8'), 'kernel 2\n', "the new kernel is in the clone's boot dataset");
    });
    await mounted('debian', (tree) => {
      assert.deepEqual(readdirSync(join(tree, 'boot')).filter((f) => f.startsWith('vmlinuz')), ['vmlinuz-6.1.0-demo'], "the adopted root's is untouched");
    });
    // A private mount puts the property back as it was.
    assert.equal(await zget(bootOf('gen-1'), 'mountpoint'), 'legacy');
    assert.equal(await zget(bootOf('debian'), 'mountpoint'), 'legacy');
  });

  test("booted, the new environment's generator mounts its own boot dataset over the fstab line naming the one it was cloned from", async () => {
    const unit = await mounted('gen-1', async (tree) => {
      assert.match(readFileSync(join(tree, 'etc/fstab'), 'utf8'), new RegExp(`^${bootOf('debian')} /boot zfs `, 'm'), 'fstab is the admin\'s, as it was');
      // Run the generator the environment has installed, as systemd runs it at boot, with the entry's command line.
      const out = join(dir, 'gen');
      for (const d of ['normal', 'early', 'late']) mkdirSync(join(out, d), { recursive: true });
      writeFileSync(join(dir, 'cmdline'), `root=ZFS=${l.pool}/ROOT/gen-1 sysprime.boot=${bootOf('gen-1')} ro\n`);
      const g = await run(join(tree, 'usr/lib/systemd/system-generators/sysprime-boot-generator'), ['normal', 'early', 'late'].map((d) => join(out, d)), {
        env: { SYSPRIME_PROC_CMDLINE: join(dir, 'cmdline'), SYSPRIME_FSTAB: join(tree, 'etc/fstab') },
      });
      assert.equal(g.exitCode, 0);
      return readFileSync(join(out, 'early', 'boot.mount'), 'utf8');
    });
    assert.match(unit, new RegExp(`^What=${bootOf('gen-1')}$`, 'm'));
    assert.match(unit, /^Options=$/m, 'no zfsutil: mount.zfs refuses a legacy dataset with it');
  });

  test('destroy takes the environment with its legacy boot dataset; the adopted one keeps its own', async () => {
    const d = await sp('destroy', 'gen-1');
    assert.equal(d.code, 0, d.stderr);
    const names = (await (await sp('--json', 'list')).json<EnvJson[]>()).map((e) => e.name);
    assert.deepEqual(names, ['debian']);
    assert.equal((await run('zfs', ['list', '-H', bootOf('gen-1')], { allowFailure: true })).exitCode, 1);
    assert.equal(await zget(bootOf('debian'), 'mountpoint'), 'legacy');
  });
});
