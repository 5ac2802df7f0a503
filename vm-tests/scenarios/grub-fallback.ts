/**
 * 13. On the GRUB machine: a staged environment that cannot boot uses up its
 * tries (sysprime's counting in the ESP's grubenv), GRUB falls back to the
 * adopted root by itself, and the boot-complete unit makes it the default
 * again: scenario 5 on GRUB.
 */
import { fallbackOn } from './fallback.js';

export const grubFallback = fallbackOn(13, 'GRUB: fallback after failed tries', 'grub', 'ROOT/debian', 24, 'grub');
