/**
 * A crash in the middle of the entry swap, for each bootloader that writes
 * files: the process kills itself with SIGKILL at a point inside the swap
 * (SYSPRIME_FAULT_INJECT=kill:boot:<loader>:<point>), and the files a
 * bootloader reads are the old set, or each entry old or new, never a
 * truncated or half-written one; `doctor --fix` then finishes the job. The
 * swap does not depend on the filesystem of the environments: Btrfs only.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseGrubenv } from '../../../src/bootloaders/grub/menu.js';
import { grubToml, makeBootScratch, type BootScratch } from './boot-setup.js';

/** Every file under `dir`, relative path to contents. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const d of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const path = rel === '' ? d.name : `${rel}/${d.name}`;
      if (d.isDirectory()) walk(path);
      else out.set(path, readFileSync(join(dir, path), 'utf8'));
    }
  };
  walk('');
  return out;
}
const withoutTemps = (files: Map<string, string>) => new Map([...files].filter(([p]) => !p.endsWith('.sysprime-tmp')));

/**
 * The default environment after recovery: an interrupted `activate` may be
 * finished or undone (the journal decides), but entries and environments agree.
 */
/** What doctor finds on the boot side (an interrupted operation is the journal's business). */
async function bootKinds(b: BootScratch): Promise<string[]> {
  const r = await b.sp('--json', 'doctor');
  return r.json<{ problems: { kind: string }[] }>().problems.map((p) => p.kind).filter((k) => k !== 'interrupted');
}

async function defaultOf(b: BootScratch): Promise<string> {
  const r = await b.sp('--json', 'list');
  const def = r.json<{ name: string; default: boolean }[]>().find((e) => e.default);
  assert.ok(def, r.stdout);
  return def.name;
}

describe('a kill -9 inside the systemd-boot entry swap', () => {
  let b: BootScratch;
  const esp = () => join(b.dir, 'esp');
  const ok = async (...args: string[]) => {
    const r = await b.sp(...args);
    assert.equal(r.code, 0, `sysprime ${args.join(' ')}: ${r.stderr}`);
  };
  before(async () => {
    b = await makeBootScratch('btrfs', (dir) => {
      mkdirSync(join(dir, 'esp/loader/entries'), { recursive: true });
      return `loader = "systemd-boot"\nesp = "${join(dir, 'esp')}"\n`;
    });
    await ok('init', '--adopt', b.s.adopt, '--name', 'base');
    await ok('create', 'a');
    await ok('create', 'b');
  });
  after(async () => {
    await b?.cleanup();
  });

  test('before the first rename: the old set stays exactly as it was', async () => {
    const before = snapshot(esp());
    // Activating "a" re-ranks three entries: each is rewritten.
    const killed = await b.spEnv({ SYSPRIME_FAULT_INJECT: 'kill:boot:systemd-boot:rename-0' }, 'activate', 'a');
    assert.equal(killed.code, -1, `killed by a signal: ${killed.stderr}`);
    const after = snapshot(esp());
    assert.ok([...after.keys()].some((p) => p.endsWith('.sysprime-tmp')), 'the new entries were written under temporary names');
    assert.deepEqual(withoutTemps(after), before);
    await ok('doctor', '--fix');
    assert.ok(![...snapshot(esp()).keys()].some((p) => p.endsWith('.sysprime-tmp')));
    assert.match(readFileSync(join(esp(), `loader/entries/sysprime-${await defaultOf(b)}.conf`), 'utf8'), /^sort-key sysprime-1-default$/m);
    assert.deepEqual(await bootKinds(b), []);
  });

  test('after some renames: each entry is the old or the new one, whole, and its kernel is there', async () => {
    const before = snapshot(esp());
    const killed = await b.spEnv({ SYSPRIME_FAULT_INJECT: 'kill:boot:systemd-boot:rename-1' }, 'activate', 'b');
    assert.equal(killed.code, -1, killed.stderr);
    const after = withoutTemps(snapshot(esp()));
    assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort(), 'no entry appeared or vanished');
    let changed = 0;
    for (const [path, text] of after) {
      if (text !== before.get(path)) changed++;
      const linux = /^linux (\S+)$/m.exec(text)?.[1];
      if (path.startsWith('loader/entries/sysprime-')) assert.ok(linux !== undefined && after.has(linux.slice(1)), `${path} boots a kernel that exists`);
    }
    assert.equal(changed, 1, 'exactly one entry was renamed into place before the kill');
    await ok('doctor', '--fix');
    assert.match(readFileSync(join(esp(), `loader/entries/sysprime-${await defaultOf(b)}.conf`), 'utf8'), /^sort-key sysprime-1-default$/m);
    assert.deepEqual(await bootKinds(b), []);
  });
});

