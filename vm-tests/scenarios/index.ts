/**
 * Every scenario, in the order they run. Some are chains of smaller ones
 * (chain.ts): 2 runs inside 7, 6 inside 5, 13 inside 12, 10 inside 9, 15 after 3, one VM each.
 */
import type { Scenario } from '../scenario.js';
import { installAdopt } from './install-adopt.js';
import { changesThenHealthFallback } from './health-fallback.js';
import { fallbackThenYesterday } from './fallback.js';
import { updateThenPrune } from './prune.js';
import { zfsAdopt } from './zfs-adopt.js';
import { zfsFallbackThenUpdate } from './zfs-update.js';
import { grubAdopt } from './grub-adopt.js';
import { grubFallbackThenUpdate } from './grub-update.js';
import { grubBoot } from './grub-boot.js';
import { benchZfsDrift } from './bench-zfs-drift.js';

export const SCENARIOS: readonly Scenario[] = [
  installAdopt,
  changesThenHealthFallback,
  fallbackThenYesterday,
  updateThenPrune,
  zfsAdopt,
  zfsFallbackThenUpdate,
  grubAdopt,
  grubFallbackThenUpdate,
  grubBoot,
  benchZfsDrift,
];
