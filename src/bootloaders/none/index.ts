/**
 * No bootloader: for scratch pools, tests and machines whose boot menu is
 * managed by hand. Nothing is written; environments exist without entries.
 */
import { SysprimeError } from '../../errors.js';
import type { BootEnvironment, BootState, Bootloader, SyncOptions, SyncResult } from '../types.js';

export function createNoBootloader(): Bootloader {
  return {
    name: 'none',
    capabilities: { oneShot: false, counting: false, ownsEntries: false },
    describe: () => 'no bootloader ([boot] loader = "none")',
    async probe() {},
    async sync(envs: readonly BootEnvironment[], _opts: SyncOptions): Promise<SyncResult> {
      return { loader: 'none', added: [], updated: [], kept: [], removed: [], warnings: envs.length > 0 ? ['no bootloader is configured: environments get no boot entries'] : [], drift: [] };
    },
    async setDefault() {},
    async setOneShot(name: string) {
      throw new SysprimeError('REFUSED', `cannot boot "${name}" once: no bootloader is configured ([boot] loader = "none")`, {
        hint: 'set [boot] loader to "systemd-boot", "grub" or "zfsbootmenu" in sysprime.toml, or use `sysprime activate` without --once',
      });
    },
    async inspect(): Promise<BootState> {
      return { loader: 'none', entries: [], defaultName: null, oneShotName: null, warnings: [] };
    },
  };
}
