/**
 * 10. On OpenZFS with its boot pool: a staged environment that cannot boot
 * uses up its one try (sysprime's counting in the ESP's grubenv; counting
 * down from two is tried on the GRUB machine, 12), GRUB falls
 * back to the adopted root by itself, and the boot-complete unit makes it the
 * default again: scenario 5 on the OpenZFS machine.
 */
import { fallbackOn } from './fallback.js';

export const zfsFallback = fallbackOn(10, 'OpenZFS: fallback after failed tries', 'zfs', 'rpool/ROOT/debian', 28, 'grub', 1);
