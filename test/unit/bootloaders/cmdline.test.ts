/** The command line every entry gets: running system < /etc/kernel/cmdline < [boot] cmdline, the root selection aside. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { composeCmdline, splitArgs } from '../../../src/bootloaders/cmdline.js';

const DEBIAN = 'BOOT_IMAGE=/@rootfs/boot/vmlinuz-6.1.0-18-amd64 root=UUID=1111 ro rootflags=subvol=@rootfs initrd=/boot/initrd.img rd.luks.uuid=luks-2222 resume=UUID=3333 console=tty0 console=ttyS0,115200 quiet\n';

test("the running system's arguments travel, its root selection and the bootloader's own do not", () => {
  assert.equal(composeCmdline({ booted: DEBIAN, environment: null, config: '' }), 'ro rd.luks.uuid=luks-2222 resume=UUID=3333 console=tty0 console=ttyS0,115200 quiet');
});

test("a boot pool's sysprime.boot is the booted environment's own: every entry writes its own, none is carried", () => {
  const booted = 'BOOT_IMAGE=/BOOT/debian@/vmlinuz-6.1.0-18-amd64 root=ZFS=rpool/ROOT/debian sysprime.boot=bpool/BOOT/debian ro console=ttyS0,115200';
  assert.equal(composeCmdline({ booted, environment: null, config: '' }), 'ro console=ttyS0,115200');
});

test('/etc/kernel/cmdline over the running system, [boot] cmdline over both: a name given later replaces it', () => {
  const line = composeCmdline({
    booted: DEBIAN,
    environment: 'root=UUID=1111 rootflags=subvol=@rootfs rw quiet splash resume=UUID=4444\n',
    config: 'console=ttyS1 mitigations=off',
  });
  assert.equal(line, 'ro rd.luks.uuid=luks-2222 rw quiet splash resume=UUID=4444 console=ttyS1 mitigations=off');
});

test('-name in [boot] cmdline removes an argument the running system booted with', () => {
  assert.equal(composeCmdline({ booted: 'root=x quiet splash console=ttyS0', environment: null, config: '-quiet -console loglevel=7' }), 'splash loglevel=7');
});

test('quoted values stay whole; init arguments stay last', () => {
  assert.deepEqual(splitArgs(' a="b c"  d\n'), ['a="b c"', 'd']);
  assert.equal(composeCmdline({ booted: 'root=x quiet -- single', environment: null, config: 'dyndbg="file x +p"' }), 'quiet dyndbg="file x +p" -- single');
});

test('nothing from anywhere: nothing', () => {
  assert.equal(composeCmdline({ booted: null, environment: null, config: '' }), '');
  assert.equal(composeCmdline({ booted: null, environment: null, config: '  quiet  ' }), 'quiet');
});

test("what made the running system's boot special (recovery mode, a rescue target) does not travel into every entry", () => {
  assert.equal(
    composeCmdline({ booted: 'BOOT_IMAGE=/@rootfs/boot/vmlinuz-6.1 root=UUID=u ro single console=ttyS0 systemd.unit=rescue.target init=/bin/sh break=premount', environment: null, config: '' }),
    'ro console=ttyS0',
  );
  // Configured on purpose, they are kept.
  assert.equal(composeCmdline({ booted: 'ro quiet', environment: null, config: 'systemd.unit=multi-user.target' }), 'ro quiet systemd.unit=multi-user.target');
});
