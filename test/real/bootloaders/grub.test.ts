import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGrub } from '../../../src/bootloaders/grub/index.js';
import { grubWritable } from '../../../src/bootloaders/grub/home.js';
import { rootArgsFor } from '../../../src/bootloaders/bls.js';
import { parseGrubenv } from '../../../src/bootloaders/grub/menu.js';
import type { BootEnvironment, Runner } from '../../../src/bootloaders/types.js';
import { isSysprimeError } from '../../../src/errors.js';
import { run } from '../../../src/process/run.js';

const scratch = mkdtempSync(join(tmpdir(), 'sysprime-grub-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let n = 0;

/** A /boot with grub/ and a grubenv, /etc/default/grub, and environment trees. */
async function setup(grubDefault = 'saved', parent = scratch, runner?: Runner) {
  const dir = join(parent, String(n++));
  const boot = join(dir, 'boot');
  mkdirSync(join(boot, 'grub'), { recursive: true });
  mkdirSync(join(dir, 'grub.d'));
  writeFileSync(join(dir, 'grub.d', '42_sysprime'), '#!/bin/sh\n');
  writeFileSync(join(dir, 'default-grub'), `GRUB_DEFAULT=${grubDefault}\n`);
  const envFile = join(boot, 'grub', 'grubenv');
  // The real grub-editenv, on a grubenv in the scratch directory (never this machine's).
  const vars = {
    get: (k: string) => parseGrubenv(readFileSync(envFile, 'utf8')).get(k),
    has: (k: string) => parseGrubenv(readFileSync(envFile, 'utf8')).has(k),
    set: (k: string, v: string) => run('grub-editenv', [envFile, 'set', `${k}=${v}`]),
  };
  await run('grub-editenv', [envFile, 'create']);
  const cmdline = join(dir, 'cmdline');
  writeFileSync(cmdline, 'BOOT_IMAGE=/ROOT/old/boot/vmlinuz-6.1 root=UUID=u\n');
  const grub = await createGrub({ grubDir: join(boot, 'grub'), grubD: join(dir, 'grub.d'), cmdlineFile: cmdline, esp: null, ...(runner === undefined ? {} : { run: runner }) });
  const env = (name: string, generation: number, enabled = true): BootEnvironment => {
    const tree = join(dir, 'trees', name);
    mkdirSync(join(tree, 'boot'), { recursive: true });
    if (enabled && !existsSync(join(tree, 'etc/systemd/system/multi-user.target.wants'))) {
      // sysprime-boot-complete.service enabled, as init leaves it in every environment on GRUB.
      mkdirSync(join(tree, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
      symlinkSync('/usr/lib/systemd/system/sysprime-boot-complete.service', join(tree, 'etc/systemd/system/multi-user.target.wants/sysprime-boot-complete.service'));
    }
    writeFileSync(join(tree, 'boot', 'vmlinuz-6.1.0-13-amd64'), 'k');
    writeFileSync(join(tree, 'boot', 'initrd.img-6.1.0-13-amd64'), 'i');
    const root = { fs: 'btrfs' as const, uuid: 'u', subvolume: `ROOT/${name}` };
    return { name, generation, created: new Date(Date.UTC(2026, 0, generation)), rootArgs: rootArgsFor(root), cmdline: '', root, tree };
  };
  return { grub, vars, env, boot, cmdline };
}

test('sync writes the menu, sets the default, and starts counting for a staged entry once', async () => {
  const s = await setup();
  await s.grub.probe();
  const first = await s.grub.sync([s.env('old', 1)], { defaultName: 'old' });
  assert.deepEqual(first.added, ['old']);
  assert.equal(s.vars.get('saved_entry'), 'sysprime-old');
  const res = await s.grub.sync([s.env('old', 1), s.env('new', 2)], { defaultName: 'new', fallbackName: 'old', staged: { name: 'new', tries: 3 } });
  assert.deepEqual(res.added, ['new']);
  assert.deepEqual(res.kept, ['old']);
  const menu = readFileSync(join(s.boot, 'grub', 'sysprime.cfg'), 'utf8');
  assert.match(menu, /--id sysprime-new \{/);
  assert.match(menu, /linux \/ROOT\/new\/boot\/vmlinuz-6.1.0-13-amd64 root=UUID=u rootflags=subvol=ROOT\/new/);
  assert.equal(s.vars.get('boot_counter'), '3');
  assert.equal(s.vars.get('sysprime_fallback'), 'sysprime-old');
  assert.equal(s.vars.get('saved_entry'), 'sysprime-new');
  // GRUB lowered the counter at a boot; another sync must not restart it.
  await s.vars.set('boot_counter', '1');
  await s.grub.sync([s.env('old', 1), s.env('new', 2)], { defaultName: 'new', fallbackName: 'old', staged: { name: 'new', tries: 3 } });
  const state = await s.grub.inspect();
  assert.deepEqual(state.entries.find((e) => e.name === 'new')?.counting, { state: 'counting', left: 1, done: 2 });
  assert.equal(state.defaultName, 'new');
  // Destroyed environment leaves the menu.
  const gone = await s.grub.sync([s.env('new', 2)], { defaultName: 'new' });
  assert.deepEqual(gone.removed, ['old']);
});

test('boot complete after a fallback makes the fallback the default; after the staged one, blesses it', async () => {
  const s = await setup();
  await s.grub.sync([s.env('old', 1)], { defaultName: 'old' });
  await s.grub.sync([s.env('old', 1), s.env('new', 2)], { defaultName: 'new', fallbackName: 'old', staged: { name: 'new', tries: 2 } });
  // GRUB ran out of tries and booted the fallback (it writes -1).
  await s.vars.set('boot_counter', '-1');
  assert.equal((await s.grub.inspect()).entries.find((e) => e.name === 'new')?.counting.state, 'bad');
  const notes = await s.grub.bootComplete!();
  assert.match(notes[0]!, /"new" failed to boot/);
  assert.equal(s.vars.get('saved_entry'), 'sysprime-old');
  assert.equal(s.vars.has('boot_counter'), false);
  // The failure stays on record for status and doctor until the entry goes or is chosen again.
  assert.deepEqual((await s.grub.inspect()).entries.find((e) => e.name === 'new')?.counting, { state: 'bad', done: 2 });
  await s.grub.sync([s.env('old', 1), s.env('new', 2)], { defaultName: 'old' });
  assert.equal((await s.grub.inspect()).entries.find((e) => e.name === 'new')?.counting.state, 'bad', 'a sync keeps the record');
  await s.grub.setDefault('new');
  assert.equal((await s.grub.inspect()).entries.find((e) => e.name === 'new')?.counting.state, 'blessed', 'choosing it again ends the record');
  assert.equal(s.vars.has('sysprime_failed'), false);

  const t = await setup();
  await t.grub.sync([t.env('old', 1)], { defaultName: 'old' });
  await t.grub.sync([t.env('old', 1), t.env('new', 2)], { defaultName: 'new', fallbackName: 'old', staged: { name: 'new', tries: 2 } });
  // The admin picked "old" by hand: nothing is blessed.
  assert.match((await t.grub.bootComplete!())[0]!, /still on trial/);
  assert.equal(t.vars.get('boot_counter'), '2');
  writeFileSync(t.cmdline, 'BOOT_IMAGE=/ROOT/new/boot/vmlinuz-6.1 root=UUID=u\n');
  assert.match((await t.grub.bootComplete!())[0]!, /"new" booted/);
  assert.equal(t.vars.has('boot_counter'), false);
  assert.equal(t.vars.get('boot_success'), '1');
  assert.equal(t.vars.get('saved_entry'), 'sysprime-new');
});

test('one-shot sets next_entry as grub-reboot does; the saved default applies whatever GRUB_DEFAULT says', async () => {
  const s = await setup('0');
  await s.grub.sync([s.env('a', 1), s.env('b', 2)], { defaultName: 'b' });
  await s.grub.setOneShot('a');
  assert.equal(s.vars.get('next_entry'), 'sysprime-a');
  assert.equal((await s.grub.inspect()).oneShotName, 'a');
  // Debian ships GRUB_DEFAULT=0: the menu sets the default from saved_entry itself, unless GRUB took a one-shot.
  await s.grub.setDefault('a');
  assert.equal(s.vars.get('saved_entry'), 'sysprime-a');
  assert.match(readFileSync(join(s.boot, 'grub', 'sysprime.cfg'), 'utf8'), /^if \[ -z "\$\{boot_once\}" -a -n "\$\{saved_entry\}" \]; then\n  set default="\$\{saved_entry\}"\nfi$/m);
  await assert.rejects(s.grub.setOneShot('zzz'), (e: unknown) => isSysprimeError(e, 'NOT_FOUND'));
});

test('where GRUB cannot write grubenv (tmpfs here, Btrfs or ZFS on a machine), one-shot is refused and a staged entry is not counted', async (t) => {
  if (!existsSync('/dev/shm')) return t.skip('no /dev/shm');
  const shm = mkdtempSync('/dev/shm/sysprime-grub-');
  try {
    const s = await setup('saved', shm);
    assert.equal(s.grub.capabilities.oneShot, false);
    await s.grub.sync([s.env('a', 1)], { defaultName: 'a' });
    const res = await s.grub.sync([s.env('a', 1), s.env('b', 2)], { defaultName: 'b', fallbackName: 'a', staged: { name: 'b', tries: 3 } });
    assert.equal(s.vars.get('boot_counter'), undefined, 'no counting GRUB could not carry out');
    assert.ok(res.warnings.some((w) => /boots without counting/.test(w)), res.warnings.join('\n'));
    await assert.rejects(s.grub.setOneShot('a'), (e: unknown) => isSysprimeError(e, 'REFUSED') && /could not clear the one-shot/.test((e as Error).message));
    assert.equal(s.vars.get('next_entry'), undefined);
    assert.ok((await s.grub.inspect()).warnings.some((w) => /no one-shot boot and no boot counting/.test(w)));
  } finally {
    rmSync(shm, { recursive: true, force: true });
  }
});

test('on ext4 over LVM (grub-probe says so), GRUB cannot write grubenv either: one-shot is refused and a staged entry is not counted', async (t) => {
  if (!grubWritable(scratch).writable) return t.skip(`${scratch} is not on a filesystem GRUB writes`);
  // grub-probe answers as on a /boot logical volume (device-mapper is not available here); everything else runs for real.
  const asked: string[] = [];
  const onLvm = (async (cmd: string, args: readonly string[], o?: object) => {
    if (cmd !== 'grub-probe') return run(cmd, args as string[], o as never);
    asked.push(args.join(' '));
    return { command: 'grub-probe', stdout: 'lvm\n', stderr: '', exitCode: 0 };
  }) as unknown as Runner;
  const s = await setup('saved', scratch, onLvm);
  await s.grub.sync([s.env('a', 1)], { defaultName: 'a' });
  const res = await s.grub.sync([s.env('a', 1), s.env('b', 2)], { defaultName: 'b', fallbackName: 'a', staged: { name: 'b', tries: 3 } });
  assert.equal(s.vars.get('boot_counter'), undefined, 'no counting GRUB could not carry out');
  assert.ok(res.warnings.some((w) => /GRUB cannot write grubenv on ext2\/3\/4 on LVM \(lvm\).*boots without counting/.test(w)), res.warnings.join('\n'));
  await assert.rejects(s.grub.setOneShot('a'), (e: unknown) => isSysprimeError(e, 'REFUSED') && /on LVM .*could not clear the one-shot/.test((e as Error).message));
  assert.equal(s.vars.get('next_entry'), undefined);
  assert.ok((await s.grub.inspect()).warnings.some((w) => /on LVM .*no one-shot boot and no boot counting/.test(w)));
  assert.deepEqual(asked, [`--target=abstraction ${join(s.boot, 'grub')}`], 'asked once, about GRUB\'s directory');
});

test('a staged environment without the unit that marks a good boot is not counted: it would fall back after booting fine', async () => {
  const s = await setup();
  await s.grub.sync([s.env('a', 1)], { defaultName: 'a' });
  const res = await s.grub.sync([s.env('a', 1), s.env('b', 2, false)], { defaultName: 'a', staged: { name: 'b', tries: 3 } });
  assert.equal(s.vars.get('boot_counter'), undefined);
  assert.ok(res.warnings.some((w) => /sysprime-boot-complete\.service is not enabled in "b"/.test(w)), res.warnings.join('\n'));
});

test('the menu sysprime writes is valid GRUB script (grub-script-check), default and counting blocks included', async (t) => {
  if ((await run('sh', ['-c', 'command -v grub-script-check'], { allowFailure: true })).exitCode !== 0) return t.skip('grub-script-check is not installed');
  const s = await setup();
  await s.grub.sync([s.env('a', 1), s.env('b', 2)], { defaultName: 'b', fallbackName: 'a', staged: { name: 'b', tries: 3 } });
  const res = await run('grub-script-check', [join(s.boot, 'grub', 'sysprime.cfg')], { allowFailure: true });
  assert.equal(res.exitCode, 0, res.stderr || res.stdout);
});

test('a description in the title: GRUB reads it back exactly, inspect still finds generation and kernel, and a sync changes only what changed', async (t) => {
  const s = await setup();
  const hostile = `it's "$x" (Linux 9.9) # sysprime generation 7 ... \\ ; {`;
  const described = { ...s.env('a', 1), description: hostile };
  const first = await s.grub.sync([described, s.env('b', 2)], { defaultName: 'b' });
  assert.deepEqual(first.added.sort(), ['a', 'b']);
  const state = await s.grub.inspect();
  const a = state.entries.find((e) => e.name === 'a');
  assert.equal(a?.title, `a: ${hostile} (generation 1, 2026-01-01)`);
  assert.equal(a?.generation, 1);
  assert.equal(a?.kernelVersion, '6.1.0-13-amd64');
  assert.deepEqual((await s.grub.sync([described, s.env('b', 2)], { defaultName: 'b' })).kept.sort(), ['a', 'b'], 'the same description: nothing to rewrite');
  const changed = await s.grub.sync([{ ...described, description: 'known good' }, s.env('b', 2)], { defaultName: 'b' });
  assert.deepEqual(changed.updated, ['a']);
  assert.equal((await s.grub.inspect()).entries.find((e) => e.name === 'a')?.title, 'a: known good (generation 1, 2026-01-01)');
  if ((await run('sh', ['-c', 'command -v grub-script-check'], { allowFailure: true })).exitCode !== 0) return t.skip('grub-script-check is not installed');
  await s.grub.sync([described, s.env('b', 2)], { defaultName: 'b' });
  const res = await run('grub-script-check', [join(s.boot, 'grub', 'sysprime.cfg')], { allowFailure: true });
  assert.equal(res.exitCode, 0, res.stderr || res.stdout);
});
