// The fstab rewrite of a new Btrfs environment, on the files installers write.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rootWithoutSubvolume } from '../../../src/backends/btrfs/fstab.js';
import { parseFstab } from '../../../src/os/mounts.js';

// As the Debian 12 installer (partman-btrfs) writes it, with a separate ext4 /boot.
const DEBIAN = `# /etc/fstab: static file system information.
#
# Use 'blkid' to print the universally unique identifier for a
# device; this may be used with UUID= as a more robust way to name devices
# that works even if disks are added and removed. See fstab(5).
#
# systemd generates mount units based on this file, see systemd.mount(5).
# Please run 'systemctl daemon-reload' after you make changes to this file.
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
# / was on /dev/vda3 during installation
UUID=2f6b0a3c-53a5-4b8e-9a51-5c0f7c1c2d11 /               btrfs   defaults,subvol=@rootfs 0       0
# /boot was on /dev/vda2 during installation
UUID=8d1e2a7b-4d44-4a55-9f1e-3d7c2b0a9e10 /boot           ext4    defaults        0       2
# /boot/efi was on /dev/vda1 during installation
UUID=1A2B-3C4D  /boot/efi       vfat    umask=0077      0       1
/dev/sr0        /media/cdrom0   udf,iso9660 user,noauto     0       0
`;

test('Debian: only subvol=@rootfs leaves the / line; every other byte stays', () => {
  const r = rootWithoutSubvolume(DEBIAN);
  assert.equal(r.changed, true);
  assert.deepEqual(r.removed, ['subvol=@rootfs']);
  assert.equal(r.text, DEBIAN.replace('defaults,subvol=@rootfs 0', 'defaults 0'));
});

test('Ubuntu and Fedora: / loses its subvol=, /home keeps subvol=@home and subvol=home', () => {
  const ubuntu = 'UUID=abc /               btrfs   defaults,subvol=@ 0       1\nUUID=abc /home           btrfs   defaults,subvol=@home 0       2\n';
  assert.equal(rootWithoutSubvolume(ubuntu).text, ubuntu.replace('defaults,subvol=@ 0', 'defaults 0'));
  const fedora = 'UUID=f00 /                       btrfs   subvol=root,compress=zstd:1 0 0\nUUID=f00 /home                   btrfs   subvol=home,compress=zstd:1 0 0\n';
  assert.equal(rootWithoutSubvolume(fedora).text, fedora.replace('subvol=root,compress=zstd:1', 'compress=zstd:1'));
});

test('subvolid= goes too, the options keep their order, and an emptied list becomes defaults', () => {
  assert.equal(rootWithoutSubvolume('LABEL=r / btrfs noatime,subvolid=256,compress=zstd,subvol=/@ 0 0').text, 'LABEL=r / btrfs noatime,compress=zstd 0 0');
  assert.equal(rootWithoutSubvolume('LABEL=r\t/\tbtrfs\tsubvol=@\t0\t0\n').text, 'LABEL=r\t/\tbtrfs\tdefaults\t0\t0\n');
  assert.equal(rootWithoutSubvolume('  LABEL=r  /  btrfs  subvol=@,ssd\r\n').text, '  LABEL=r  /  btrfs  ssd\r\n');
});

test('nothing to change: no subvol=, another filesystem at /, comments and other mounts', () => {
  for (const text of [
    'UUID=a / btrfs defaults 0 0\n',
    'UUID=a / ext4 errors=remount-ro,subvol=x 0 1\n',
    '# UUID=a / btrfs subvol=@ 0 0\n',
    'UUID=a /srv btrfs subvol=@srv 0 0\nUUID=a /var/lib/docker btrfs subvol=@/var/lib/docker 0 0\n',
    'UUID=a /\n',
    '',
  ]) {
    const r = rootWithoutSubvolume(text);
    assert.equal(r.changed, false, text);
    assert.equal(r.text, text);
  }
});

test('parseFstab (src/os/mounts.ts) on the Debian file: mount lines only, escapes undone', () => {
  const entries = parseFstab(DEBIAN + 'UUID=x /mnt/my\\040disk btrfs subvol=@data 0 0\n');
  assert.deepEqual(
    entries.map((e) => [e.mountPoint, e.fsType]),
    [['/', 'btrfs'], ['/boot', 'ext4'], ['/boot/efi', 'vfat'], ['/media/cdrom0', 'udf,iso9660'], ['/mnt/my disk', 'btrfs']],
  );
  assert.deepEqual(entries[0]!.options, ['defaults', 'subvol=@rootfs']);
  assert.equal(entries[0]!.line, 11);
});
