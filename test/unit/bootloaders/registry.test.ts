import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createBootloader, detectBootloader, type DetectionProbes } from '../../../src/bootloaders/registry.js';
import { cloneDefaults } from '../../../src/config/schema.js';
import { isSysprimeError } from '../../../src/errors.js';

function probes(paths: string[], vars: Record<string, string> = {}, backend: 'zfs' | 'btrfs' = 'btrfs'): DetectionProbes {
  const set = new Set(paths);
  return { exists: (p) => set.has(p), loaderVariable: (n) => vars[n] ?? null, backend };
}

test('a configured loader wins over detection', () => {
  const config = cloneDefaults();
  config.boot.loader = 'grub';
  assert.equal(detectBootloader(config, probes(['/boot/efi/EFI', '/boot/efi/loader/loader.conf'])).loader, 'grub');
});

test('auto: systemd-boot by its EFI variable or its files on the ESP', () => {
  const config = cloneDefaults();
  const byVar = detectBootloader(config, probes(['/efi/EFI'], { LoaderInfo: 'systemd-boot 252' }));
  assert.deepEqual([byVar.loader, byVar.esp], ['systemd-boot', '/efi']);
  assert.match(byVar.reason, /systemd-boot 252/);
  assert.equal(detectBootloader(config, probes(['/boot/efi/EFI', '/boot/efi/loader/loader.conf'])).loader, 'systemd-boot');
});

test('auto: ZFSBootMenu only on ZFS; then GRUB; else none', () => {
  const config = cloneDefaults();
  assert.equal(detectBootloader(config, probes(['/boot/efi/EFI', '/boot/efi/EFI/zbm'], {}, 'zfs')).loader, 'zfsbootmenu');
  assert.equal(detectBootloader(config, probes(['/boot/efi/EFI', '/boot/efi/EFI/zbm', '/boot/grub/grub.cfg'], {}, 'btrfs')).loader, 'grub');
  const none = detectBootloader(config, probes([]));
  assert.equal(none.loader, 'none');
  assert.equal(none.esp, null);
});

test('systemd-boot without an ESP, ZFSBootMenu without a pool: CONFIG errors naming the key', async () => {
  const config = cloneDefaults();
  config.boot.loader = 'systemd-boot';
  await assert.rejects(createBootloader(config, { probes: probes([]) }), (e: unknown) => isSysprimeError(e, 'CONFIG') && /\[boot\] esp/.test((e as { hint: string }).hint));
  config.boot.loader = 'zfsbootmenu';
  await assert.rejects(createBootloader(config, { probes: probes([]) }), (e: unknown) => isSysprimeError(e, 'CONFIG'));
  assert.equal((await createBootloader(config, { probes: probes([]), pool: 'tank' })).name, 'zfsbootmenu');
});

test('the none loader refuses one-shot with REFUSED', async () => {
  const config = cloneDefaults();
  config.boot.loader = 'none';
  const loader = await createBootloader(config, { probes: probes([]) });
  assert.equal(loader.name, 'none');
  await assert.rejects(loader.setOneShot('x'), (e: unknown) => isSysprimeError(e, 'REFUSED') && /no bootloader/.test((e as Error).message));
  const res = await loader.sync([], { defaultName: 'x' });
  assert.deepEqual([res.added, res.removed, res.kept], [[], [], []]);
});
