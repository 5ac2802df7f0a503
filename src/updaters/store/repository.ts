/**
 * Reading a store repository: a directory, a file: URL, or an http(s) URL
 * laid out the same way. Everything fetched is verified against the sha256
 * that names it before anyone uses it.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { SysprimeError, errnoOf, isSysprimeError, messageOf } from '../../errors.js';
import { log } from '../../log.js';
import type { PublicSigningKey } from '../../signing/keys.js';
import { parseSignatureFile, verifyBytes } from '../../signing/signatures.js';
import { objectRelPath, parseIndex, parseManifest, type PackageManifest, type RepositoryIndex } from './format.js';

export interface Repository {
  readonly location: string;
  readIndex(): Promise<RepositoryIndex>;
  /** The manifest named by its sha256, verified and parsed. */
  readManifest(sha256: string, expect: { name: string; version: string }): Promise<{ manifest: PackageManifest; text: string }>;
  /** Writes the object's content to `dest` (fsynced) and checks its sha256 and size. */
  fetchObject(sha256: string, size: number, dest: string): Promise<void>;
}

/** The detached signature of index.json: one `sysprime-signature` line per signing key. */
export const INDEX_SIGNATURE = 'index.json.sig';

/**
 * Whom the index must be signed by. `allowUnsigned` lets an unsigned index
 * of a local repository (a directory or file: URL) through, for testing; it
 * never applies to http(s), and a signature that is there is checked all the
 * same: with no trusted key to check it with, the index is refused.
 */
export interface IndexTrust {
  keys: readonly PublicSigningKey[];
  allowUnsigned: boolean;
}

export function isRemoteLocation(location: string): boolean {
  return /^https?:\/\//.test(location);
}

export function manifestRelPath(sha256: string): string {
  return `manifests/${sha256}.json`;
}

interface Source {
  describe(rel: string): string;
  /** The error to report for one that reading `rel` ended with (a deadline becomes TIMEOUT). */
  failure(err: unknown, rel: string): unknown;
  /** Null when the file does not exist. */
  readText(rel: string): Promise<string | null>;
  /** `stop`: ends the read early (an object longer than its manifest says), whatever the transport. */
  stream(rel: string, stop?: AbortSignal): Promise<Readable | null>;
}

function directorySource(dir: string): Source {
  return {
    describe: (rel) => join(dir, rel),
    failure: (err) => err,
    readText: async (rel) => {
      try {
        return await readFile(join(dir, rel), 'utf8');
      } catch (err) {
        if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return null;
        throw new SysprimeError('IO', `cannot read ${join(dir, rel)}: ${messageOf(err)}`, { cause: err });
      }
    },
    stream: async (rel) => {
      const path = join(dir, rel);
      try {
        // Open first so a missing file is an answer, not a stream error later.
        const handle = await open(path, 'r');
        return handle.createReadStream({ autoClose: true });
      } catch (err) {
        if (errnoOf(err) === 'ENOENT') return null;
        throw new SysprimeError('IO', `cannot read ${path}: ${messageOf(err)}`, { cause: err });
      }
    },
  };
}

export interface RepositoryOptions {
  /**
   * update.timeout in seconds: one deadline for everything read from an
   * http(s) repository through this handle, headers and bodies alike, so a
   * server that trickles a byte now and then cannot hold staging (and its
   * lock) forever.
   */
  timeoutSeconds: number;
  signal?: AbortSignal | undefined;
  /** Required: there is no default trust. */
  trust: IndexTrust;
}

function httpSource(base: string, opts: RepositoryOptions): Source {
  const url = (rel: string): string => new URL(rel, base.endsWith('/') ? base : `${base}/`).toString();
  const deadline = AbortSignal.timeout(opts.timeoutSeconds * 1000);
  const signal = opts.signal ? AbortSignal.any([deadline, opts.signal]) : deadline;
  const failure = (err: unknown, rel: string): unknown =>
    deadline.aborted && !isSysprimeError(err)
      ? new SysprimeError('TIMEOUT', `reading ${url(rel)} did not finish within update.timeout (${opts.timeoutSeconds} s)`, {
          cause: err,
          hint: 'check the repository server and the network, or raise [update] timeout in sysprime.toml',
        })
      : err;
  const get = async (rel: string, stop?: AbortSignal): Promise<Response | null> => {
    let res: Response;
    try {
      res = await fetch(url(rel), { signal: stop ? AbortSignal.any([signal, stop]) : signal });
    } catch (err) {
      if (deadline.aborted) throw failure(err, rel);
      throw new SysprimeError('IO', `cannot reach ${url(rel)}: ${messageOf(err)}`, {
        cause: err,
        hint: 'check the network and update.repository',
      });
    }
    if (res.status === 404) return null;
    if (!res.ok) throw new SysprimeError('IO', `${url(rel)} answered ${res.status} ${res.statusText}`);
    return res;
  };
  return {
    describe: url,
    failure,
    readText: async (rel) => {
      const res = await get(rel);
      try {
        return res === null ? null : await res.text();
      } catch (err) {
        throw failure(err, rel);
      }
    },
    stream: async (rel, stop) => {
      const res = await get(rel, stop);
      if (res === null || res.body === null) return null;
      return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
    },
  };
}

