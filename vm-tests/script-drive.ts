/**
 * The script drive: a small FAT disk the guest sees as its second virtio disk.
 * The host writes the scenario's scripts onto it before the VM starts and
 * reads what the guest saved in `out/` after it stopped, both with mtools, so
 * nothing is ever mounted on the host.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../src/process/run.js';
import { scriptLibrary } from './guest-files.js';

const MTOOLS = { env: { MTOOLS_SKIP_CHECK: '1' } };

/** Makes `path` holding lib.sh and boot-1.sh ... boot-N.sh. */
export async function makeScriptDrive(path: string, work: string, scripts: readonly string[], extra: Readonly<Record<string, string>> = {}): Promise<void> {
  await run('truncate', ['-s', '64M', path]);
  await run('mkfs.vfat', ['-n', 'VMSCRIPT', path]);
  const files = [['lib.sh', scriptLibrary()] as const, ...scripts.map((text, i) => [`boot-${i + 1}.sh`, text] as const), ...Object.entries(extra)];
  for (const [name, text] of files) {
    const local = join(work, name);
    await writeFile(local, text);
    await run('mcopy', ['-i', path, local, `::${name}`], MTOOLS);
  }
  await run('mmd', ['-i', path, '::out'], MTOOLS);
}

/** A file the guest left on the drive (relative to its root), or null. */
export async function readDriveFile(path: string, name: string): Promise<string | null> {
  const res = await run('mtype', ['-i', path, `::${name}`], { ...MTOOLS, allowFailure: true });
  return res.exitCode === 0 ? res.stdout : null;
}

/** Copies `out/NAME` from the drive to `to`; false when the guest left no such file. */
export async function copyDriveFile(path: string, name: string, to: string): Promise<boolean> {
  const res = await run('mcopy', ['-n', '-o', '-i', path, `::${name}`, to], { ...MTOOLS, allowFailure: true });
  return res.exitCode === 0;
}
