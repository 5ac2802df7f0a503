/** Every scenario, in the order they run. */
import type { Scenario } from '../scenario.js';
import { installAdopt } from './install-adopt.js';
import { preemptiveUpdate } from './preemptive-update.js';
import { changeAfterStaging } from './change-after-staging.js';
import { mergeConflict } from './merge-conflict.js';
import { fallback } from './fallback.js';
import { yesterday } from './yesterday.js';
import { prune } from './prune.js';
import { zfsAdopt } from './zfs-adopt.js';
import { zfsUpdate } from './zfs-update.js';
import { zfsFallback } from './zfs-fallback.js';
import { grubAdopt } from './grub-adopt.js';
import { grubUpdate } from './grub-update.js';
import { grubFallback } from './grub-fallback.js';
import { grubBoot } from './grub-boot.js';

export const SCENARIOS: readonly Scenario[] = [
  installAdopt,
  preemptiveUpdate,
  changeAfterStaging,
  mergeConflict,
  fallback,
  yesterday,
  prune,
  zfsAdopt,
  zfsUpdate,
  zfsFallback,
  grubAdopt,
  grubUpdate,
  grubFallback,
  grubBoot,
];
