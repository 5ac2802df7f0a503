/**
 * The Debian installer's Btrfs layout with GRUB (`@rootfs` holding /boot,
 * GRUB's directory in it, the signed GRUB's stub on the ESP pointing there),
 * adopted with the real CLI: init moves GRUB's directory to the ESP, points
 * the stub at it and gives every environment the fstab line that mounts it;
 * staging, one-shot and counting then write where GRUB reads, also after
 * `@rootfs` is deleted. The ESP is a directory standing in for the FAT one
 * (vfat cannot be mounted here): SYSPRIME_ESP_STANDIN lists it as a vfat
 * mount, SYSPRIME_GRUB_WRITABLE as a filesystem GRUB writes. The VM suite
 * boots the real thing.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sysprime } from '../../fixtures/cli.js';
import { makeBtrfsLayout, readText, type BtrfsLayout } from '../../fixtures/btrfs-layouts.js';
import { menuBlocks, parseGrubenv } from '../../../src/bootloaders/grub/menu.js';
import { renderStub } from '../../../src/bootloaders/grub/home.js';
import { run } from '../../../src/process/run.js';

/** sysprime's units where its package installs them. */
function packageUnits(root: string): void {
  mkdirSync(join(root, 'usr/lib/systemd/system'), { recursive: true });
  writeFileSync(join(root, 'usr/lib/systemd/system/sysprime-boot-complete.service'), '[Install]\nWantedBy=multi-user.target\n');
  writeFileSync(join(root, 'usr/lib/systemd/system/sysprime-boot-start.service'), '[Unit]\nBefore=sysinit.target\n\n[Install]\nWantedBy=sysinit.target\n');
}

const GRUB_CFG = '### BEGIN /etc/grub.d/00_header ###\nif [ -s $prefix/grubenv ]; then\n  load_env\nfi\n### sysprime boot environments ###\n';

