/**
 * Signing keys: ed25519 pairs made and read with node:crypto, one format for
 * every signature sysprime makes (store indexes, bart manifests, drift
 * baselines; docs/signing.md).
 *
 * The public half is one line, easy to paste into a trusted-keys file:
 *
 *   sysprime-ed25519 <key id> <raw public key, base64> [expires=<ISO time>]
 *
 * The private half is a PKCS#8 PEM block after a comment line naming the key
 * id and expiry, so `cat` shows which key a file holds. The key id is the
 * first 16 hex digits of the sha256 of the raw public key: derived, never
 * chosen, so a key file cannot claim another key's id.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SysprimeError, errnoOf, messageOf } from '../errors.js';
import { replaceFile } from '../os/durable.js';

export const PUBLIC_KEY_TAG = 'sysprime-ed25519';

export interface PublicSigningKey {
  id: string;
  key: KeyObject;
  /** After this instant the key verifies nothing (and signs nothing). */
  expires: Date | undefined;
  /** Where it was read from, for messages. */
  source: string;
}

export interface PrivateSigningKey {
  id: string;
  key: KeyObject;
  expires: Date | undefined;
  source: string;
  publicLine: string;
}

/** The raw 32 bytes of an ed25519 public key (the last 32 of its SPKI DER). */
function rawPublic(key: KeyObject): Buffer {
  const der = key.export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32);
}

/** SPKI DER prefix of an ed25519 public key (RFC 8410); the raw key follows it. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export function keyIdOf(key: KeyObject): string {
  return createHash('sha256').update(rawPublic(key)).digest('hex').slice(0, 16);
}

function publicLineOf(key: KeyObject, expires: Date | undefined): string {
  const exp = expires === undefined ? '' : ` expires=${expires.toISOString()}`;
  return `${PUBLIC_KEY_TAG} ${keyIdOf(key)} ${rawPublic(key).toString('base64')}${exp}`;
}

function badKey(source: string, why: string): SysprimeError {
  return new SysprimeError('CONFIG', `${source} is not a sysprime signing key: ${why}`, {
    hint: 'make a key pair with `sysprime key generate`; the .pub file holds one line starting "sysprime-ed25519"',
  });
}

function parseExpiry(text: string, source: string): Date {
  const d = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(d.getTime())) throw badKey(source, `bad expiry ${JSON.stringify(text)}`);
  return d;
}

/** A public key from its one-line text (comments and blank lines around it are allowed). */
export function parsePublicKey(text: string, source: string): PublicSigningKey {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length !== 1) throw badKey(source, `expected one key line, found ${lines.length}`);
  const fields = (lines[0] as string).split(/\s+/);
  if (fields[0] !== PUBLIC_KEY_TAG || fields.length < 3 || fields.length > 4) throw badKey(source, `the line must read "${PUBLIC_KEY_TAG} ID KEY [expires=TIME]"`);
  const [, id, b64, exp] = fields as [string, string, string, string | undefined];
  const raw = Buffer.from(b64, 'base64');
  if (raw.length !== 32 || raw.toString('base64') !== b64) throw badKey(source, 'the key is not 32 bytes of base64');
  const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
  if (keyIdOf(key) !== id) throw badKey(source, `its id ${id} is not the id of its key (${keyIdOf(key)})`);
  let expires: Date | undefined;
  if (exp !== undefined) {
    if (!exp.startsWith('expires=')) throw badKey(source, `unknown field ${JSON.stringify(exp)}`);
    expires = parseExpiry(exp.slice('expires='.length), source);
  }
  return { id, key, expires, source };
}

function readKeyFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') {
      throw new SysprimeError('NOT_FOUND', `the ${what} ${path} does not exist`, {
        hint: 'make a key pair with `sysprime key generate`, or point the configuration at the file that holds it',
        cause: err,
      });
    }
    throw new SysprimeError('IO', `cannot read the ${what} ${path}: ${messageOf(err)}`, { cause: err });
  }
}

export function readPublicKey(path: string): PublicSigningKey {
  return parsePublicKey(readKeyFile(path, 'public key'), path);
}

/**
 * A private key file, or the public one beside it: `KEY` or `KEY.pub`, as
 * signify and ssh-keygen name them. Expiry is read from the comment line.
 */
export function readPrivateKey(path: string): PrivateSigningKey {
  const text = readKeyFile(path, 'private key');
  const pem = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/.exec(text);
  if (pem === null) throw badKey(path, 'no PEM private key block');
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem[0], format: 'pem' });
  } catch (err) {
    throw badKey(path, messageOf(err));
  }
  if (key.asymmetricKeyType !== 'ed25519') throw badKey(path, `it is a ${key.asymmetricKeyType ?? 'unknown'} key, not ed25519`);
  const exp = /^#.*\bexpires=(\S+)/m.exec(text);
  const expires = exp === null ? undefined : parseExpiry(exp[1] as string, path);
  const pub = createPublicKey(key);
  return { id: keyIdOf(pub), key, expires, source: path, publicLine: publicLineOf(pub, expires) };
}

export interface GeneratedKey {
  id: string;
  privatePath: string;
  publicPath: string;
  publicLine: string;
}

/** Writes a new pair: `path` (mode 0600) and `path.pub` (0644). Refuses to replace an existing key. */
export function generateKeyPair(path: string, opts: { expires?: Date | undefined; comment?: string | undefined } = {}): GeneratedKey {
  for (const p of [path, `${path}.pub`]) {
    let exists = true;
    try {
      readFileSync(p);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') exists = false;
    }
    if (exists) throw new SysprimeError('EXISTS', `${p} already exists`, { hint: 'a key is never overwritten: choose another name, or remove the old one yourself' });
  }
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const id = keyIdOf(publicKey);
  const exp = opts.expires === undefined ? '' : ` expires=${opts.expires.toISOString()}`;
  const comment = opts.comment === undefined ? '' : ` (${opts.comment.replace(/[\r\n]/g, ' ')})`;
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  replaceFile(path, `# sysprime ed25519 private key ${id}${exp}${comment}\n${pem}`, { mode: 0o600 });
  const publicLine = publicLineOf(publicKey, opts.expires);
  replaceFile(`${path}.pub`, `# sysprime ed25519 public key${comment}\n${publicLine}\n`, { mode: 0o644 });
  return { id, privatePath: path, publicPath: `${path}.pub`, publicLine };
}

export function isExpired(k: { expires: Date | undefined }, now: Date): boolean {
  return k.expires !== undefined && k.expires.getTime() <= now.getTime();
}

/** The public half of a private key, as a trusted key. */
export function publicOf(k: PrivateSigningKey): PublicSigningKey {
  return { id: k.id, key: createPublicKey(k.key), expires: k.expires, source: k.source };
}

/**
 * A key named by a path that may be either half: `NAME.pub` is the public
 * half alone (checks only; the private half lives off the machine), any
 * other name a private key (signs and checks).
 */
export function readEitherHalf(path: string): { public: PublicSigningKey; private: PrivateSigningKey | undefined } {
  if (path.endsWith('.pub')) return { public: readPublicKey(path), private: undefined };
  const priv = readPrivateKey(path);
  return { public: publicOf(priv), private: priv };
}
