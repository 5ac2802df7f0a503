/**
 * Manifests kept between runs, as files beside the state database (they are
 * large; the database holds where they are and what they describe). A saved
 * manifest is reused only when its identity matches: for a pristine snapshot
 * that is the snapshot plus the rules and hash it was made with, so a
 * read-only tree is walked once; for a live tree it seeds the incremental
 * walk (unchanged inode, size, mtime and ctime means unchanged content).
 */
import { mkdirSync, readFileSync, rmSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { formatIndexChunks, formatManifestChunks, lookupInText, parseManifest, type EntryLookup, type Manifest } from '../bart/index.js';
import { log } from '../log.js';
import { linkDurable, replaceFile } from '../os/durable.js';
import { eachPieceOfPath, releaseBytes } from '../os/file-data.js';
import type { Db } from './db.js';
import { SysprimeError, errnoOf, messageOf } from '../errors.js';
import type { PrivateSigningKey, PublicSigningKey } from '../signing/keys.js';
import { parseSignatureLine, signBytes, verifyBytes } from '../signing/signatures.js';

/** What a kept manifest describes: its subject, the key it is kept under. */
export const manifestSubject = {
  /** The last live manifest of an environment (the seed of the next incremental walk). */
  environment: (name: string): string => `env:${name}`,
  /**
   * The running system's manifest at a staging, the baseline the first boot
   * compares against: keyed by the staging id the first-boot note names
   * (by the staged name for notes written before stagings had ids).
   */
  stagedOurs: (key: string): string => `staged-ours:${key}`,
  /** The manifest of the pristine state of a generation. */
  pristine: (generation: number): string => `pristine:${generation}`,
};

/**
 * What a kept manifest belongs to, whose going makes it useless: an
 * environment, a generation, or a staging (its baseline is needed while a
 * first-boot note naming the staging's key is in some environment's tree);
 * null for a subject of no kind known here, which is never forgotten.
 */
export function subjectOwner(subject: string): { environment: string } | { generation: number } | { staging: string } | null {
  const at = subject.indexOf(':');
  const kind = subject.slice(0, at);
  const of = subject.slice(at + 1);
  if (kind === 'env') return { environment: of };
  if (kind === 'pristine' && /^\d+$/.test(of)) return { generation: Number(of) };
  if (kind === 'staged-ours' && of !== '') return { staging: of };
  return null;
}

function fileFor(dir: string, subject: string): string {
  return join(dir, 'manifests', createHash('sha256').update(subject).digest('hex').slice(0, 32));
}

function writeAtomic(path: string, data: string | Buffer | Iterable<Buffer>): Stats {
  return replaceFile(path, typeof data === 'string' ? Buffer.from(data, 'latin1') : data, { mode: 0o600 });
}

/**
 * The files this process wrote for a manifest (the very object), and their
 * state then: kept again under another subject, unchanged, it is linked,
 * not written again. Staging keeps the admin's manifest twice, as the
 * environment's and as the first boot's baseline: 500,000 entries are 0.5 s
 * of formatting and writing each time. A manifest is not changed once kept
 * (its file would no longer say what it holds).
 */
const keptFiles = new WeakMap<Manifest, { file: string; bart: Stats; index: Stats }>();

/**
 * What a kept manifest's signature covers: its subject and identity with its
 * bytes, so a signed manifest cannot stand in for another generation's, and
 * the time it was signed, so the key is judged by its expiry then (a
 * signature file written before signing times were kept has none).
 */
function signedBytesOf(subject: string, identity: string, bart: Buffer, signedAt?: string): Buffer {
  const at = signedAt === undefined ? '' : `signed-at=${signedAt}\0`;
  return Buffer.concat([Buffer.from(`${subject}\0${identity}\0${at}`, 'utf8'), bart]);
}

const SIGNED_AT = 'signed-at ';

/** A kept manifest's signature file: an optional `signed-at TIME` line, then the signature line. */
function parseKeptSignature(text: string): { line: string; signedAt: string | undefined } {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const first = lines[0] ?? '';
  if (first.startsWith(SIGNED_AT)) return { signedAt: first.slice(SIGNED_AT.length), line: lines.slice(1).join('\n') };
  return { signedAt: undefined, line: lines.join('\n') };
}

/**
 * Keeps a manifest; with `key`, signed (`FILE.sig`, one signature line). A
 * manifest kept without a key has no signature file: an old one would
 * speak for other bytes.
 */
export function saveManifest(db: Db, stateDir: string, subject: string, identity: string, m: Manifest, key?: PrivateSigningKey): void {
  mkdirSync(join(stateDir, 'manifests'), { recursive: true, mode: 0o700 });
  const file = fileFor(stateDir, subject);
  const signedAt = new Date().toISOString();
  // Unsigned (the common case), the text goes to the file as it is made, never whole in memory; a signature needs it whole.
  const bart = key === undefined ? undefined : Buffer.concat([...formatManifestChunks(m)]);
  const signature = key === undefined ? undefined : signBytes(key, 'baseline', signedBytesOf(subject, identity, bart!, signedAt));
  rmSync(`${file}.sig`, { force: true });
  const before = keptFiles.get(m);
  const linked = key === undefined && before !== undefined && linkDurable(`${before.file}.bart`, `${file}.bart`, before.bart) && linkDurable(`${before.file}.index`, `${file}.index`, before.index);
  if (!linked) {
    // The durable writer writes each chunk before it asks for the next: one buffer serves them all.
    const written = writeAtomic(`${file}.bart`, bart ?? formatManifestChunks(m, { reuse: true }));
    keptFiles.set(m, { file, bart: written, index: writeAtomic(`${file}.index`, formatIndexChunks(m, { reuse: true })) });
  }
  if (signature !== undefined) writeAtomic(`${file}.sig`, `${SIGNED_AT}${signedAt}\n${signature}\n`);
  db.prepare('INSERT OR REPLACE INTO manifests (subject, created, identity, entries, file) VALUES (?, ?, ?, ?, ?)').run(
    subject,
    new Date().toISOString(),
    identity,
    m.entries.length,
    file,
  );
}

/** The row of the manifest kept for a subject: its identity, and its files' name without .bart, .index or .sig. */
function keptRow(db: Db, subject: string): { identity: string; file: string } | undefined {
  return db.prepare('SELECT identity, file FROM manifests WHERE subject = ?').get(subject) as { identity: string; file: string } | undefined;
}

/** Where the manifest kept for a subject is, when there is one of that identity (any, without one). */
function keptFile(db: Db, subject: string, identity: string | undefined): string | undefined {
  const row = keptRow(db, subject);
  return row === undefined || (identity !== undefined && row.identity !== identity) ? undefined : row.file;
}

/** The saved manifest of a subject, or undefined (also when it is unreadable: it is only a cache). */
export function loadManifest(db: Db, subject: string, identity?: string): Manifest | undefined {
  const file = keptFile(db, subject, identity);
  if (file === undefined) return undefined;
  let bart: Buffer | undefined;
  let index: Buffer | undefined;
  try {
    bart = readFileSync(`${file}.bart`);
    index = readFileSync(`${file}.index`);
    return parseManifest(bart, `${file}.bart`, { data: index, source: `${file}.index` });
  } catch (err) {
    log.warn(`saved manifest of ${subject} is unusable (${messageOf(err)}); making a new one`);
    return undefined;
  } finally {
    // Parsed into entries, the bytes (tens of MB on a large root) are garbage: freed now, not at the next full collection.
    if (bart !== undefined) releaseBytes(bart);
    if (index !== undefined) releaseBytes(index);
  }
}

/**
 * The saved manifest of a subject as a lookup by path (src/bart/lookup.ts),
 * or undefined like loadManifest: for a caller that needs few of its
 * entries, without parsing every one.
 */
export function loadManifestLookup(db: Db, subject: string, identity?: string): EntryLookup | undefined {
  const file = keptFile(db, subject, identity);
  if (file === undefined) return undefined;
  try {
    const bart = readFileSync(`${file}.bart`);
    const index = readFileSync(`${file}.index`);
    const lookup = lookupInText(bart, index, `${file}.bart`, `${file}.index`);
    // The lookup's bytes were read here and nothing else holds them: its release() frees them at once.
    return { ...lookup, release: () => (releaseBytes(bart), releaseBytes(index)) };
  } catch (err) {
    log.warn(`saved manifest of ${subject} is unusable (${messageOf(err)}); making a new one`);
    return undefined;
  }
}

export function forgetManifest(db: Db, subject: string): void {
  const row = keptRow(db, subject);
  if (!row) return;
  rmSync(`${row.file}.bart`, { force: true });
  rmSync(`${row.file}.index`, { force: true });
  rmSync(`${row.file}.sig`, { force: true });
  db.prepare('DELETE FROM manifests WHERE subject = ?').run(subject);
}

/** The subjects of every kept manifest. */
export function manifestSubjects(db: Db): string[] {
  return (db.prepare('SELECT subject FROM manifests ORDER BY subject').all() as { subject: string }[]).map((r) => r.subject);
}

/** Forget every kept manifest whose subject `gone` names; returns the subjects forgotten. */
export function forgetManifestsWhere(db: Db, gone: (subject: string) => boolean): string[] {
  const forgotten = manifestSubjects(db).filter(gone);
  for (const subject of forgotten) forgetManifest(db, subject);
  return forgotten;
}

/** A kept manifest as an off-machine audit sees it: what it is, the sha256 of its bytes, its signature line. */
export interface KeptManifestEvidence {
  subject: string;
  identity: string;
  sha256: string;
  signature: string | null;
  /** The signing time the signature covers (after subject and identity, before the bytes); null when none. */
  signedAt: string | null;
}

function readOptional(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  }
}

