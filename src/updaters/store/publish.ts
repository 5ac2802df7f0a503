/**
 * Writing a store repository (a directory): adding package versions, from a
 * directory tree or from a list of entries, and choosing the current version
 * of a package. The reading side is repository.ts; both follow format.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readFile, readdir, readlink, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { SysprimeError, errnoOf, isSysprimeError } from '../../errors.js';
import { copyDurable, fsyncPath, replaceFile } from '../../os/durable.js';
import { publicOf, type PrivateSigningKey } from '../../signing/keys.js';
import { parseSignatureFile, signBytes, verifyBytes } from '../../signing/signatures.js';
import { formatMode, objectRelPath, parseIndex, parseManifest, REPOSITORY_ID, STORE_FORMAT, type RepositoryIndex } from './format.js';
import { INDEX_SIGNATURE, manifestRelPath } from './repository.js';

/** Keys the index is signed with after a write; none leaves it unsigned (and removes a stale signature). */
export interface SignOptions {
  sign?: readonly PrivateSigningKey[] | undefined;
  /** Sign over the current index without checking it first (publish --trust-index). */
  trustIndex?: boolean | undefined;
  /** The repository's id, when the index is first written (default: 16 random hex digits); kept afterwards. */
  id?: string | undefined;
}

export interface PublishEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  /** Defaults: 0644 for files, 0755 for directories, 0777 for symlinks. */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Files: the content, or a file to read it from. */
  content?: string | Uint8Array;
  from?: string;
  /** Symlinks. */
  target?: string;
}

/**
 * The current index, to be changed and signed again. With keys to sign
 * with, it must first carry a good signature by one of them: re-signing an
 * index nobody checked would vouch for whatever was put there
 * (`trustIndex`: the publisher says to sign over it anyway).
 */
async function readIndexOrEmpty(repoDir: string, opts: SignOptions): Promise<RepositoryIndex> {
  const path = join(repoDir, 'index.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return { format: STORE_FORMAT, serial: 0, packages: {} };
    throw err;
  }
  const keys = opts.sign ?? [];
  if (keys.length > 0 && opts.trustIndex !== true) {
    const sigText = await readFile(join(repoDir, INDEX_SIGNATURE), 'utf8').catch((err: unknown) => {
      if (errnoOf(err) === 'ENOENT') return '';
      throw err;
    });
    try {
      verifyBytes(keys.map(publicOf), 'store-index', Buffer.from(text, 'utf8'), parseSignatureFile(sigText, join(repoDir, INDEX_SIGNATURE)), {
        what: `the current index of ${repoDir}`,
        trustSource: 'the --sign keys',
      });
    } catch (err) {
      if (!isSysprimeError(err)) throw err;
      throw new SysprimeError('REFUSED', `${err.message}; it is not signed again`, {
        hint: 'check the repository (was it changed by someone else?); to sign over it anyway, add --trust-index',
        cause: err,
      });
    }
  }
  return parseIndex(text, path);
}

/**
 * Writes the index with its serial raised by one, then its signature. A
 * reader between the two renames sees a new index with the old signature and
 * refuses it: the safe way round.
 */
async function writeIndex(repoDir: string, index: RepositoryIndex, opts: SignOptions): Promise<void> {
  // The id is chosen once, at the first write (or given then), and kept: it names the repository in signed bytes.
  if (opts.id !== undefined && !REPOSITORY_ID.test(opts.id)) throw new SysprimeError('USAGE', `${JSON.stringify(opts.id)} is not a repository id (letters, digits, "._:-")`);
  if (opts.id !== undefined && index.id !== undefined && opts.id !== index.id) {
    throw new SysprimeError('USAGE', `the repository ${repoDir} has id ${index.id}, not ${opts.id}: an id is chosen once`, { hint: 'leave out --id, or publish to a new repository' });
  }
  const id = index.id ?? opts.id ?? randomBytes(8).toString('hex');
  const text = `${JSON.stringify({ format: index.format, id, serial: index.serial + 1, packages: index.packages }, null, 2)}\n`;
  // Signed first: a key that cannot sign (expired) leaves the repository as it was.
  const lines = signatureLines(text, opts.sign ?? []);
  replaceFile(join(repoDir, 'index.json'), text, { mode: 0o644 });
  await writeIndexSignature(repoDir, lines);
}

function signatureLines(text: string, keys: readonly PrivateSigningKey[]): string[] {
  return keys.map((k) => signBytes(k, 'store-index', Buffer.from(text, 'utf8')));
}

async function writeIndexSignature(repoDir: string, lines: readonly string[]): Promise<void> {
  const sigPath = join(repoDir, INDEX_SIGNATURE);
  if (lines.length === 0) {
    await rm(sigPath, { force: true });
    fsyncPath(repoDir);
    return;
  }
  replaceFile(sigPath, `${lines.join('\n')}\n`, { mode: 0o644 });
}

/**
 * Signs the index as it is with `keys` (replacing its signature), without
 * changing it: how a repository is signed for the first time, or with a new
 * key beside the old during a rotation. Returns the serial signed.
 */
