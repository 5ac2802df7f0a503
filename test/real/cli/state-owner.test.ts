/**
 * One `[state] dir` serves one filesystem or pool. Two configurations on one
 * machine pointed at the same directory would share manifests keyed by
 * environment name and generation (one's pristine manifest taken for the
 * other's drift baseline), the journal and the drift history: the second is
 * refused before it changes anything, until `doctor --claim-state` hands
 * the directory over. The owner is the filesystem itself (Btrfs UUID, pool
 * GUID): the same filesystem reached through another mount point is the
 * same owner.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { sysprime } from '../../fixtures/cli.js';
import { run } from '../../../src/process/run.js';
import { EXIT } from '../../../src/errors.js';
import { openTop } from '../../../src/backends/btrfs/top.js';
import { makeBtrfsPool } from '../../fixtures/btrfs-pool.js';

for (const kind of KINDS) {
  describe(`one state directory, two ${kind} configurations`, () => {
    let a: Scratch;
    let b: Scratch;
    /** B's configuration with A's state directory. */
    let bShared: string;

    before(async () => {
      a = await makeScratch(kind);
      b = await makeScratch(kind);
      bShared = join(b.stateDir, 'shared.toml');
      writeFileSync(bShared, readFileSync(b.config, 'utf8').replace(`dir = "${b.stateDir}"`, `dir = "${a.stateDir}"`));
      assert.match(readFileSync(bShared, 'utf8'), new RegExp(`dir = "${a.stateDir}"`));
    });
    after(async () => {
      await b?.cleanup();
      await a?.cleanup();
    });

    /** What the second pool or filesystem holds of sysprime: nothing until it is given the directory. */
    const bLayout = async (): Promise<string> =>
      kind === 'zfs'
        ? (await run('zfs', ['list', '-H', '-o', 'name', '-r', b.where])).stdout
        : (await run('btrfs', ['subvolume', 'list', b.where])).stdout;

    test('the first configuration owns it; the second is refused before it changes anything', async () => {
      const init = await sysprime(['init', '--adopt', a.adopt], { config: a.config });
      assert.equal(init.code, 0, init.stderr);
      const before = await bLayout();
      for (const args of [['list'], ['init', '--adopt', b.adopt], ['drift']]) {
        const r = await sysprime(args, { config: bShared });
        assert.equal(r.code, EXIT.REFUSED, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(`state directory ${a.stateDir} belongs to ${kind === 'zfs' ? `zfs pool ${a.where}` : `btrfs at ${a.where}`} \\(${kind === 'zfs' ? 'zfs pool \\d+' : `btrfs [0-9a-f-]{36}`}\\), not to`), args.join(' '));
        assert.match(r.stderr, /doctor --claim-state/);
      }
      assert.equal(await bLayout(), before, 'the second pool is as it was');
      const list = await sysprime(['--json', 'list'], { config: a.config });
      assert.equal(list.code, 0, list.stderr);
      assert.deepEqual(list.json<{ name: string }[]>().map((e) => e.name), ['default']);
    });

    if (kind === 'btrfs') {
      test('the same filesystem through another mount point is the same owner', async () => {
        const device = (await run('findmnt', ['-n', '-o', 'SOURCE', '--mountpoint', a.where])).stdout.trim();
        const other = join(b.stateDir, 'other-top');
        mkdirSync(other);
        await run('mount', ['-t', 'btrfs', '-o', 'subvolid=5', device, other]);
        try {
          const cfg = join(b.stateDir, 'other-top.toml');
          writeFileSync(cfg, readFileSync(a.config, 'utf8').replace(`top = "${a.where}"`, `top = "${other}"`));
          const r = await sysprime(['--json', 'list'], { config: cfg });
          assert.equal(r.code, 0, r.stderr);
          assert.deepEqual(r.json<{ name: string }[]>().map((e) => e.name), ['default']);
        } finally {
          await run('umount', [other]);
          rmSync(other, { recursive: true });
        }
        // The owner's description followed the configuration, and follows it back.
        assert.equal((await sysprime(['list'], { config: a.config })).code, 0);
      });
    }

    test('doctor --claim-state hands the directory over, loudly; the earlier owner is refused from then on', async () => {
      const claim = await sysprime(['doctor', '--claim-state'], { config: bShared });
      assert.match(claim.stderr, new RegExp(`the state directory ${a.stateDir} belonged to .*; it is .* from now on`));
      assert.ok(claim.code === EXIT.OK || claim.code === EXIT.DIFFERENCES, `doctor ran (exit ${claim.code}): ${claim.stderr}`);
      assert.equal((await sysprime(['list'], { config: bShared })).code, 0);
      const refused = await sysprime(['list'], { config: a.config });
      assert.equal(refused.code, EXIT.REFUSED, refused.stderr);
      assert.match(refused.stderr, /belongs to .*, not to/);
    });
  });
}

test('the Btrfs identity where the mount names no device node (`/dev/root`): the same UUID, from findmnt', async () => {
  const pool = await makeBtrfsPool({ sizeMiB: 256 });
  try {
    const real = readFileSync('/proc/self/mountinfo', 'utf8');
    const uuid = (await run('blkid', ['-s', 'UUID', '-o', 'value', pool.device])).stdout.trim();
    assert.match(uuid, /^[0-9a-f-]{36}$/);
    assert.equal(await openTop({ top: pool.top }).identity(), `btrfs ${uuid}`, 'from sysfs');
    // The mount's source as a kernel booted without an initramfs shows it: no such node, so neither sysfs nor blkid.
    const asRoot = real
      .split('\n')
      .map((line) => (line.includes(` ${pool.top} `) ? line.replace(` ${pool.device} `, ' /dev/root ') : line))
      .join('\n');
    assert.ok(asRoot.includes(' /dev/root '), 'the table names /dev/root');
    assert.equal(await openTop({ top: pool.top, mountTable: async () => asRoot }).identity(), `btrfs ${uuid}`, 'from findmnt');
  } finally {
    await pool.cleanup();
  }
});
