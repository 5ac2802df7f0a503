/**
 * Which bootloader serves this machine: the configured one, or for
 * `loader = "auto"` the first in a short list whose traces are found. The
 * facts detection looks at come through `DetectionProbes`, so it is a pure
 * function in tests.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { BackendKind, Config } from '../config/schema.js';
import { SysprimeError } from '../errors.js';
import type { Bootloader, LoaderName, Runner } from './types.js';
import { EFIVARS_DIR, readLoaderVariable } from './efivars.js';
import { createSystemdBoot } from './systemd-boot/index.js';
import { createGrub, type GrubOptions } from './grub/index.js';
import { createZfsBootMenu } from './zfsbootmenu/index.js';
import { createNoBootloader } from './none/index.js';

export interface DetectionProbes {
  exists(path: string): boolean;
  /** A Boot Loader Interface variable (LoaderInfo...), or null. */
  loaderVariable(name: string): string | null;
  backend: BackendKind | undefined;
}

function systemProbes(backend: BackendKind | undefined, efivars = EFIVARS_DIR): DetectionProbes {
  return { exists: existsSync, loaderVariable: (n) => readLoaderVariable(efivars, n), backend };
}

const ESP_CANDIDATES = ['/boot/efi', '/efi', '/boot'] as const;

/** The configured ESP, or the first usual mount point that holds an `EFI` directory. */
export function findEsp(config: Config, probes: DetectionProbes): string | null {
  if (config.boot.esp !== undefined) return config.boot.esp;
  return ESP_CANDIDATES.find((p) => probes.exists(join(p, 'EFI'))) ?? null;
}

export interface Detection {
  loader: LoaderName;
  esp: string | null;
  /** Why this one: shown by `sysprime status` and `doctor`. */
  reason: string;
}

interface Detector {
  loader: LoaderName;
  /** A reason when it matches, else null. */
  matches(esp: string | null, probes: DetectionProbes): string | null;
}

const DETECTORS: readonly Detector[] = [
  {
    loader: 'systemd-boot',
    matches(esp, p) {
      const info = p.loaderVariable('LoaderInfo');
      if (info !== null && /systemd-boot/i.test(info) && esp !== null) return `this boot was started by ${info}`;
      if (esp !== null && p.exists(join(esp, 'loader', 'loader.conf'))) return `${join(esp, 'loader', 'loader.conf')} exists`;
      if (esp !== null && p.exists(join(esp, 'EFI', 'systemd'))) return `${join(esp, 'EFI', 'systemd')} exists`;
      return null;
    },
  },
  {
    loader: 'zfsbootmenu',
    matches(esp, p) {
      if (p.backend !== 'zfs') return null;
      for (const dir of ['EFI/zbm', 'EFI/ZBM', 'EFI/zfsbootmenu']) if (esp !== null && p.exists(join(esp, dir))) return `${join(esp, dir)} exists`;
      if (p.exists('/etc/zfsbootmenu/config.yaml')) return '/etc/zfsbootmenu/config.yaml exists';
      return null;
    },
  },
  {
    loader: 'grub',
    matches: (_esp, p) => (p.exists('/boot/grub/grub.cfg') ? '/boot/grub/grub.cfg exists' : null),
  },
];

export function detectBootloader(config: Config, probes: DetectionProbes): Detection {
  const esp = findEsp(config, probes);
  if (config.boot.loader !== 'auto') return { loader: config.boot.loader, esp, reason: `[boot] loader = "${config.boot.loader}"` };
  for (const d of DETECTORS) {
    const reason = d.matches(esp, probes);
    if (reason !== null) return { loader: d.loader, esp, reason };
  }
  return { loader: 'none', esp, reason: 'no systemd-boot, ZFSBootMenu or GRUB found' };
}

export interface CreateOptions {
  probes?: DetectionProbes;
  /** The ZFS pool of the environments (the backend knows it when the config does not). */
  pool?: string;
  /** Where GRUB's files are, when not in the usual places. */
  grub?: Pick<GrubOptions, 'grubDir' | 'grubD'>;
  run?: Runner;
}

export async function createBootloader(config: Config, opts: CreateOptions = {}): Promise<Bootloader> {
  const probes = opts.probes ?? systemProbes(config.backend);
  const found = detectBootloader(config, probes);
  const run = opts.run === undefined ? {} : { run: opts.run };
  switch (found.loader) {
    case 'systemd-boot':
      if (found.esp === null) {
        throw new SysprimeError('CONFIG', 'systemd-boot needs the EFI system partition, and none was found at /boot/efi, /efi or /boot', {
          hint: 'mount the ESP, or set [boot] esp in sysprime.toml',
        });
      }
      return createSystemdBoot({ esp: found.esp, ...run });
    case 'grub':
      return createGrub({ esp: found.esp, ...opts.grub, ...run });
    case 'zfsbootmenu': {
      const pool = opts.pool ?? config.zfs.pool;
      if (pool === undefined) throw new SysprimeError('CONFIG', 'ZFSBootMenu needs the pool of the environments', { hint: 'set [zfs] pool in sysprime.toml' });
      return createZfsBootMenu({ pool, ...run });
    }
    case 'none':
      return createNoBootloader();
  }
}