describe('a kill -9 inside the GRUB menu swap', () => {
  let b: BootScratch;
  const grubDir = () => join(b.dir, 'boot/grub');
  const ok = async (...args: string[]) => {
    const r = await b.sp(...args);
    assert.equal(r.code, 0, `sysprime ${args.join(' ')}: ${r.stderr}`);
  };
  before(async () => {
    b = await makeBootScratch('btrfs', grubToml);
    await ok('init', '--adopt', b.s.adopt, '--name', 'base');
    await ok('create', 'a');
  });
  after(async () => {
    await b?.cleanup();
  });

  test('before the menu is renamed into place: the old menu and grubenv stay as they were', async () => {
    const before = snapshot(grubDir());
    const killed = await b.spEnv({ SYSPRIME_FAULT_INJECT: 'kill:boot:grub:menu' }, 'create', 'c');
    assert.equal(killed.code, -1, killed.stderr);
    const after = snapshot(grubDir());
    assert.ok([...after.keys()].some((p) => p.endsWith('.sysprime-tmp')));
    assert.deepEqual(withoutTemps(after), before);
    await ok('doctor', '--fix');
    assert.match(readFileSync(join(grubDir(), 'sysprime.cfg'), 'utf8'), /--id sysprime-c \{/);
    assert.ok(![...snapshot(grubDir()).keys()].some((p) => p.endsWith('.sysprime-tmp')));
  });

  test('between the menu and grubenv: the new menu is whole, the old default stays until doctor --fix', async () => {
    const killed = await b.spEnv({ SYSPRIME_FAULT_INJECT: 'kill:boot:grub:grubenv' }, 'activate', 'a');
    assert.equal(killed.code, -1, killed.stderr);
    const env = () => parseGrubenv(readFileSync(join(grubDir(), 'grubenv'), 'utf8'));
    assert.equal(env().get('saved_entry'), 'sysprime-base');
    assert.match(readFileSync(join(grubDir(), 'sysprime.cfg'), 'utf8'), /--id sysprime-a \{/);
    assert.deepEqual(await bootKinds(b), ['default']);
    await ok('doctor', '--fix');
    assert.equal(env().get('saved_entry'), `sysprime-${await defaultOf(b)}`);
    assert.deepEqual(await bootKinds(b), []);
  });
});

describe('a kill -9 while kernels are copied to the ESP', () => {
  let b: BootScratch;
  const esp = () => join(b.dir, 'esp');
  const ok = async (...args: string[]) => {
    const r = await b.sp(...args);
    assert.equal(r.code, 0, `sysprime ${args.join(' ')}: ${r.stderr}`);
  };
  const entries = (files: Map<string, string>) => new Map([...files].filter(([p]) => p.startsWith('loader/')));
  /** Every sysprime entry boots a kernel and an initrd that are on the ESP, whole. */
  const bootable = (files: Map<string, string>, what: string) => {
    for (const [path, text] of files) {
      if (!path.startsWith('loader/entries/sysprime-')) continue;
      for (const key of ['linux', 'initrd']) {
        const file = new RegExp(`^${key} (\\S+)$`, 'm').exec(text)?.[1];
        assert.ok(file !== undefined, `${what}: ${path} names its ${key}`);
        const body = files.get(file.slice(1));
        assert.ok(body !== undefined && /^(kernel|initrd) \S+\n$/.test(body), `${what}: ${path} boots ${file}, whole: ${JSON.stringify(body)}`);
      }
    }
  };
  before(async () => {
    b = await makeBootScratch('btrfs', (dir) => {
      mkdirSync(join(dir, 'esp/loader/entries'), { recursive: true });
      return `loader = "systemd-boot"\nesp = "${join(dir, 'esp')}"\n`;
    });
    await ok('init', '--adopt', b.s.adopt, '--name', 'base');
  });
  after(async () => {
    await b?.cleanup();
  });

  test('before a copy is renamed into place, and between the kernel and the initrd: every entry boots a whole pair; doctor --fix finishes', async (t) => {
    let tried = 0;
    // A new environment's kernel and initrd are the two copies.
    for (const [i, point] of ['copying-1', 'copied-1', 'copying-2', 'copied-2'].entries()) {
      const before = snapshot(esp());
      const killed = await b.spEnv({ SYSPRIME_FAULT_INJECT: `kill:boot:systemd-boot:${point}` }, 'create', `k${i}`);
      assert.equal(killed.code, -1, `${point}: killed by a signal: ${killed.stderr}`);
      const after = snapshot(esp());
      assert.deepEqual(entries(withoutTemps(after)), entries(before), `${point}: the entries are as they were`);
      assert.equal([...after.keys()].some((p) => p.endsWith('.sysprime-tmp')), point.startsWith('copying-'), `${point}: a copy waits under its temporary name`);
      bootable(after, point);
      await ok('doctor', '--fix');
      const fixed = snapshot(esp());
      assert.ok(![...fixed.keys()].some((p) => p.endsWith('.sysprime-tmp')), `${point}: no temporary copy is left`);
      assert.ok(fixed.has(`loader/entries/sysprime-k${i}.conf`), `${point}: the new environment has its entry`);
      bootable(fixed, `${point}, fixed`);
      assert.deepEqual(await bootKinds(b), []);
      tried++;
    }
    t.diagnostic(`systemd-boot kernel copies: ${tried} kill points tried, all recovered`);
  });
});