export async function signIndex(repoDir: string, keys: readonly PrivateSigningKey[]): Promise<number> {
  if (keys.length === 0) throw new SysprimeError('USAGE', 'signing the index needs at least one key');
  let text: string;
  try {
    text = await readFile(join(repoDir, 'index.json'), 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') throw new SysprimeError('NOT_FOUND', `no store repository at ${repoDir} (no index.json)`, { cause: err });
    throw err;
  }
  const index = parseIndex(text, join(repoDir, 'index.json')); // never sign what a reader would refuse
  await writeIndexSignature(repoDir, signatureLines(text, keys));
  return index.serial;
}

async function storeBytes(repoDir: string, bytes: Uint8Array): Promise<string> {
  const sha = createHash('sha256').update(bytes).digest('hex');
  const dest = join(repoDir, objectRelPath(sha));
  if (!(await lstat(dest).then(() => true, () => false))) {
    await mkdir(dirname(dest), { recursive: true });
    replaceFile(dest, bytes, { mode: 0o644 });
  }
  return sha;
}

async function storeFile(repoDir: string, from: string): Promise<{ sha: string; size: number }> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(from), async function* (source) {
    for await (const chunk of source) hash.update(chunk as Buffer);
  });
  const sha = hash.digest('hex');
  const size = (await lstat(from)).size;
  const dest = join(repoDir, objectRelPath(sha));
  if (!(await lstat(dest).then(() => true, () => false))) {
    await mkdir(dirname(dest), { recursive: true });
    await copyDurable(from, dest);
  }
  return { sha, size };
}

/**
 * Adds version `version` of package `name` with the given entries and, unless
 * `current` is false, makes it the version trees should have. Returns the
 * manifest's sha256.
 */
export async function publishPackageVersion(
  repoDir: string,
  name: string,
  version: string,
  input: readonly PublishEntry[],
  opts: { current?: boolean } & SignOptions = {},
): Promise<string> {
  await mkdir(repoDir, { recursive: true });
  // Read (and checked) first: a refused index leaves the repository as it was.
  const index = await readIndexOrEmpty(repoDir, opts);
  const entries: Array<Record<string, unknown>> = [];
  for (const e of [...input].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    const mode = e.mode ?? (e.type === 'file' ? 0o644 : e.type === 'dir' ? 0o755 : 0o777);
    const base = { path: e.path, type: e.type, mode: formatMode(mode), uid: e.uid ?? 0, gid: e.gid ?? 0 };
    if (e.type === 'dir') entries.push({ ...base, size: 0 });
    else if (e.type === 'symlink') {
      if (e.target === undefined) throw new SysprimeError('USAGE', `symlink ${e.path} needs a target`);
      entries.push({ ...base, size: Buffer.byteLength(e.target), target: e.target });
    } else if (e.from !== undefined) {
      const { sha, size } = await storeFile(repoDir, e.from);
      entries.push({ ...base, size, sha256: sha });
    } else {
      const bytes = typeof e.content === 'string' ? Buffer.from(e.content) : (e.content ?? new Uint8Array());
      entries.push({ ...base, size: bytes.length, sha256: await storeBytes(repoDir, bytes) });
    }
  }
  const text = `${JSON.stringify({ format: STORE_FORMAT, name, version, entries }, null, 1)}\n`;
  parseManifest(text, `${name} ${version}`, { name, version }); // the writer obeys the reader's rules
  const sha = createHash('sha256').update(text, 'utf8').digest('hex');
  const dest = join(repoDir, manifestRelPath(sha));
  await mkdir(dirname(dest), { recursive: true });
  replaceFile(dest, text, { mode: 0o644 });

  const pkg = index.packages[name] ?? { current: version, versions: {} };
  pkg.versions[version] = sha;
  if (opts.current !== false || index.packages[name] === undefined) pkg.current = version;
  index.packages[name] = pkg;
  await writeIndex(repoDir, index, opts);
  return sha;
}

/** The entries of a directory tree as it is on disk (owner and mode included). */
export async function entriesOfTree(dir: string): Promise<PublishEntry[]> {
  const out: PublishEntry[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(rel === '' ? dir : join(dir, rel))).sort()) {
      const relPath = rel === '' ? name : `${rel}/${name}`;
      const abs = join(dir, relPath);
      const st = await lstat(abs);
      const meta = { path: relPath, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
      if (st.isDirectory()) {
        out.push({ ...meta, type: 'dir' });
        await walk(relPath);
      } else if (st.isSymbolicLink()) out.push({ ...meta, type: 'symlink', target: await readlink(abs) });
      else if (st.isFile()) out.push({ ...meta, type: 'file', from: abs });
      else throw new SysprimeError('REFUSED', `${abs} is neither a file, a directory nor a symlink; a store package cannot hold it`);
    }
  };
  await walk('');
  return out;
}

/** Publishes the contents of `dir` (its children, not dir itself) as a package version. */
export async function publishTree(repoDir: string, name: string, version: string, dir: string, opts: { current?: boolean } & SignOptions = {}): Promise<string> {
  return publishPackageVersion(repoDir, name, version, await entriesOfTree(dir), opts);
}

export async function setCurrentVersion(repoDir: string, name: string, version: string, opts: SignOptions = {}): Promise<void> {
  const index = await readIndexOrEmpty(repoDir, opts);
  const pkg = index.packages[name];
  if (pkg?.versions[version] === undefined) throw new SysprimeError('NOT_FOUND', `${name} ${version} is not in ${repoDir}`);
  pkg.current = version;
  await writeIndex(repoDir, index, opts);
}

/** Drops a package from the index: trees following the repository remove it. Its objects stay. */
export async function withdrawPackage(repoDir: string, name: string, opts: SignOptions = {}): Promise<void> {
  const index = await readIndexOrEmpty(repoDir, opts);
  delete index.packages[name];
  await writeIndex(repoDir, index, opts);
}
