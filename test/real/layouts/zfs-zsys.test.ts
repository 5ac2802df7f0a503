/**
 * Ubuntu's zsys layout (20.04-22.04), built as its installer builds it
 * (test/fixtures/zfs-layouts.ts): a root `rpool/ROOT/ubuntu_<id>` with child
 * datasets of its own (`var/lib/dpkg`, `var/spool`, `usr/local`, ...) and
 * the homes in `rpool/USERDATA`, /boot the root's namesake in the boot pool
 * (`bpool/BOOT/ubuntu_<id>`). Used with the real CLI: every verb carries
 * the children with their environment, a clone's children are never mounted
 * over the system's directories, users' files written in the children after
 * init reach the staged environment, and a kill between two child clones is
 * recovered by the next run.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { BIN, sysprime, type EnvJson } from '../../fixtures/cli.js';
import { ZSYS_CHILDREN, makeZfsLayout, unmountPool, type ZfsLayout } from '../../fixtures/zfs-layouts.js';

async function zget(id: string, property: string): Promise<string> {
  return (await run('zfs', ['get', '-Hp', '-o', 'value', property, id])).stdout.trim();
}

async function zsource(id: string, property: string): Promise<string> {
  return (await run('zfs', ['get', '-Hp', '-o', 'source', property, id])).stdout.trim();
}

async function exists(id: string): Promise<boolean> {
  return (await run('zfs', ['list', '-H', '-o', 'name', id], { allowFailure: true })).exitCode === 0;
}

/** Every dataset and snapshot of the pool, sorted. */
async function everything(pool: string): Promise<string[]> {
  const out = await run('zfs', ['list', '-H', '-t', 'all', '-o', 'name', '-r', pool]);
  return out.stdout.trim().split('\n').sort();
}

/** Datasets of the pool mounted anywhere, with where. */
async function mountsOf(pool: string): Promise<{ source: string; at: string }[]> {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[0]?.startsWith(`${pool}/`))
    .map((f) => ({ source: f[0] as string, at: f[1] as string }));
}

function updateScript(dir: string): string {
  const script = join(dir, 'update.sh');
  // Writes into the root dataset and into a child (var/lib/dpkg), as an apt upgrade does.
  writeFileSync(
    script,
    `#!/bin/sh
set -e
v=$(cat "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION" 2>/dev/null || echo 1)
echo $((v + 1)) > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"
echo "upgraded to $((v + 1))" > "$SYSPRIME_ROOT/var/lib/dpkg/upgraded"
`,
  );
  chmodSync(script, 0o755);
  return script;
}

