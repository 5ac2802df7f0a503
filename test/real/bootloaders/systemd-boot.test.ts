import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSystemdBoot } from '../../../src/bootloaders/systemd-boot/index.js';
import { espUsage, SPARE_BYTES } from '../../../src/bootloaders/systemd-boot/esp-kernels.js';
import { parseBlsEntry, parseEntryFileName, rootArgsFor } from '../../../src/bootloaders/bls.js';
import { encodeEfiString, LOADER_GUID } from '../../../src/bootloaders/efivars.js';
import type { BootEnvironment, Runner } from '../../../src/bootloaders/types.js';
import { isSysprimeError } from '../../../src/errors.js';
import { run } from '../../../src/process/run.js';

const scratch = mkdtempSync(join(tmpdir(), 'sysprime-sdboot-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let counter = 0;

function fresh(): { esp: string; trees: string } {
  const dir = join(scratch, String(counter++));
  mkdirSync(join(dir, 'esp', 'EFI'), { recursive: true });
  mkdirSync(join(dir, 'trees'));
  return { esp: join(dir, 'esp'), trees: join(dir, 'trees') };
}

function tree(trees: string, name: string, version = '6.1.0-13-amd64', body = `kernel of ${name}`): string {
  const t = join(trees, name);
  mkdirSync(join(t, 'boot'), { recursive: true });
  writeFileSync(join(t, 'boot', `vmlinuz-${version}`), body);
  writeFileSync(join(t, 'boot', `initrd.img-${version}`), `initrd ${body}`);
  return t;
}

function env(trees: string, name: string, generation: number, opts: { noKernel?: boolean } = {}): BootEnvironment {
  const root = { fs: 'btrfs' as const, uuid: 'u-1', subvolume: `ROOT/${name}` };
  const t = opts.noKernel ? join(trees, name) : existsSync(join(trees, name)) ? join(trees, name) : tree(trees, name);
  if (opts.noKernel) mkdirSync(t, { recursive: true });
  return { name, generation, created: new Date(Date.UTC(2026, 0, generation)), rootArgs: rootArgsFor(root), cmdline: 'quiet', root, tree: t };
}

const entryFiles = (esp: string): string[] => readdirSync(join(esp, 'loader', 'entries')).sort();

test('sync writes one entry per environment and copies its kernel to the ESP', async () => {
  const { esp, trees } = fresh();
  const loader = createSystemdBoot({ esp });
  const res = await loader.sync([env(trees, 'gen-1', 1), env(trees, 'gen-2', 2), env(trees, 'empty', 3, { noKernel: true })], { defaultName: 'gen-2', fallbackName: 'gen-1' });
  assert.deepEqual(res.added.sort(), ['gen-1', 'gen-2']);
  assert.equal(res.warnings.length, 1);
  assert.match(res.warnings[0]!, /"empty" has no kernel/);
  assert.deepEqual(entryFiles(esp), ['sysprime-gen-1.conf', 'sysprime-gen-2.conf']);
  const fields = parseBlsEntry(readFileSync(join(esp, 'loader', 'entries', 'sysprime-gen-2.conf'), 'utf8'));
  assert.deepEqual(fields.get('linux'), ['/sysprime/gen-2/vmlinuz-6.1.0-13-amd64']);
  assert.deepEqual(fields.get('options'), ['root=UUID=u-1 rootflags=subvol=ROOT/gen-2 quiet']);
  assert.deepEqual(fields.get('sort-key'), ['sysprime-1-default']);
  assert.equal(readFileSync(join(esp, 'sysprime', 'gen-2', 'vmlinuz-6.1.0-13-amd64'), 'utf8'), 'kernel of gen-2');
  assert.equal(readFileSync(join(esp, 'sysprime', 'gen-1', 'initrd.img-6.1.0-13-amd64'), 'utf8'), 'initrd kernel of gen-1');
  assert.equal(readFileSync(join(esp, 'loader', 'loader.conf'), 'utf8'), 'default sysprime-*\n');
  const state = await loader.inspect();
  assert.equal(state.defaultName, 'gen-2');
  assert.deepEqual(state.warnings, []);

  const again = await loader.sync([env(trees, 'gen-1', 1), env(trees, 'gen-2', 2)], { defaultName: 'gen-2', fallbackName: 'gen-1' });
  assert.deepEqual(again.kept.sort(), ['gen-1', 'gen-2']);
  assert.deepEqual(again.added, []);
});

test("a /boot that is a link to the running system's files: nothing of them reaches the ESP", async () => {
  const { esp, trees } = fresh();
  // The running system's /boot, as an absolute link in the environment would resolve it.
  const host = join(trees, '..', 'host-boot');
  mkdirSync(host);
  writeFileSync(join(host, 'vmlinuz-6.9.0'), 'host kernel');
  const t = join(trees, 'linked');
  mkdirSync(t);
  symlinkSync(host, join(t, 'boot'));
  const loader = createSystemdBoot({ esp });
  const res = await loader.sync([env(trees, 'linked', 1)], { defaultName: 'linked' });
  assert.deepEqual(res.added, []);
  assert.match(res.warnings.join('\n'), /"linked" has no kernel/);
  assert.ok(!existsSync(join(esp, 'sysprime', 'linked')), 'no host kernel copied to the ESP');
});

test('a rename and a destroy are reflected by the next sync; kernels leave with their entry', async () => {
  const { esp, trees } = fresh();
  const loader = createSystemdBoot({ esp });
  await loader.sync([env(trees, 'a', 1), env(trees, 'b', 2), env(trees, 'c', 3)], { defaultName: 'c' });
  renameSync(join(trees, 'b'), join(trees, 'b2'));
  const res = await loader.sync([env(trees, 'b2', 2), env(trees, 'c', 3)], { defaultName: 'c' });
  assert.deepEqual(res.added, ['b2']);
  assert.deepEqual(res.removed.sort(), ['a', 'b']);
  assert.deepEqual(entryFiles(esp), ['sysprime-b2.conf', 'sysprime-c.conf']);
  assert.deepEqual(readdirSync(join(esp, 'sysprime')).sort(), ['b2', 'c']);
});

test('a new kernel in an environment replaces the old one on the ESP', async () => {
  const { esp, trees } = fresh();
  const loader = createSystemdBoot({ esp });
  await loader.sync([env(trees, 'a', 1)], { defaultName: 'a' });
  tree(trees, 'a', '6.1.0-20-amd64', 'newer kernel');
  const res = await loader.sync([env(trees, 'a', 1)], { defaultName: 'a' });
  assert.deepEqual(res.updated, ['a']);
  assert.deepEqual(readdirSync(join(esp, 'sysprime', 'a')).sort(), ['initrd.img-6.1.0-20-amd64', 'vmlinuz-6.1.0-20-amd64']);
  // Same version, rebuilt initramfs: copied again because its content changed.
  writeFileSync(join(trees, 'a', 'boot', 'initrd.img-6.1.0-20-amd64'), 'rebuilt');
  const res2 = await loader.sync([env(trees, 'a', 1)], { defaultName: 'a' });
  assert.deepEqual(res2.updated, ['a']);
  assert.equal(readFileSync(join(esp, 'sysprime', 'a', 'initrd.img-6.1.0-20-amd64'), 'utf8'), 'rebuilt');
});

test('a staged entry counts; its counter survives later syncs; a blessed entry stays blessed', async () => {
  const { esp, trees } = fresh();
  const loader = createSystemdBoot({ esp });
  await loader.sync([env(trees, 'old', 1)], { defaultName: 'old' });
  await loader.sync([env(trees, 'old', 1), env(trees, 'new', 2)], { defaultName: 'new', fallbackName: 'old', staged: { name: 'new', tries: 3 } });
  assert.deepEqual(entryFiles(esp), ['sysprime-new+3.conf', 'sysprime-old.conf']);
  // systemd-boot renames the file on each try.
  renameSync(join(esp, 'loader', 'entries', 'sysprime-new+3.conf'), join(esp, 'loader', 'entries', 'sysprime-new+2-1.conf'));
  const res = await loader.sync([env(trees, 'old', 1), env(trees, 'new', 2)], { defaultName: 'new', fallbackName: 'old', staged: { name: 'new', tries: 3 } });
  assert.deepEqual(res.kept.sort(), ['new', 'old']);
  assert.deepEqual(entryFiles(esp), ['sysprime-new+2-1.conf', 'sysprime-old.conf']);
  const state = await loader.inspect();
  assert.deepEqual(state.entries.find((e) => e.name === 'new')?.counting, { state: 'counting', left: 2, done: 1 });
  assert.equal(state.defaultName, 'new');
  // Out of tries: systemd-boot sorts it last and the fallback boots.
  renameSync(join(esp, 'loader', 'entries', 'sysprime-new+2-1.conf'), join(esp, 'loader', 'entries', 'sysprime-new+0-3.conf'));
  assert.equal((await loader.inspect()).defaultName, 'old');
  // systemd-bless-boot drops the suffix after a good boot; a sync keeps it that way.
  renameSync(join(esp, 'loader', 'entries', 'sysprime-new+0-3.conf'), join(esp, 'loader', 'entries', 'sysprime-new.conf'));
  await loader.sync([env(trees, 'old', 1), env(trees, 'new', 2)], { defaultName: 'new', fallbackName: 'old', staged: { name: 'new', tries: 3 } });
  assert.deepEqual(entryFiles(esp), ['sysprime-new.conf', 'sysprime-old.conf']);
});

test("the admin's own entries and loader.conf lines are left alone", async () => {
  const { esp, trees } = fresh();
  mkdirSync(join(esp, 'loader', 'entries'), { recursive: true });
  const mine = 'title Debian by hand\nlinux /vmlinuz\noptions root=/dev/sda2\n';
  writeFileSync(join(esp, 'loader', 'entries', 'debian.conf'), mine);
  writeFileSync(join(esp, 'loader', 'loader.conf'), '# mine\ntimeout 4\ndefault debian.conf\neditor no\n');
  const loader = createSystemdBoot({ esp });
  await loader.sync([env(trees, 'a', 1)], { defaultName: 'a' });
  await loader.sync([], { defaultName: 'a' });
  assert.deepEqual(entryFiles(esp), ['debian.conf']);
  assert.equal(readFileSync(join(esp, 'loader', 'entries', 'debian.conf'), 'utf8'), mine);
  assert.equal(readFileSync(join(esp, 'loader', 'loader.conf'), 'utf8'), '# mine\ntimeout 4\ndefault sysprime-*\neditor no\n');
});

test('a crash in the middle of the swap leaves every entry complete and parseable', async () => {
  for (let k = 1; k <= 3; k++) {
    const { esp, trees } = fresh();
    const envs = ['a', 'b', 'c', 'd'].map((n, i) => env(trees, n, i + 1));
    await createSystemdBoot({ esp }).sync(envs, { defaultName: 'd', fallbackName: 'c' });
    const before = new Map(entryFiles(esp).map((f) => [f, readFileSync(join(esp, 'loader', 'entries', f), 'utf8')]));
    const changedEnvs = envs.map((e) => ({ ...e, cmdline: 'quiet splash' }));
    const crashing = createSystemdBoot({
      esp,
      afterRename: (count) => {
        if (count === k) throw new Error(`simulated crash after ${k} renames`);
      },
    });
    await assert.rejects(crashing.sync(changedEnvs, { defaultName: 'a', fallbackName: 'd' }), /simulated crash/);
    const files = entryFiles(esp);
    assert.deepEqual(files, [...before.keys()], 'no entry lost, none added, no temporary left behind');
    let changed = 0;
    for (const f of files) {
      const text = readFileSync(join(esp, 'loader', 'entries', f), 'utf8');
      const fields = parseBlsEntry(text);
      assert.ok(parseEntryFileName(f));
      for (const key of ['title', 'sort-key', 'version', 'linux', 'initrd', 'options']) assert.equal(fields.get(key)?.length, 1, `${f} has one ${key}`);
      assert.ok(existsSync(join(esp, fields.get('linux')![0]!)), `${f} points at a kernel that exists`);
      if (text !== before.get(f)) {
        changed++;
        assert.match(text, /^options .* quiet splash$/m, 'a changed file is the whole new version');
      }
    }
    assert.equal(changed, k, `exactly the ${k} renamed entries are new`);
    // The next run finishes the job.
    await createSystemdBoot({ esp }).sync(changedEnvs, { defaultName: 'a', fallbackName: 'd' });
    for (const f of entryFiles(esp)) assert.match(readFileSync(join(esp, 'loader', 'entries', f), 'utf8'), /quiet splash/);
    assert.equal((await createSystemdBoot({ esp }).inspect()).defaultName, 'a');
  }
});

test('too little room on the ESP refuses with NO_SPACE before writing anything', async () => {
  const { esp, trees } = fresh();
  const loader = createSystemdBoot({ esp, freeBytes: () => 1024 });
  await assert.rejects(loader.sync([env(trees, 'a', 1)], { defaultName: 'a' }), (e: unknown) => isSysprimeError(e, 'NO_SPACE') && /ESP/.test((e as Error).message));
  assert.equal(existsSync(join(esp, 'loader', 'entries')), false);
  assert.equal(existsSync(join(esp, 'sysprime')), false);
});

test('NO_SPACE on a real 1 MiB tmpfs ESP', { skip: process.getuid?.() !== 0 ? 'needs root to mount tmpfs' : false }, async () => {
  const { esp, trees } = fresh();
  await run('mount', ['-t', 'tmpfs', '-o', 'size=1M', 'sysprime-test-esp', esp]);
  try {
    const t = tree(trees, 'big');
    writeFileSync(join(t, 'boot', 'vmlinuz-6.1.0-13-amd64'), Buffer.alloc(900 * 1024, 1));
    writeFileSync(join(t, 'boot', 'initrd.img-6.1.0-13-amd64'), Buffer.alloc(600 * 1024, 2));
    const loader = createSystemdBoot({ esp });
    await assert.rejects(loader.sync([env(trees, 'big', 1)], { defaultName: 'big' }), (e: unknown) => isSysprimeError(e, 'NO_SPACE'));
    assert.deepEqual(readdirSync(esp), []);
    // A small one fits.
    const ok = await loader.sync([env(trees, 'small', 2)], { defaultName: 'small' });
    assert.deepEqual(ok.added, ['small']);
  } finally {
    await run('umount', [esp]);
  }
});

test('setDefault moves the default and keeps the old one as fallback', async () => {
  const { esp, trees } = fresh();
  const loader = createSystemdBoot({ esp });
  await loader.sync([env(trees, 'a', 1), env(trees, 'b', 2), env(trees, 'c', 3)], { defaultName: 'c' });
  await loader.setDefault('a');
  const keyOf = (n: string) => parseBlsEntry(readFileSync(join(esp, 'loader', 'entries', `sysprime-${n}.conf`), 'utf8')).get('sort-key')?.[0];
  assert.equal(keyOf('a'), 'sysprime-1-default');
  assert.equal(keyOf('c'), 'sysprime-2-fallback');
  assert.equal(keyOf('b'), 'sysprime-3');
  assert.equal((await loader.inspect()).defaultName, 'a');
  await assert.rejects(loader.setDefault('zzz'), (e: unknown) => isSysprimeError(e, 'NOT_FOUND'));
});

test('one-shot issues bootctl set-oneshot only when the machine runs systemd-boot', async () => {
  const { esp, trees } = fresh();
  const efivars = join(esp, '..', 'efivars');
  mkdirSync(efivars);
  const calls: string[][] = [];
  const fake: Runner = async (file, args) => {
    calls.push([file, ...args]);
    return { command: file, exitCode: 0, stdout: '', stderr: '' };
  };
  const loader = createSystemdBoot({ esp, efivars, run: fake });
  await loader.sync([env(trees, 'a', 1), env(trees, 'b', 2)], { defaultName: 'b', staged: { name: 'a', tries: 2 } });
  await assert.rejects(loader.setOneShot('a'), (e: unknown) => isSysprimeError(e, 'REFUSED') && /not started by systemd-boot/.test((e as Error).message));
  assert.deepEqual(calls, []);
  writeFileSync(join(efivars, `LoaderInfo-${LOADER_GUID}`), encodeEfiString('systemd-boot 252.30-1~deb12u2'));
  await loader.setOneShot('a');
  assert.deepEqual(calls, [['bootctl', 'set-oneshot', 'sysprime-a+2.conf']]);
  writeFileSync(join(efivars, `LoaderEntryOneShot-${LOADER_GUID}`), encodeEfiString('sysprime-a+2.conf'));
  const state = await loader.inspect();
  assert.equal(state.oneShotName, 'a');
  assert.equal(state.defaultName, 'b');
  await assert.rejects(loader.setOneShot('nope'), (e: unknown) => isSysprimeError(e, 'NOT_FOUND'));
});

test('names systemd-boot cannot hold get a warning, not an entry', async () => {
  const { esp, trees } = fresh();
  const loader = createSystemdBoot({ esp });
  const res = await loader.sync([env(trees, 'x+3', 1), env(trees, 'Same', 2), env(trees, 'same', 3)], { defaultName: 'Same' });
  assert.deepEqual(res.added.sort(), ['Same']);
  assert.equal(res.warnings.length, 2);
  assert.match(res.warnings.join('\n'), /boot counter/);
  assert.match(res.warnings.join('\n'), /FAT/);
});

test('temporaries a killed run left behind are never entries and are cleaned by the next sync', async () => {
  const { esp, trees } = fresh();
  const loader = createSystemdBoot({ esp });
  await loader.sync([env(trees, 'a', 1)], { defaultName: 'a' });
  const stale = '.sysprime-a.conf.4242.sysprime-tmp';
  writeFileSync(join(esp, 'loader', 'entries', stale), 'title half-writ');
  assert.equal(parseEntryFileName(stale), null);
  assert.deepEqual((await loader.inspect()).entries.map((e) => e.ref), ['sysprime-a.conf']);
  await loader.sync([env(trees, 'a', 1)], { defaultName: 'a' });
  assert.deepEqual(entryFiles(esp), ['sysprime-a.conf']);
});

test('espUsage: the free space less the spare, each environment\'s kernel files, and the largest set as what one more needs', async () => {
  const esp = join(scratch, 'esp-usage');
  mkdirSync(join(esp, 'sysprime', 'old'), { recursive: true });
  mkdirSync(join(esp, 'sysprime', 'new'), { recursive: true });
  writeFileSync(join(esp, 'sysprime', 'old', 'vmlinuz-1'), Buffer.alloc(1000));
  writeFileSync(join(esp, 'sysprime', 'old', 'initrd.img-1'), Buffer.alloc(500));
  writeFileSync(join(esp, 'sysprime', 'new', 'vmlinuz-2'), Buffer.alloc(3000));
  const usage = espUsage(esp, () => 10_000_000);
  assert.deepEqual([...usage.perEnvironment].sort(), [['new', 3000], ['old', 1500]]);
  assert.equal(usage.need, 3000);
  assert.equal(usage.free, 10_000_000 - SPARE_BYTES);
  const loader = createSystemdBoot({ esp });
  assert.deepEqual((await loader.espUsage!()).perEnvironment.get('old'), 1500);
  assert.deepEqual(espUsage(join(scratch, 'no-esp-kernels'), () => 0), { free: 0, need: 0, perEnvironment: new Map() });
});

test('a description in the title: written as it is on its one line, read back by inspect, rewritten only when it changes', async () => {
  const { esp, trees } = fresh();
  const loader = createSystemdBoot({ esp });
  const described = { ...env(trees, 'gen-1', 1), description: `"quoted" it's $x # not a comment` };
  await loader.sync([described, env(trees, 'gen-2', 2)], { defaultName: 'gen-2' });
  const text = readFileSync(join(esp, 'loader', 'entries', 'sysprime-gen-1.conf'), 'utf8');
  assert.deepEqual(parseBlsEntry(text).get('title'), [`gen-1: "quoted" it's $x # not a comment (generation 1, 2026-01-01)`]);
  assert.equal((await loader.inspect()).entries.find((e) => e.name === 'gen-1')?.title, `gen-1: "quoted" it's $x # not a comment (generation 1, 2026-01-01)`);
  assert.deepEqual((await loader.sync([described, env(trees, 'gen-2', 2)], { defaultName: 'gen-2' })).kept.sort(), ['gen-1', 'gen-2']);
  const changed = await loader.sync([{ ...described, description: null }, env(trees, 'gen-2', 2)], { defaultName: 'gen-2' });
  assert.deepEqual(changed.updated, ['gen-1']);
  assert.deepEqual(parseBlsEntry(readFileSync(join(esp, 'loader', 'entries', 'sysprime-gen-1.conf'), 'utf8')).get('title'), ['gen-1 (generation 1, 2026-01-01)']);
});
