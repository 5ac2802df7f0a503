/**
 * The machine's audit key ([audit] key) as a signer. Audit signatures make
 * tampering evident; they are never a reason to stop the work they describe:
 * a key that cannot sign (expired, unreadable, not a key) leaves what is kept
 * unsigned, with one warning per key and reason for the process, and
 * `drift --verify` later says the baseline or run is unsigned.
 * Checking (`drift --verify`) reads the key strictly, elsewhere.
 */
import { log } from '../log.js';
import { messageOf } from '../errors.js';
import { isExpired, readPrivateKey, type PrivateSigningKey } from './keys.js';

const warned = new Set<string>();

function warnOnce(path: string, why: string): void {
  const key = `${path}\0${why}`;
  if (warned.has(key)) return;
  warned.add(key);
  log.warn(`[audit] key ${path} cannot sign (${why}): baselines and drift runs are kept unsigned; make a new key with \`sysprime key generate\` and point [audit] key at it (docs/signing.md)`);
}

/**
 * The private key to sign audit records with, or undefined: no key set, the
 * public half only (`NAME.pub`: checks only, by design, no warning), or a key
 * that cannot sign now (warned once).
 */
export function auditSigner(path: string | undefined, now = new Date()): PrivateSigningKey | undefined {
  if (path === undefined || path.endsWith('.pub')) return undefined;
  let key: PrivateSigningKey;
  try {
    key = readPrivateKey(path);
  } catch (err) {
    warnOnce(path, messageOf(err));
    return undefined;
  }
  if (isExpired(key, now)) {
    warnOnce(path, `key ${key.id} expired at ${key.expires?.toISOString()}`);
    return undefined;
  }
  return key;
}
