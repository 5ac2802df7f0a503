/**
 * `export --with-pristine` and `import --with-pristine` on Ubuntu's zsys
 * layout as its installer makes it (test/fixtures/zfs-layouts.ts): a root
 * with child datasets of its own and /boot its namesake in a boot pool
 * (`bpool/BOOT/ubuntu_<id>`). The pristine state goes with every half of it
 * (the root's, each child's, the boot dataset's), each dataset is received
 * as a clone of its half and promoted, and the imported environment holds a
 * pristine of its own generation as one whose pristine was taken here does;
 * a kill between the root's promote and its children's (each then
 * depends on the other) leaves what the next run removes.
 *
 * OpenZFS only (zfs-fuse cannot send an increment from before a clone's
 * origin, nor receive one as a clone): skipped on a host with zfs-fuse,
 * run by the VM suite inside its OpenZFS guest.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { environmentMounter, sysprime, type EnvJson } from '../../fixtures/cli.js';
import { ZSYS_CHILDREN, makeZfsLayout, unmountPool, type ZfsLayout } from '../../fixtures/zfs-layouts.js';

const openzfs = (await run('zfs', ['version'], { allowFailure: true }).catch(() => ({ exitCode: 1 }))).exitCode === 0;

async function zget(id: string, property: string): Promise<string> {
  return (await run('zfs', ['get', '-Hp', '-o', 'value', property, id])).stdout.trim();
}

async function everything(pool: string): Promise<string[]> {
  return (await run('zfs', ['list', '-H', '-t', 'all', '-o', 'name', '-r', pool])).stdout.trim().split('\n').sort();
}

/** The marked pristine snapshots below `container`, with their generation. */
async function pristines(container: string): Promise<Map<string, string>> {
  const out = await run('zfs', ['get', '-rHp', '-t', 'snapshot', '-s', 'local', '-o', 'name,value', 'org.sysprime:pristine-generation', container]);
  return new Map(out.stdout.split('\n').filter((l) => l !== '').map((l) => l.split('\t') as [string, string]));
}