describe("the Debian installer's Btrfs layout with GRUB on UEFI", () => {
  let l: BtrfsLayout;
  let esp: string;
  let oldGrub: string;
  let stub: string;
  const sp = (...args: string[]) => sysprime(args, { config: l.config, env: { SYSPRIME_GRUB_WRITABLE: esp, SYSPRIME_ESP_STANDIN: esp } });
  const ok = async (...args: string[]) => {
    const r = await sp(...args);
    assert.equal(r.code, 0, `sysprime ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const home = () => join(esp, 'grub');
  const grubenv = () => parseGrubenv(readFileSync(join(home(), 'grubenv'), 'utf8'));
  const menuIds = () => [...menuBlocks(readFileSync(join(home(), 'sysprime.cfg'), 'utf8')).keys()].sort();

  before(async () => {
    l = await makeBtrfsLayout('debian');
    packageUnits(join(l.pool.top, '@rootfs'));
    // The running system's GRUB directory, as grub-install and update-grub left it in @rootfs.
    oldGrub = join(l.sysroot, 'boot/grub');
    mkdirSync(join(oldGrub, 'x86_64-efi'), { recursive: true });
    writeFileSync(join(oldGrub, 'x86_64-efi', 'normal.mod'), 'module\n');
    writeFileSync(join(oldGrub, 'grub.cfg'), GRUB_CFG);
    await run('grub-editenv', [join(oldGrub, 'grubenv'), 'create']);
    // The ESP stands on the same filesystem (a directory at its top), so findmnt finds a UUID for it.
    esp = join(l.pool.top, 'esp');
    mkdirSync(join(esp, 'EFI/debian'), { recursive: true });
    stub = `search.fs_uuid ${l.uuid} root hd0,gpt2 \nset prefix=($root)'/@rootfs/boot/grub'\nconfigfile $prefix/grub.cfg\n`;
    writeFileSync(join(esp, 'EFI/debian/grub.cfg'), stub);
    writeFileSync(join(esp, 'EFI/debian/grubx64.efi'), 'signed GRUB\n');
    const scripts = join(l.pool.dir, 'grub.d');
    mkdirSync(scripts);
    writeFileSync(join(scripts, '42_sysprime'), '#!/bin/sh\n');
    chmodSync(join(scripts, '42_sysprime'), 0o755);
    const update = join(l.pool.dir, 'update.sh');
    writeFileSync(update, '#!/bin/sh\nset -e\necho 2 > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"\n');
    chmodSync(update, 0o755);
    const config = readText(l.config).replace('loader = "none"', `loader = "grub"\nesp = "${esp}"\ntries = 2\n[grub]\ndir = "${oldGrub}"\nscripts = "${scripts}"`);
    writeFileSync(l.config, `${config}[update]\nmethod = "command"\ncommand = "${update}"\nchroot = false\n`);
  });
  after(async () => {
    await l?.cleanup();
  });

  test('init moves GRUB\'s directory to the ESP, points the stub there, and the environment mounts it', async () => {
    const r = await ok('init', '--adopt', '@rootfs', '--name', 'debian');
    assert.match(r.stderr, /copied GRUB's directory/);
    assert.equal(readText(join(home(), 'grub.cfg')), GRUB_CFG);
    assert.equal(readText(join(home(), 'x86_64-efi', 'normal.mod')), 'module\n');
    assert.equal(readText(join(esp, 'EFI/debian/grub.cfg')), renderStub(l.uuid));
    assert.equal(readText(join(esp, 'EFI/debian/grub.cfg.before-sysprime')), stub);
    assert.deepEqual(menuIds(), ['sysprime-debian']);
    assert.match(menuBlocks(readText(join(home(), 'sysprime.cfg'))).get('sysprime-debian')!, /linux \/ROOT\/debian\/boot\/vmlinuz-6\.1\.0-28-amd64 root=UUID=\S+ rootflags=subvol=ROOT\/debian/);
    assert.equal(grubenv().get('saved_entry'), 'sysprime-debian');
    assert.ok(!existsSync(join(l.pool.top, '@rootfs/boot/grub/sysprime.cfg')), 'nothing is written in the old directory, which GRUB no longer reads');
    assert.ok(existsSync(join(oldGrub, 'sysprime.cfg')), 'the running root has GRUB\'s directory on the ESP mounted over its own until the reboot');
    const line = `${esp}/grub /boot/grub none bind,nofail,x-systemd.requires-mounts-for=${esp} 0 0`;
    for (const tree of ['ROOT/debian', 'ROOT/.pristine/debian']) assert.ok(readText(join(l.pool.top, tree, 'etc/fstab')).includes(`\n${line}\n`), `${tree}/etc/fstab mounts GRUB's directory`);
    assert.equal(readText(join(l.sysroot, 'etc/fstab')), l.fstab, 'the running root\'s fstab is never touched');
    const wants = 'etc/systemd/system/multi-user.target.wants/sysprime-boot-complete.service';
    assert.equal(readlinkSync(join(l.pool.top, 'ROOT/debian', wants)), '/usr/lib/systemd/system/sysprime-boot-complete.service', 'the unit that marks a boot good is enabled');
    assert.ok(!existsSync(join(l.sysroot, wants)), 'not in the running root');
    assert.ok(!existsSync(join(l.pool.top, 'ROOT/debian', 'etc/systemd/system/sysinit.target.wants/sysprime-boot-start.service')), 'no kernels to settle at boot without a /boot partition');
  });

  test('a staged environment has the line, its entry counts its tries in the ESP\'s grubenv, and a one-shot can be set', async () => {
    await ok('stage', '--name', 'next');
    assert.ok(readText(join(l.pool.top, 'ROOT/next/etc/fstab')).includes(`${esp}/grub /boot/grub none bind`));
    assert.deepEqual(menuIds(), ['sysprime-debian', 'sysprime-next']);
    assert.equal(grubenv().get('boot_counter'), '2');
    assert.equal(grubenv().get('sysprime_fallback'), 'sysprime-debian');
    await ok('activate', '--once', 'next');
    assert.equal(grubenv().get('next_entry'), 'sysprime-next');
  });

  test('with @rootfs deleted, the verbs keep writing where GRUB reads', async () => {
    await run('umount', ['-R', l.sysroot]);
    await run('btrfs', ['-q', 'subvolume', 'delete', join(l.pool.top, '@rootfs')]);
    // As after the reboot that comes before it: the machine runs the adopted environment, whose /boot/grub is the ESP's.
    await run('mount', ['-t', 'btrfs', '-o', 'subvol=ROOT/debian', l.pool.device, l.sysroot]);
    await ok('activate', 'next');
    assert.equal(grubenv().get('saved_entry'), 'sysprime-next');
    await ok('create', 'third');
    assert.deepEqual(menuIds(), ['sysprime-debian', 'sysprime-next', 'sysprime-third']);
    assert.equal(readText(join(esp, 'EFI/debian/grub.cfg')), renderStub(l.uuid));
  });

  test('after GRUB fell back from a failed trial, the next verb makes the fallback the default instead of pointing GRUB at the failed one again', async () => {
    // GRUB used up next's tries and booted the fallback (it writes -1); the boot is then completed.
    await run('grub-editenv', [join(home(), 'grubenv'), 'set', 'boot_counter=-1']);
    const done = await ok('boot-hook', 'complete');
    assert.match(done.stdout, /"next" failed to boot/);
    assert.match(done.stdout, /"next" failed its trial; "debian" is the default/);
    assert.equal(grubenv().get('saved_entry'), 'sysprime-debian');
    assert.equal(grubenv().get('sysprime_failed'), 'sysprime-next');
    await ok('create', 'fourth');
    const envs = (await ok('--json', 'list')).json<{ name: string; default: boolean }[]>();
    assert.deepEqual(envs.filter((e) => e.default).map((e) => e.name), ['debian'], 'the filesystem default follows the fallback');
    assert.equal(grubenv().get('saved_entry'), 'sysprime-debian', 'GRUB is not pointed at the failed environment again');
    // The admin may choose it again on purpose.
    await ok('activate', 'next');
    assert.equal(grubenv().get('saved_entry'), 'sysprime-next');
    assert.deepEqual((await ok('--json', 'list')).json<{ name: string; default: boolean }[]>().filter((e) => e.default).map((e) => e.name), ['next']);
  });
});

