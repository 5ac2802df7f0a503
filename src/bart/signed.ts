/**
 * Signed manifests: the signature is the manifest's last line, a comment
 * (`# sysprime-signature ed25519 <key id> <base64>`) over every byte before
 * it. Solaris `bart compare`, and ours, skip `#` lines, so a signed manifest
 * still reads as a plain one.
 */
import type { PrivateSigningKey, PublicSigningKey } from '../signing/keys.js';
import { parseSignatureLine, signBytes, verifyBytes, type Signature } from '../signing/signatures.js';

const PREFIX = '# ';

/** The manifest with its signature line appended. */
export function appendSignature(text: Buffer, key: PrivateSigningKey): Buffer {
  if (text.length > 0 && text[text.length - 1] !== 0x0a) throw new Error('a manifest ends with a newline');
  return Buffer.concat([text, Buffer.from(`${PREFIX}${signBytes(key, 'bart-manifest', text)}\n`, 'latin1')]);
}

/** The bytes the signature covers and the signature, when the last line is one. */
export function splitSignature(text: Buffer): { signed: Buffer; signature: Signature | undefined } {
  const end = text.length > 0 && text[text.length - 1] === 0x0a ? text.length - 1 : text.length;
  const start = text.lastIndexOf(0x0a, end - 1) + 1;
  const last = text.toString('latin1', start, end);
  const signature = last.startsWith(PREFIX) ? parseSignatureLine(last.slice(PREFIX.length)) : undefined;
  return signature === undefined ? { signed: text, signature } : { signed: text.subarray(0, start), signature };
}

/** The key whose good signature the manifest carries; refuses an unsigned or altered one, naming the key. */
export function verifyManifest(text: Buffer, trusted: readonly PublicSigningKey[], what: string, trustSource: string): PublicSigningKey {
  const { signed, signature } = splitSignature(text);
  return verifyBytes(trusted, 'bart-manifest', signed, signature === undefined ? [] : [signature], { what, trustSource });
}

/** Whether the manifest's last line is a signature line. */
export function isSigned(text: Buffer): boolean {
  return splitSignature(text).signature !== undefined;
}
