/**
 * `export --with-pristine` and `import --with-pristine` of an environment
 * with child datasets (Ubuntu's zsys layout) on OpenZFS: each child's half
 * of the recursive pristine snapshot goes whole before the child, which is
 * received as a clone of it and promoted, so the imported environment holds
 * a recursive pristine of its own generation, and what the admin changed
 * in the children since stays a change. (A kill of such an import is not
 * tested here; that of a plain one with child datasets is, in
 * test/real/layouts/zfs-zsys.test.ts.)
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
import { ZSYS_CHILDREN, makeZfsLayout, type ZfsLayout } from '../../fixtures/zfs-layouts.js';

const openzfs = (await run('zfs', ['version'], { allowFailure: true }).catch(() => ({ exitCode: 1 }))).exitCode === 0;

async function zget(id: string, property: string): Promise<string> {
  return (await run('zfs', ['get', '-Hp', '-o', 'value', property, id])).stdout.trim();
}

async function everything(pool: string): Promise<string[]> {
  return (await run('zfs', ['list', '-H', '-t', 'all', '-o', 'name', '-r', pool])).stdout.trim().split('\n').sort();
}

describe('the pristine state of an environment with child datasets through export and import (OpenZFS, zsys layout)', { skip: openzfs ? false : 'needs OpenZFS (zfs-fuse cannot receive an increment as a clone); the VM suite runs it in its OpenZFS guest' }, () => {
  let l: ZfsLayout;
  let dir: string;
  let name: string;
  const sp = (...args: string[]) => sysprime(args, { config: l.config });
  const ok = async (...args: string[]) => {
    const r = await sp(...args);
    assert.equal(r.code, 0, `sysprime ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const env = (n: string) => `${l.pool}/ROOT/${n}`;
  // A new directory for each mount: an existing one below /dev (the VM suite runs this in /dev/shm) needs --force.
  let mounts = 0;
  const inside = environmentMounter(sp, () => join(dir, `mnt-${mounts}`));
  const within = <T>(n: string, fn: (root: string) => T): Promise<T> => {
    mounts++;
    return inside(n, fn);
  };
  const temporaries = async (): Promise<string[]> => (await everything(l.pool)).filter((d) => /sysprime-tmp|sysprime-copy-export/.test(d));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-zsys-pristine-'));
    l = await makeZfsLayout('zsys', '[update]\nmethod = "command"\ncommand = "/bin/true"\nchroot = false\n');
    name = l.rootDataset.slice(`${l.pool}/ROOT/`.length);
  });
  after(async () => {
    await l?.cleanup();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  test('each child goes with its half of the pristine; the imported environment holds a recursive pristine of its own generation', async () => {
    // Named: `/` of the guest is a ZFS root of its own, which init would take.
    await ok('init', '--adopt', l.rootDataset);
    // Changed since the pristine, in the root and in a child the default rules compare (/srv), and a user's file in
    // another (/var/spool: shared data, carried, not compared).
    await within(name, (root) => {
      writeFileSync(join(root, 'etc/marker'), 'made on the source\n');
      writeFileSync(join(root, 'srv/marker'), 'in srv\n');
      writeFileSync(join(root, 'var/spool/cron/crontabs/root'), '0 3 * * * /usr/local/bin/backup\n');
    });
    const file = join(dir, 'zsys.sysprime');
    await ok('export', '--with-pristine', name, file);
    const text = readFileSync(file);
    const header = JSON.parse(text.subarray(text.indexOf(10) + 1, text.indexOf(10, text.indexOf(10) + 1)).toString()) as { parts: string[]; nested: string[]; unmounted: string[] };
    assert.deepEqual(header.parts, ['pristine', 'environment', 'nested']);
    assert.deepEqual([...header.nested].sort(), [...ZSYS_CHILDREN].sort());
    header.nested.forEach((rel, i) => assert.ok(!rel.includes('/') || header.nested.slice(0, i).includes(rel.slice(0, rel.lastIndexOf('/'))), `${rel} comes after its parent`));
    assert.deepEqual(header.unmounted, ['usr', 'var']);
    assert.deepEqual(await temporaries(), [], 'the copy snapshots are gone');

    const imported = (await ok('--json', 'import', '--with-pristine', file, 'moved')).json<EnvJson>();
    const generation = String(imported.generation);
    for (const ds of [env('moved'), ...ZSYS_CHILDREN.map((c) => `${env('moved')}/${c}`)]) {
      assert.equal(await zget(ds, 'origin'), '-', `${ds} holds its half of the pristine itself`);
      assert.equal(await zget(`${ds}@sysprime-pristine`, 'org.sysprime:pristine-generation'), generation, `${ds}: its half of its generation's pristine`);
      assert.equal(await zget(`${ds}@sysprime-pristine`, 'userrefs'), '1', `${ds}: held as every pristine is`);
    }
    for (const c of ZSYS_CHILDREN) assert.equal(await zget(`${env('moved')}/${c}`, 'canmount'), c === 'usr' || c === 'var' ? 'off' : 'noauto', c);
    const drift = await sp('drift', 'moved', '--no-record', '--no-diff');
    assert.equal(drift.code, 1, drift.stderr);
    for (const path of ['/etc/marker', '/srv/marker']) assert.ok(drift.stdout.includes(path), `${path} is a change here too:\n${drift.stdout}`);
    assert.equal(await within('moved', (root) => readFileSync(join(root, 'var/spool/cron/crontabs/root'), 'utf8')), '0 3 * * * /usr/local/bin/backup\n');
    assert.deepEqual(await temporaries(), []);

    // Without the option (the halves discarded) the children's import is the plain one zfs-zsys.test.ts covers.
  });
});