describe('the pristine state with its boot half and its children through export and import (OpenZFS, zsys layout with its boot pool)', { skip: openzfs ? false : 'needs OpenZFS (zfs-fuse cannot receive an increment as a clone); the VM suite runs it in its OpenZFS guest' }, () => {
  let l: ZfsLayout;
  let dir: string;
  let bp: string;
  let name: string;
  const sp = (...args: string[]) => sysprime(args, { config: l.config });
  const ok = async (...args: string[]) => {
    const r = await sp(...args);
    assert.equal(r.code, 0, `sysprime ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const env = (n: string) => `${l.pool}/ROOT/${n}`;
  const bootOf = (n: string) => `${bp}/BOOT/${n}`;
  const both = async () => [...(await everything(l.pool)), ...(await everything(bp))];
  // A new directory for each mount: an existing one below /dev (the VM suite runs this in /dev/shm) needs --force.
  let mounts = 0;
  const inside = environmentMounter(sp, () => join(dir, `mnt-${mounts}`));
  const within = <T>(n: string, fn: (root: string) => T): Promise<T> => {
    mounts++;
    return inside(n, fn);
  };
  /**
   * The environments with a pristine are exactly `expected`, and each pristine has all its halves, of one
   * generation: the boot dataset's and each child's beside the root's, and no half without its root's; nothing is
   * left under a temporary name.
   */
  async function assertWhole(expected: readonly string[]): Promise<void> {
    const root = await pristines(`${l.pool}/ROOT`);
    const boot = await pristines(`${bp}/BOOT`);
    const roots = [...root].filter(([snap]) => /^[^/]+\/ROOT\/[^/]+@/.test(snap));
    assert.deepEqual(roots.map(([snap]) => snap.slice(`${l.pool}/ROOT/`.length, snap.indexOf('@'))).sort(), [...expected].sort(), 'the environments holding a pristine');
    for (const [snap, generation] of roots) {
      const [ds, short] = snap.split('@') as [string, string];
      const envName = ds.slice(`${l.pool}/ROOT/`.length);
      assert.equal(boot.get(`${bootOf(envName)}@${short}`), generation, `${snap} has its boot half`);
      for (const c of ZSYS_CHILDREN) assert.equal(root.get(`${ds}/${c}@${short}`), generation, `${snap} has its half in ${c}`);
    }
    assert.equal(root.size, roots.length * (1 + ZSYS_CHILDREN.length), 'no child half without its root');
    assert.equal(boot.size, roots.length, 'no boot half without its root');
    assert.deepEqual((await both()).filter((d) => /sysprime-tmp|sysprime-copy-export/.test(d)), [], 'nothing is left under a temporary name');
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-transfer-pristine-'));
    l = await makeZfsLayout('zsys', '[update]\nmethod = "command"\ncommand = "/bin/true"\nchroot = false\n');
    bp = l.bootPool!;
    name = l.rootDataset.slice(`${l.pool}/ROOT/`.length);
  });
  after(async () => {
    await l?.cleanup();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  test('every half of the pristine goes and comes back: each dataset a clone of its received half, promoted, held', async () => {
    const boot = join(l.altroot, 'boot');
    await run('zfs', ['mount', bootOf(name)]);
    try {
      // Named: `/` of the guest is a ZFS root of its own, which init would take.
      const r = await sysprime(['init', '--adopt', l.rootDataset], { config: l.config, env: { SYSPRIME_BOOT_PARTITION: boot } });
      assert.equal(r.code, 0, r.stderr);
    } finally {
      await unmountPool(bp);
    }
    // A copy of the adopted environment: clones of snapshots taken after its pristine, so each increment starts
    // before its origin (what OpenZFS can send and zfs-fuse cannot).
    await ok('create', 'copy', '--from', name);
    // Changed since the pristine in every half: in the root and a child the default rules compare (/srv), a user's
    // file in another (/var/spool: shared data, carried, not compared), and in /boot. These must stay changes.
    await within('copy', (root) => {
      writeFileSync(join(root, 'etc/marker'), 'made on the source\n');
      writeFileSync(join(root, 'srv/marker'), 'in srv\n');
      writeFileSync(join(root, 'var/spool/cron/crontabs/root'), '0 3 * * * /usr/local/bin/backup\n');
      writeFileSync(join(root, 'boot/marker'), 'in the boot half\n');
    });
    const file = join(dir, 'copy.sysprime');
    await ok('export', '--with-pristine', 'copy', file);
    const text = readFileSync(file);
    const header = JSON.parse(text.subarray(text.indexOf(10) + 1, text.indexOf(10, text.indexOf(10) + 1)).toString()) as { parts: string[]; nested: string[]; unmounted: string[] };
    assert.deepEqual(header.parts, ['pristine', 'environment', 'nested', 'boot-pristine', 'boot']);
    assert.deepEqual([...header.nested].sort(), [...ZSYS_CHILDREN].sort());
    header.nested.forEach((rel, i) => assert.ok(!rel.includes('/') || header.nested.slice(0, i).includes(rel.slice(0, rel.lastIndexOf('/'))), `${rel} comes after its parent`));
    assert.deepEqual(header.unmounted, ['usr', 'var']);
    await assertWhole([name]);

    const imported = (await ok('--json', 'import', '--with-pristine', file, 'moved')).json<EnvJson>();
    const generation = String(imported.generation);
    for (const ds of [env('moved'), bootOf('moved'), ...ZSYS_CHILDREN.map((c) => `${env('moved')}/${c}`)]) {
      assert.equal(await zget(ds, 'origin'), '-', `${ds} holds its half of the pristine itself`);
      assert.equal(await zget(`${ds}@sysprime-pristine`, 'org.sysprime:pristine-generation'), generation, `${ds}: its half of its generation's pristine`);
      assert.equal(await zget(`${ds}@sysprime-pristine`, 'userrefs'), '1', `${ds}: held as every pristine is`);
    }
    assert.equal(await zget(bootOf('moved'), 'org.sysprime:boot-of'), 'moved');
    assert.equal(await zget(bootOf('moved'), 'canmount'), 'noauto');
    for (const c of ZSYS_CHILDREN) assert.equal(await zget(`${env('moved')}/${c}`, 'canmount'), c === 'usr' || c === 'var' ? 'off' : 'noauto', c);
    assert.equal(
      await within('moved', (root) =>
        [join(root, 'boot/marker'), join(root, 'boot/vmlinuz-6.1.0-demo'), join(root, 'var/spool/cron/crontabs/root')].map((f) => readFileSync(f, 'utf8')).join(''),
      ),
      'in the boot half\nkernel\n0 3 * * * /usr/local/bin/backup\n',
    );
    const drift = await sp('drift', 'moved', '--no-record', '--no-diff');
    assert.equal(drift.code, 1, drift.stderr);
    for (const path of ['/etc/marker', '/srv/marker']) assert.ok(drift.stdout.includes(path), `${path} is a change here too:\n${drift.stdout}`);
    await assertWhole([name, 'moved']);
    // Without the option (every half discarded) the import is the plain one zfs-zsys.test.ts covers.
  });

  test('an import with the pristine killed between the root\'s promote and its children\'s leaves what the next run removes, in both pools', async () => {
    // Each kill costs about four minutes in the guest under TCG (an import of 17 datasets and a recovery of them):
    // this one, the state where the root and the base each depend on the other, is the one kept in the suite. The
    // others (`received`, `promoted-boot-all`, `receive-before-rename`, `received-root-in-place`) passed in the same
    // test once (docs/reliability.md); `received` and `received-root-in-place` are also tested without children on
    // zfs-fuse (zfs-bootpool, zfs-zsys, kill-import).
    const file = join(dir, 'copy.sysprime');
    const before = await both();
    const r = await sysprime(['import', '--with-pristine', file, 'mixed'], { config: l.config, env: { SYSPRIME_FAULT_INJECT: 'kill:backend:zfs:promoted-root' } });
    assert.notEqual(r.code, 0, 'killed at promoted-root');
    assert.ok((await everything(l.pool)).some((d) => /\/ROOT\/\.sysprime-tmp-base-[^/]+\/var\/lib\/dpkg$/.test(d)), 'killed with the base and its children still there');
    await ok('doctor', '--fix');
    await assertWhole([name, 'moved']);
    assert.deepEqual(await both(), before, 'nothing of the import killed between the root\'s promote and its children\'s is left');
  });
});