describe("the Debian installer's Btrfs layout with a separate /boot and GRUB", () => {
  let l: BtrfsLayout;
  let boot: string;
  const sp = (...args: string[]) => sysprime(args, { config: l.config, env: { SYSPRIME_GRUB_WRITABLE: boot, SYSPRIME_BOOT_PARTITION: boot } });
  const ok = async (...args: string[]) => {
    const r = await sp(...args);
    assert.equal(r.code, 0, `sysprime ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const menu = () => menuBlocks(readFileSync(join(boot, 'grub', 'sysprime.cfg'), 'utf8'));

  before(async () => {
    l = await makeBtrfsLayout('debian-boot');
    packageUnits(join(l.pool.top, '@rootfs'));
    // The ext4 /boot partition as the running system mounts it: kernels, GRUB's directory.
    boot = join(l.pool.dir, 'boot-partition');
    mkdirSync(join(boot, 'grub'), { recursive: true });
    writeFileSync(join(boot, 'vmlinuz-6.1.0-28-amd64'), 'kernel 28\n');
    writeFileSync(join(boot, 'initrd.img-6.1.0-28-amd64'), 'initrd 28\n');
    writeFileSync(join(boot, 'config-6.1.0-28-amd64'), 'CONFIG_BTRFS_FS=m\n');
    writeFileSync(join(boot, 'grub', 'grub.cfg'), GRUB_CFG);
    await run('grub-editenv', [join(boot, 'grub', 'grubenv'), 'create']);
    const scripts = join(l.pool.dir, 'grub.d');
    mkdirSync(scripts);
    writeFileSync(join(scripts, '42_sysprime'), '#!/bin/sh\n');
    chmodSync(join(scripts, '42_sysprime'), 0o755);
    const update = join(l.pool.dir, 'update.sh');
    // The update installs a new kernel, as apt would: into the clone's own /boot (the partition is not mounted there).
    writeFileSync(update, '#!/bin/sh\nset -e\necho kernel 30 > "$SYSPRIME_ROOT/boot/vmlinuz-6.1.0-30-amd64"\necho initrd 30 > "$SYSPRIME_ROOT/boot/initrd.img-6.1.0-30-amd64"\n');
    chmodSync(update, 0o755);
    const config = readText(l.config).replace('loader = "none"', `loader = "grub"\n[grub]\ndir = "${join(boot, 'grub')}"\nscripts = "${scripts}"`);
    writeFileSync(l.config, `${config}[update]\nmethod = "command"\ncommand = "${update}"\nchroot = false\n`);
  });
  after(async () => {
    await l?.cleanup();
  });

  test('init gives the adopted environment its own copy of the running kernels; GRUB\'s directory stays on the partition', async () => {
    assert.ok(!existsSync(join(l.pool.top, '@rootfs/boot/vmlinuz-6.1.0-28-amd64')), 'the installer\'s root holds no kernel of its own');
    const r = await ok('init', '--adopt', '@rootfs', '--name', 'debian');
    assert.doesNotMatch(r.stderr, /copied GRUB's directory/);
    for (const tree of ['ROOT/debian', 'ROOT/.pristine/debian']) {
      assert.equal(readText(join(l.pool.top, tree, 'boot/vmlinuz-6.1.0-28-amd64')), 'kernel 28\n', `${tree} has the kernel`);
      assert.equal(readText(join(l.pool.top, tree, 'boot/config-6.1.0-28-amd64')), 'CONFIG_BTRFS_FS=m\n');
      assert.ok(!existsSync(join(l.pool.top, tree, 'boot/grub')), 'GRUB\'s directory is the partition\'s, not copied');
    }
    assert.match(menu().get('sysprime-debian')!, /linux \/ROOT\/debian\/boot\/vmlinuz-6\.1\.0-28-amd64 /);
    assert.ok(!existsSync(join(l.pool.top, '@rootfs/boot/vmlinuz-6.1.0-28-amd64')), 'the installer\'s root is not written');
    // Each environment puts its own kernels on the partition early in its boots: the unit is enabled where its WantedBy= says.
    for (const tree of ['ROOT/debian', 'ROOT/.pristine/debian']) {
      assert.equal(readlinkSync(join(l.pool.top, tree, 'etc/systemd/system/sysinit.target.wants/sysprime-boot-start.service')), '/usr/lib/systemd/system/sysprime-boot-start.service', `${tree} starts sysprime-boot-start.service at boot`);
    }
  });

  test('a staged kernel stays the new environment\'s: the partition and the running environment keep theirs', async () => {
    await ok('stage', '--name', 'next');
    assert.match(menu().get('sysprime-next')!, /linux \/ROOT\/next\/boot\/vmlinuz-6\.1\.0-30-amd64 /);
    assert.match(menu().get('sysprime-debian')!, /vmlinuz-6\.1\.0-28-amd64 /);
    assert.ok(!existsSync(join(boot, 'vmlinuz-6.1.0-30-amd64')), 'the partition never gets a staged kernel');
    assert.ok(!existsSync(join(l.pool.top, 'ROOT/debian/boot/vmlinuz-6.1.0-30-amd64')));
  });

  test('an environment that does not start sysprime-boot-start.service (a machine initialised before init enabled it) is named by doctor and fixed by --fix', async () => {
    const link = (tree: string) => join(l.pool.top, tree, 'etc/systemd/system/sysinit.target.wants/sysprime-boot-start.service');
    rmSync(link('ROOT/debian'));
    rmSync(link('ROOT/next'));
    const found = await sp('--json', 'doctor');
    assert.equal(found.code, 1, found.stderr);
    const kinds = found.json<{ problems: { kind: string; what: string }[] }>().problems.filter((p) => p.kind === 'boot-start-not-enabled');
    assert.deepEqual(kinds.map((p) => p.what.match(/^"([^"]+)"/)?.[1]).sort(), ['debian', 'next']);
    const fixed = await sp('doctor', '--fix');
    assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
    for (const tree of ['ROOT/debian', 'ROOT/next']) assert.equal(readlinkSync(link(tree)), '/usr/lib/systemd/system/sysprime-boot-start.service');
    assert.equal((await sp('doctor')).code, 0);
  });
});
