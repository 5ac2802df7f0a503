/**
 * 10. On OpenZFS: a staged environment that cannot boot uses up its tries
 * (systemd-boot's counting), and the machine falls back to the adopted root
 * by itself: scenario 5 on the OpenZFS machine.
 */
import { fallbackOn } from './fallback.js';

export const zfsFallback = fallbackOn(10, 'OpenZFS: fallback after failed tries', 'zfs', 'rpool/ROOT/debian', 28);
