/**
 * Signing and checking bytes with the keys of keys.ts. A signature is one
 * line:
 *
 *   sysprime-signature ed25519 <key id> <signature, base64>
 *
 * The signed message is the bytes prefixed with a context ("store-index",
 * "bart-manifest", "baseline"), so a signature made for one purpose is never
 * accepted for another (a signed manifest replayed as a store index).
 *
 * Checking is strict: a signature by a trusted key that does not match
 * refuses the whole document even when another signature matches (one of its
 * signers saw other bytes); otherwise the first good signature by a trusted
 * key that has not expired is the answer: expired now, or at the signing time
 * the signed bytes carry (VerifyOptions.signedAt). Every refusal names the key ids.
 */
import { sign as edSign, verify as edVerify } from 'node:crypto';
import { SysprimeError } from '../errors.js';
import { isExpired, type PrivateSigningKey, type PublicSigningKey } from './keys.js';

export type SignatureContext = 'store-index' | 'bart-manifest' | 'baseline';

export const SIGNATURE_TAG = 'sysprime-signature';

export interface Signature {
  keyId: string;
  value: Buffer;
}

function message(context: SignatureContext, data: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`sysprime-signature-1\0${context}\0`), data]);
}

/** Refuses a key that may sign nothing more; called before long work whose end is a signature. */
export function checkSigningKey(key: PrivateSigningKey, now = new Date()): void {
  if (isExpired(key, now)) {
    throw new SysprimeError('REFUSED', `key ${key.id} (${key.source}) expired at ${key.expires?.toISOString()}; it signs nothing more`, {
      hint: 'make a new key with `sysprime key generate`, trust its public half, and sign with it',
    });
  }
}

/** The signature line (no newline) of `data` by `key`. Refuses an expired key. */
export function signBytes(key: PrivateSigningKey, context: SignatureContext, data: Uint8Array, now = new Date()): string {
  checkSigningKey(key, now);
  const sig = edSign(null, message(context, data), key.key);
  return `${SIGNATURE_TAG} ed25519 ${key.id} ${sig.toString('base64')}`;
}

/** The signature in one line, or undefined when the line is not a signature line. */
export function parseSignatureLine(line: string): Signature | undefined {
  const m = /^sysprime-signature ed25519 ([0-9a-f]{16}) ([A-Za-z0-9+/]{86}==)$/.exec(line.trim());
  if (m === null) return undefined;
  return { keyId: m[1] as string, value: Buffer.from(m[2] as string, 'base64') };
}

/** The signatures of a detached signature file: one line each; anything else is an error. */
export function parseSignatureFile(text: string, where: string): Signature[] {
  const out: Signature[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const sig = parseSignatureLine(line);
    if (sig === undefined) {
      throw new SysprimeError('REFUSED', `${where} is not a signature file: ${JSON.stringify(line.slice(0, 60))}`, {
        hint: 'sign again with the publisher\'s key',
      });
    }
    out.push(sig);
  }
  return out;
}

export interface VerifyOptions {
  /** What was signed, for messages: "the index of /srv/repo". */
  what: string;
  now?: Date;
  /**
   * When the signed bytes themselves say they were signed (a drift run's
   * time, a kept baseline's signing time): a key is then judged by its expiry
   * at that instant, so what it signed while valid stays verifiable after it
   * expires. Without it (a store index: freshness matters there) a key is
   * judged now. A time after `now` counts as now.
   */
  signedAt?: Date | undefined;
  /** Where the trusted keys come from, for the hint: "[update] trusted_keys". */
  trustSource: string;
}

/** The trusted key whose good signature `data` carries; throws REFUSED otherwise. */
export function verifyBytes(
  trusted: readonly PublicSigningKey[],
  context: SignatureContext,
  data: Uint8Array,
  signatures: readonly Signature[],
  opts: VerifyOptions,
): PublicSigningKey {
  const now = opts.now ?? new Date();
  const atSigning = opts.signedAt !== undefined && !Number.isNaN(opts.signedAt.getTime());
  const at = atSigning && opts.signedAt!.getTime() < now.getTime() ? opts.signedAt! : now;
  if (trusted.length === 0) {
    throw new SysprimeError('CONFIG', `no trusted key to check the signature of ${opts.what}`, {
      hint: `list the public keys you trust in ${opts.trustSource}`,
    });
  }
  if (signatures.length === 0) {
    throw new SysprimeError('REFUSED', `${opts.what} is not signed`, {
      hint: `sign it with a key listed in ${opts.trustSource}`,
    });
  }
  const msg = message(context, data);
  let good: PublicSigningKey | undefined;
  const expired: PublicSigningKey[] = [];
  const unknown: string[] = [];
  for (const sig of signatures) {
    const key = trusted.find((k) => k.id === sig.keyId);
    if (key === undefined) {
      unknown.push(sig.keyId);
      continue;
    }
    if (!edVerify(null, msg, key.key, sig.value)) {
      throw new SysprimeError('REFUSED', `the signature of ${opts.what} by key ${key.id} does not match: it was altered after signing`, {
        hint: `do not use it; fetch or publish it again and sign it with key ${key.id}`,
      });
    }
    if (isExpired(key, at)) expired.push(key);
    else good ??= key;
  }
  if (good !== undefined) return good;
  if (expired.length > 0) {
    const k = expired[0] as PublicSigningKey;
    const when = atSigning ? ` before it was signed (${at.toISOString()})` : '';
    throw new SysprimeError('REFUSED', `${opts.what} is signed by key ${k.id} only, which expired at ${k.expires?.toISOString()}${when}`, {
      hint: 'sign it again with a current key (key rotation: docs/signing.md)',
    });
  }
  throw new SysprimeError('REFUSED', `${opts.what} is signed by key ${unknown.join(', ')}, which is not trusted (trusted: ${trusted.map((k) => k.id).join(', ')})`, {
    hint: `add that key's public half to ${opts.trustSource} if you trust it, or sign with a trusted key`,
  });
}
