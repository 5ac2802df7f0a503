/**
 * What a scenario is: a list of boots of one machine. Each boot has a guest
 * script (run by the runner after `lib.sh`, which gives it `step`, `probe`,
 * `value`, `say`, `then_reboot`, `then_poweroff`) and host assertions on what
 * that boot printed on the serial console and saved on the script drive.
 * Boots the runner never reaches (a kernel panic, say) are not in the list:
 * the next listed boot is the next one that reached the runner.
 */
import assert from 'node:assert/strict';
import type { Machine } from './guest-files.js';
import type { Boot, SerialLog } from './serial.js';

export interface BootContext {
  /** What `step NAME ...` printed on stdout in this boot, or null. */
  output(step: string): Promise<string | null>;
  /** The same, parsed as JSON (a failed parse fails the scenario). */
  json<T = unknown>(step: string): Promise<T>;
}

export interface BootPlan {
  script: string;
  check?(boot: Boot, ctx: BootContext): Promise<void> | void;
}

export interface Scenario {
  id: number;
  name: string;
  /** Which machine it boots: Debian on Btrfs with systemd-boot (the default), with its root on OpenZFS, or on Btrfs with GRUB. */
  machine?: Machine;
  /**
   * 'installed': the fresh image as its installer left it; 'adopted': the
   * machine that machine's 'installed' scenario leaves behind.
   */
  from: 'installed' | 'adopted';
  /** sysprime verbs the scenario needs; without them it is reported as skipped. */
  verbs: readonly string[];
  boots: readonly BootPlan[];
  /** Assertions over the whole console log (boots that never reached the runner). */
  checkLog?(log: SerialLog): void;
  timeoutMinutes: number;
  /** A benchmark, not a test: run only when named (`--only`), never by `npm test`. */
  bench?: boolean;
}

export const machineOf = (s: Scenario): Machine => s.machine ?? 'btrfs';

/** The root subvolume without a leading slash (the kernel accepts both spellings), or the root dataset. */
export const rootOf = (boot: Boot): string => boot.root.replace(/^\/+/, '');

export interface EnvJson {
  name: string;
  generation: number;
  booted: boolean;
  default: boolean;
}

export function env(list: readonly EnvJson[], name: string): EnvJson {
  const e = list.find((x) => x.name === name);
  assert.ok(e, `environment "${name}" is not listed (have: ${list.map((x) => x.name).join(', ')})`);
  return e;
}

export function value(boot: Boot, name: string): string {
  const v = boot.values.get(name);
  assert.ok(v !== undefined, `boot ${boot.n} printed no value "${name}"`);
  return v;
}

export function probe(boot: Boot, name: string): number {
  const v = boot.probes.get(name);
  assert.ok(v !== undefined, `boot ${boot.n} ran no probe "${name}"`);
  return v;
}
