/**
 * The machine the boot entry tests drive: a scratch pool (Btrfs or ZFS)
 * whose tree to adopt already has a kernel in /boot, a command updater for
 * `stage`, and a bootloader whose files live in a scratch directory, never
 * in this machine's own /boot, ESP or /etc/grub.d.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { makeScratch, type Kind, type Scratch } from '../../fixtures/scratch.js';
import { sysprime, type CliResult } from '../../fixtures/cli.js';

export const KERNEL = '6.1.0-28-amd64';

export interface BootScratch {
  s: Scratch;
  /** Scratch directory for the bootloader's files. */
  dir: string;
  sp(...args: string[]): Promise<CliResult>;
  /** The same, with extra environment variables (fault injection). */
  spEnv(env: Record<string, string>, ...args: string[]): Promise<CliResult>;
  /** Change an environment's tree through `sysprime mount`. */
  inTree(name: string, change: (root: string) => void): Promise<void>;
  cleanup(): Promise<void>;
}

/** Put a kernel and its initramfs into the tree `init` will adopt. */
async function addKernel(s: Scratch): Promise<void> {
  const write = (root: string) => {
    writeFileSync(join(root, `boot/vmlinuz-${KERNEL}`), `kernel ${KERNEL}\n`);
    writeFileSync(join(root, `boot/initrd.img-${KERNEL}`), `initrd ${KERNEL}\n`);
    // sysprime's units, as its package installs them (GRUB's init enables the boot-complete one).
    mkdirSync(join(root, 'lib/systemd/system'), { recursive: true });
    writeFileSync(join(root, 'lib/systemd/system/sysprime-boot-complete.service'), '[Install]\nWantedBy=multi-user.target\n');
  };
  if (s.kind === 'btrfs') return write(join(s.where, s.adopt));
  const at = mkdtempSync(join(tmpdir(), 'sysprime-adopt-'));
  const was = (await run('zfs', ['get', '-H', '-o', 'value', 'mountpoint', s.adopt])).stdout.trim();
  await run('zfs', ['set', `mountpoint=${at}`, s.adopt]);
  await run('zfs', ['mount', s.adopt]);
  try {
    write(at);
  } finally {
    await run('zfs', ['unmount', s.adopt]);
    await run('zfs', ['set', `mountpoint=${was}`, s.adopt]);
    rmSync(at, { recursive: true, force: true });
  }
}

/**
 * `bootToml(dir)` gives the lines of the `[boot]` table (after `loader =`)
 * and any further tables, for files under `dir`.
 */
export async function makeBootScratch(kind: Kind, bootToml: (dir: string) => string): Promise<BootScratch> {
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-boot-'));
  let s: Scratch | undefined;
  try {
    const script = join(dir, 'update.sh');
    writeFileSync(script, '#!/bin/sh\necho 2 > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"\n');
    chmodSync(script, 0o755);
    s = await makeScratch(kind, `[update]\nmethod = "command"\ncommand = "${script}"\nchroot = false\n`);
    const scratch = s;
    writeFileSync(s.config, readFileSync(s.config, 'utf8').replace('[boot]\nloader = "none"\n', '').concat(`[boot]\n${bootToml(dir)}`));
    await addKernel(s);
    const spEnv = (env: Record<string, string>, ...args: string[]) => sysprime(args, { config: scratch.config, env });
    return {
      s,
      dir,
      sp: (...args) => spEnv({}, ...args),
      spEnv,
      async inTree(name, change) {
        const at = join(dir, 'mnt');
        mkdirSync(at, { recursive: true });
        const m = await spEnv({}, 'mount', name, at);
        if (m.code !== 0) throw new Error(`mount ${name}: ${m.stderr}`);
        try {
          change(at);
        } finally {
          const u = await spEnv({}, 'umount', name);
          if (u.code !== 0) throw new Error(`umount ${name}: ${u.stderr}`);
        }
      },
      async cleanup() {
        await scratch.cleanup();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await s?.cleanup();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** `[boot]` for GRUB with its files under `dir`. */
export function grubToml(dir: string): string {
  mkdirSync(join(dir, 'boot/grub'), { recursive: true });
  mkdirSync(join(dir, 'grub.d'), { recursive: true });
  writeFileSync(join(dir, 'grub.d/42_sysprime'), '#!/bin/sh\n', { mode: 0o755 });
  writeFileSync(join(dir, 'default-grub'), 'GRUB_DEFAULT=saved\nGRUB_TIMEOUT=5\n');
  return `loader = "grub"\n[grub]\ndir = "${join(dir, 'boot/grub')}"\ndefaults = "${join(dir, 'default-grub')}"\nscripts = "${join(dir, 'grub.d')}"\n`;
}

/** Every kernel and initramfs of an environment gone. */
export function removeKernels(root: string): void {
  for (const f of readdirSync(join(root, 'boot'))) if (/^(vmlinuz|initrd\.img)-/.test(f)) rmSync(join(root, 'boot', f));
}

/** Kernel upgrade inside an environment: the old version goes, a newer one comes. */
export function replaceKernel(root: string, version: string): void {
  removeKernels(root);
  writeFileSync(join(root, `boot/vmlinuz-${version}`), `kernel ${version}\n`);
  writeFileSync(join(root, `boot/initrd.img-${version}`), `initrd ${version}\n`);
}