describe('Ubuntu zsys layout: an environment with child datasets', () => {
  let l: ZfsLayout;
  let dir: string;
  let root: string;
  let name: string;
  const sp = (...args: string[]) => sysprime(args, { config: l.config });
  const list = async () => (await sp('--json', 'list')).json<EnvJson[]>();
  const env = (n: string) => `${l.pool}/ROOT/${n}`;
  const bootOf = (n: string) => `${l.bootPool}/BOOT/${n}`;
  /** Everything in both pools: what a verb leaves behind is looked for in the boot pool too. */
  const all = async () => [...(await everything(l.pool)), ...(await everything(l.bootPool!))].sort();
  const mnt = () => join(dir, 'mnt');
  async function mounted<T>(n: string, fn: (tree: string) => T): Promise<T> {
    const m = await sp('mount', n, mnt());
    assert.equal(m.code, 0, m.stderr);
    try {
      return fn(mnt());
    } finally {
      const u = await sp('umount', n);
      assert.equal(u.code, 0, u.stderr);
    }
  }
  /** The children of environment N are ZSYS_CHILDREN, as the installer set them: off stays off, the rest noauto, mountpoints inherited. */
  async function assertChildren(n: string, origin: boolean): Promise<void> {
    for (const child of ZSYS_CHILDREN) {
      const ds = `${env(n)}/${child}`;
      assert.equal(await exists(ds), true, `${ds} exists`);
      assert.equal(await zget(ds, 'canmount'), child === 'usr' || child === 'var' ? 'off' : 'noauto', `${ds} canmount`);
      assert.equal(await zsource(ds, 'mountpoint'), `inherited from ${env(n)}`, `${ds} inherits its mountpoint`);
      if (origin) assert.notEqual(await zget(ds, 'origin'), '-', `${ds} is a clone`);
    }
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-zsys-'));
    l = await makeZfsLayout('zsys', `[update]\nmethod = "command"\ncommand = "${updateScript(dir)}"\nchroot = false\n`);
    root = l.rootDataset;
    name = root.slice(`${l.pool}/ROOT/`.length);
  });
  after(async () => {
    await l?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('init adopts the root in place with its children; the pristine snapshot is recursive', async () => {
    const r = await sp('init');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await zget(root, 'mounted'), 'no', `init leaves the root unmounted, as it found it:\n${r.stderr}`);
    assert.match(r.stdout, new RegExp(`environment "${name}", generation 0`));
    const envs = await list();
    assert.deepEqual(envs.map((e) => e.name), [name], 'the children are not environments');
    assert.equal(envs[0]!.default, true);
    assert.equal(await zget(root, 'canmount'), 'noauto');
    assert.equal(await zget(bootOf(name), 'org.sysprime:boot-of'), name, 'the boot dataset is adopted with its root');
    assert.equal(await exists(`${bootOf(name)}@sysprime-pristine`), true, 'the pristine has its boot half');
    await assertChildren(name, false);
    for (const child of ZSYS_CHILDREN) assert.equal(await exists(`${root}/${child}@sysprime-pristine`), true, `${child} has its pristine snapshot`);
    assert.equal(await zget(`${l.pool}/USERDATA/alice_${name.slice('ubuntu_'.length)}`, 'canmount'), 'on', 'USERDATA is left as it is');
  });

  test('users write in the children after init: a crontab in /var/spool and a mailbox in /var/mail', async () => {
    await mounted(name, (tree) => {
      // They land in the child datasets: another filesystem than the root's.
      assert.notEqual(statSync(join(tree, 'var/spool')).dev, statSync(tree).dev);
      writeFileSync(join(tree, 'var/spool/cron/crontabs/root'), '0 3 * * * /usr/local/bin/backup\n');
      mkdirSync(join(tree, 'var/mail'), { recursive: true });
      writeFileSync(join(tree, 'var/mail/alice'), 'From: bob\n\nhello\n');
      assert.equal(readFileSync(join(tree, 'var/lib/dpkg/status'), 'utf8'), 'Package: demo\nStatus: install ok installed\n');
    });
    assert.deepEqual(await mountsOf(l.pool), [], 'the private mount and its children are gone');
    assert.equal(await zget(root, 'mountpoint'), l.altroot, 'the mountpoint is put back');
  });

  test('stage clones every child; the update writes into the clone\'s own children; the users\' files in the children are carried', async () => {
    const r = await sp('--json', 'stage');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json<{ name: string }>().name, 'gen-1');
    await assertChildren('gen-1', true);
    assert.equal(await zget(`${env('gen-1')}/var/lib/dpkg`, 'origin'), `${root}/var/lib/dpkg@sysprime-pristine`);
    await mounted('gen-1', (tree) => {
      assert.equal(readFileSync(join(tree, 'usr/share/doc/demo/VERSION'), 'utf8'), '2\n');
      assert.equal(readFileSync(join(tree, 'var/lib/dpkg/upgraded'), 'utf8'), 'upgraded to 2\n');
    });
    // Carried as users' data, and said so: they are the environment's own children, cloned with it.
    await mounted('gen-1', (tree) => {
      assert.equal(readFileSync(join(tree, 'var/spool/cron/crontabs/root'), 'utf8'), '0 3 * * * /usr/local/bin/backup\n');
      assert.equal(readFileSync(join(tree, 'var/mail/alice'), 'utf8'), 'From: bob\n\nhello\n');
    });
    for (const path of ['/var/spool', '/var/mail', '/var/log', '/srv']) {
      assert.match(r.stderr, new RegExp(`warning: ${path} is on ${path}, a child dataset of the environment .*copied`), r.stderr);
    }
    await mounted(name, (tree) => {
      assert.equal(existsSync(join(tree, 'var/lib/dpkg/upgraded')), false, 'the adopted root\'s /var/lib/dpkg is its own');
    });
  });

  test('a mounted clone\'s children are below its mount only, never over the system\'s directories', async () => {
    await mounted('gen-1', (tree) => {
      return mountsOf(l.pool).then((ms) => {
        const children = ms.filter((m) => m.source.startsWith(`${env('gen-1')}/`));
        assert.ok(children.some((m) => m.at === join(tree, 'var/lib/dpkg')), JSON.stringify(ms));
        for (const m of ms) {
          // zfs-fuse mounts below the altroot first and binds that at the directory asked for.
          const inside = m.at === tree || m.at.startsWith(`${tree}/`) || m.at.startsWith(`${l.altroot}${tree}`);
          assert.ok(inside, `${m.source} is mounted at ${m.at}, outside ${tree}`);
        }
      });
    });
  });

  test('create, activate and rename carry the children', async () => {
    assert.equal((await sp('create', 'copy')).code, 0);
    await assertChildren('copy', true);
    const a = await sp('activate', 'gen-1');
    assert.equal(a.code, 0, a.stderr);
    assert.equal((await run('zpool', ['list', '-H', '-o', 'bootfs', l.pool])).stdout.trim(), env('gen-1'));
    const rn = await sp('rename', 'copy', 'spare');
    assert.equal(rn.code, 0, rn.stderr);
    assert.equal(await exists(env('copy')), false);
    await assertChildren('spare', true);
  });

  test('export and import carry the children, each where its name puts it, off staying off; the users\' files in them go too', async () => {
    const file = join(dir, 'zsys.sysprime');
    const before = await all();
    const e = await sp('export', name, file);
    assert.equal(e.code, 0, e.stderr);
    assert.deepEqual(await all(), before, 'the copy snapshots are gone');
    // An export whose reader goes away leaves no copy snapshot either, the children's included.
    const sh = `'${process.execPath}' '${BIN}' --config '${l.config}' export ${name} - | head -c 100000 > /dev/null`;
    spawnSync('bash', ['-c', sh], { encoding: 'utf8' });
    assert.deepEqual(await all(), before, 'an export cut off by its reader removes its copy snapshots');
    // Refused whole, leaving nothing: a file cut inside the children's streams, and one whose header names a child fewer.
    const whole = readFileSync(file);
    const cut = join(dir, 'cut.sysprime');
    writeFileSync(cut, whole.subarray(0, Math.floor(whole.length * 0.8)));
    const c = await sp('import', cut, 'cut');
    assert.notEqual(c.code, 0, c.stdout);
    assert.match(c.stderr, /cut short|not whole/);
    assert.deepEqual(await all(), before, 'nothing of the refused import is left');
    // Killed once the root and every child were received, before the check and the rename: the next run removes them.
    const k = await sysprime(['import', file, 'killed'], { config: l.config, env: { SYSPRIME_FAULT_INJECT: 'kill:backend:zfs:received' } });
    assert.notEqual(k.code, 0);
    assert.ok((await all()).some((d) => /\/ROOT\/\.sysprime-tmp-new-[^/]+\/var\/lib\/dpkg$/.test(d)), 'the children were received under the temporary root');
    const fix = await sp('doctor', '--fix');
    assert.equal(fix.code, 0, fix.stdout + fix.stderr);
    assert.deepEqual(await all(), before, 'the next run removed the received root and its children');

    const i = await sp('--json', 'import', file, 'moved');
    assert.equal(i.code, 0, i.stderr);
    await assertChildren('moved', false);
    assert.equal(await zget(bootOf('moved'), 'org.sysprime:boot-of'), 'moved', 'the boot dataset came with it');
    for (const child of ZSYS_CHILDREN) assert.equal(await exists(`${env('moved')}/${child}@sysprime-pristine`), true, `${child} has its pristine snapshot`);
    assert.deepEqual(await mountsOf(l.pool), [], 'nothing received was mounted');
    await mounted('moved', (tree) => {
      assert.notEqual(statSync(join(tree, 'var/spool')).dev, statSync(tree).dev, 'a child is a filesystem of its own again');
      assert.equal(readFileSync(join(tree, 'var/spool/cron/crontabs/root'), 'utf8'), '0 3 * * * /usr/local/bin/backup\n');
      assert.equal(readFileSync(join(tree, 'var/mail/alice'), 'utf8'), 'From: bob\n\nhello\n');
      assert.equal(readFileSync(join(tree, 'var/lib/dpkg/status'), 'utf8'), 'Package: demo\nStatus: install ok installed\n');
    });
    const d = await sp('drift', 'moved');
    assert.equal(d.code, 0, `its state on arrival is its pristine, children included:\n${d.stdout}${d.stderr}`);
    // zfs-fuse cannot send an increment from before a clone's origin (the OpenZFS guest tests it: openzfs/transfer-pristine).
    const w = await sp('export', '--with-pristine', name, join(dir, 'with.sysprime'));
    assert.equal(w.code, 5, w.stderr);
    assert.match(w.stderr, /zfs-fuse cannot export an environment with its pristine state/);
    assert.ok(!existsSync(join(dir, 'with.sysprime')));
    assert.equal((await sp('destroy', 'moved')).code, 0);
    assert.deepEqual(await all(), before);
  });

  test('destroying the root the others are clones of promotes each child; the clones keep every byte', async () => {
    const r = await sp('destroy', name);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await exists(root), false);
    assert.equal(await exists(bootOf(name)), false, 'its boot dataset went with it');
    assert.equal((await all()).some((d) => d.startsWith(`${root}/`) || d.startsWith(`${root}@`)), false);
    await assertChildren('gen-1', false);
    await mounted('gen-1', (tree) => {
      assert.equal(readFileSync(join(tree, 'var/lib/dpkg/status'), 'utf8'), 'Package: demo\nStatus: install ok installed\n');
      assert.equal(readFileSync(join(tree, 'var/lib/dpkg/upgraded'), 'utf8'), 'upgraded to 2\n');
      assert.equal(readFileSync(join(tree, 'var/mail/alice'), 'utf8'), 'From: bob\n\nhello\n');
    });
  });

  test('a kill between two child clones leaves no environment, and the next run removes what it left', async () => {
    const before = await all();
    const k = await sysprime(['create', 'killed'], { config: l.config, env: { SYSPRIME_FAULT_INJECT: 'kill:backend:zfs:clone-child-3' } });
    assert.notEqual(k.code, 0);
    assert.equal((await list()).some((e) => e.name === 'killed'), false);
    assert.equal(await exists(env('killed')), false);
    assert.ok((await all()).some((d) => d.includes('/ROOT/.sysprime-tmp-new-')), 'the half-made clone is under its temporary name');
    const fix = await sp('doctor', '--fix');
    assert.equal(fix.code, 0, fix.stdout + fix.stderr);
    assert.deepEqual(await all(), before, 'the temporary clone and the copy snapshots are gone');
    const again = await sp('create', 'killed');
    assert.equal(again.code, 0, again.stderr);
    await assertChildren('killed', true);
  });

  test('prune destroys environments with their children', async () => {
    const r = await sp('prune', '--keep', '1');
    assert.equal(r.code, 0, r.stderr);
    const names = (await list()).map((e) => e.name).sort();
    assert.ok(names.includes('gen-1'), names.join(', '));
    for (const gone of ['spare', 'killed'].filter((n) => !names.includes(n))) {
      assert.equal((await all()).some((d) => d.startsWith(`${env(gone)}/`)), false, `${gone}'s children are gone`);
      assert.equal(await exists(bootOf(gone)), false, `${gone}'s boot dataset is gone`);
    }
    assert.ok(names.length < 3, names.join(', '));
  });

  test('a child with a mountpoint of its own is refused, and nothing is made', async () => {
    await run('zfs', ['set', 'mountpoint=/opt/srv', `${env('gen-1')}/srv`]);
    try {
      const before = await all();
      const r = await sp('create', 'other');
      assert.equal(r.code, 5, r.stderr);
      assert.match(r.stderr, /srv has a mountpoint of its own/);
      assert.deepEqual(await all(), before);
    } finally {
      await run('zfs', ['inherit', 'mountpoint', `${env('gen-1')}/srv`]);
      await unmountPool(l.pool);
    }
  });

  test('the homes in USERDATA were never cloned or touched', async () => {
    const users = (await all()).filter((d) => d.startsWith(`${l.pool}/USERDATA`));
    assert.deepEqual(users, [`${l.pool}/USERDATA`, `${l.pool}/USERDATA/alice_${name.slice('ubuntu_'.length)}`, `${l.pool}/USERDATA/root_${name.slice('ubuntu_'.length)}`].sort());
  });
});