export function keptManifestEvidence(db: Db, subject: string): KeptManifestEvidence | null {
  const row = keptRow(db, subject);
  if (!row) return null;
  // A piece at a time: drift reports this at its peak, and the two kept manifests of a large root are tens of MB each.
  const digest = createHash('sha256');
  if (!eachPieceOfPath(`${row.file}.bart`, (piece) => digest.update(piece))) return null;
  const sig = readOptional(`${row.file}.sig`);
  const kept = sig === undefined ? undefined : parseKeptSignature(sig.toString('utf8'));
  return {
    subject,
    identity: row.identity,
    sha256: digest.digest('hex'),
    signature: kept === undefined ? null : kept.line,
    signedAt: kept?.signedAt ?? null,
  };
}

/**
 * Checks the kept manifest of `subject` (with this identity) against `keys`:
 * missing, kept for another identity, unsigned or altered, it is refused.
 * Returns the key and the manifest parsed from the very bytes checked (a
 * second read could see other bytes), without the side index: the index is
 * not signed, so its inode and time cache vouches for nothing.
 */
export function verifyKeptManifest(
  db: Db,
  subject: string,
  identity: string,
  keys: readonly PublicSigningKey[],
  trustSource: string,
): { key: PublicSigningKey; manifest: Manifest } {
  const row = keptRow(db, subject);
  const bart = row === undefined ? undefined : readOptional(`${row.file}.bart`);
  if (row === undefined || bart === undefined || row.identity !== identity) {
    throw new SysprimeError('REFUSED', `no baseline manifest of ${subject} is kept for these rules and hash, so none can be verified`, {
      hint: 'a baseline is signed when it is made with [audit] key set; see docs/signing.md',
    });
  }
  const text = readOptional(`${row.file}.sig`)?.toString('utf8');
  const kept = text === undefined ? undefined : parseKeptSignature(text);
  const sig = kept === undefined ? undefined : parseSignatureLine(kept.line);
  const key = verifyBytes(keys, 'baseline', signedBytesOf(subject, identity, bart, kept?.signedAt), sig === undefined ? [] : [sig], {
    what: `the baseline manifest of ${subject}`,
    trustSource,
    signedAt: kept?.signedAt === undefined ? undefined : new Date(kept.signedAt),
  });
  return { key, manifest: parseManifest(bart, `${row.file}.bart`) };
}