export function openRepository(location: string, opts: RepositoryOptions): Repository {
  let source: Source;
  if (isRemoteLocation(location)) source = httpSource(location, opts);
  else if (location.startsWith('file:')) source = directorySource(fileURLToPath(location));
  else source = directorySource(location);

  const corrupt = (what: string, expected: string, got: string): SysprimeError =>
    new SysprimeError('IO', `${what} is corrupt: its sha256 is ${got}, expected ${expected}`, {
      hint: `the store repository ${location} is damaged; republish the object or fix the mirror, then stage again`,
    });

  return {
    location,
    readIndex: async () => {
      const { keys, allowUnsigned } = opts.trust;
      if (allowUnsigned && isRemoteLocation(location)) {
        throw new SysprimeError('CONFIG', `update.allow_unsigned applies to local repositories only, not to ${location}`, {
          hint: 'sign the repository (`sysprime store sign`) and list its key in [update] trusted_keys, or remove allow_unsigned',
        });
      }
      const text = await source.readText('index.json');
      if (text === null) {
        throw new SysprimeError('NOT_FOUND', `no store repository at ${location} (${source.describe('index.json')} does not exist)`, {
          hint: 'check update.repository in sysprime.toml',
        });
      }
      // The signature is checked on the bytes as fetched, before a byte of them is parsed.
      const sigText = await source.readText(INDEX_SIGNATURE);
      const what = `the index of ${location}`;
      if (allowUnsigned && sigText === null) {
        log.warn(`${what} is used unsigned (update.allow_unsigned)`);
      } else if (allowUnsigned && keys.length === 0) {
        // A signature that is there is checked, or the index refused: never read past one unchecked (it may be bad).
        throw new SysprimeError('REFUSED', `${what} is signed (${source.describe(INDEX_SIGNATURE)}), but no key in [update] trusted_keys can check its signature`, {
          hint: 'list the publisher\'s public key in [update] trusted_keys, or, for a local test repository, remove the signature file',
        });
      } else {
        const signatures = sigText === null ? [] : parseSignatureFile(sigText, source.describe(INDEX_SIGNATURE));
        const key = verifyBytes(keys, 'store-index', Buffer.from(text, 'utf8'), signatures, { what, trustSource: '[update] trusted_keys' });
        log.debug(`${what}: signed by key ${key.id} (${key.source})`);
      }
      return parseIndex(text, source.describe('index.json'));
    },
    readManifest: async (sha256, expect) => {
      const rel = manifestRelPath(sha256);
      const text = await source.readText(rel);
      if (text === null) {
        throw new SysprimeError('NOT_FOUND', `the manifest of ${expect.name} ${expect.version} is missing from ${location} (${source.describe(rel)})`, {
          hint: 'the repository is incomplete; republish the package',
        });
      }
      const got = createHash('sha256').update(text, 'utf8').digest('hex');
      if (got !== sha256) throw corrupt(`the manifest of ${expect.name} ${expect.version} (${source.describe(rel)})`, sha256, got);
      return { manifest: parseManifest(text, source.describe(rel), expect), text };
    },
    fetchObject: async (sha256, size, dest) => {
      const rel = objectRelPath(sha256);
      // Stopped at the first byte too many: a repository that sends without end (broken or hostile)
      // would otherwise fill the disk, up to update.timeout, before the size is compared at the end.
      const stop = new AbortController();
      const input = await source.stream(rel, stop.signal);
      if (input === null) {
        throw new SysprimeError('NOT_FOUND', `object ${sha256} is missing from ${location} (${source.describe(rel)})`, {
          hint: 'the repository is incomplete; republish the package that contains it',
        });
      }
      const hash = createHash('sha256');
      let bytes = 0;
      const tap = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          hash.update(chunk);
          bytes += chunk.length;
          if (bytes > size) {
            const err = new SysprimeError('IO', `object ${source.describe(rel)} has more bytes than the ${size} its manifest says`, {
              hint: `the store repository ${location} is inconsistent; republish it`,
            });
            stop.abort(err);
            cb(err);
            return;
          }
          cb(null, chunk);
        },
      });
      const out = createWriteStream(dest, { flags: 'wx', mode: 0o600 });
      try {
        await pipeline(input, tap, out);
        const got = hash.digest('hex');
        if (got !== sha256) throw corrupt(`object ${source.describe(rel)}`, sha256, got);
        if (bytes !== size) {
          throw new SysprimeError('IO', `object ${source.describe(rel)} has ${bytes} bytes, the manifest says ${size}`, {
            hint: `the store repository ${location} is inconsistent; republish it`,
          });
        }
        const handle = await open(dest, 'r');
        try {
          await handle.sync();
        } finally {
          await handle.close();
        }
      } catch (err) {
        await rm(dest, { force: true });
        throw stop.signal.aborted ? stop.signal.reason : source.failure(err, rel);
      }
    },
  };
}
