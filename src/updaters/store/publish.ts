/**
 * Writing a store repository (a directory): adding package versions, from a
 * directory tree or from a list of entries, and choosing the current version
 * of a package. The reading side is repository.ts; both follow format.ts.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readFile, readdir, readlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { SysprimeError, errnoOf } from '../../errors.js';
import { copyDurable, replaceFile } from '../../os/durable.js';
import { formatMode, objectRelPath, parseIndex, parseManifest, STORE_FORMAT, type RepositoryIndex } from './format.js';
import { manifestRelPath } from './repository.js';

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

async function readIndexOrEmpty(repoDir: string): Promise<RepositoryIndex> {
  try {
    return parseIndex(await readFile(join(repoDir, 'index.json'), 'utf8'), join(repoDir, 'index.json'));
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return { format: STORE_FORMAT, packages: {} };
    throw err;
  }
}

async function writeIndex(repoDir: string, index: RepositoryIndex): Promise<void> {
  replaceFile(join(repoDir, 'index.json'), `${JSON.stringify(index, null, 2)}\n`, { mode: 0o644 });
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
  opts: { current?: boolean } = {},
): Promise<string> {
  await mkdir(repoDir, { recursive: true });
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

  const index = await readIndexOrEmpty(repoDir);
  const pkg = index.packages[name] ?? { current: version, versions: {} };
  pkg.versions[version] = sha;
  if (opts.current !== false || index.packages[name] === undefined) pkg.current = version;
  index.packages[name] = pkg;
  await writeIndex(repoDir, index);
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
export async function publishTree(repoDir: string, name: string, version: string, dir: string, opts: { current?: boolean } = {}): Promise<string> {
  return publishPackageVersion(repoDir, name, version, await entriesOfTree(dir), opts);
}

export async function setCurrentVersion(repoDir: string, name: string, version: string): Promise<void> {
  const index = await readIndexOrEmpty(repoDir);
  const pkg = index.packages[name];
  if (pkg?.versions[version] === undefined) throw new SysprimeError('NOT_FOUND', `${name} ${version} is not in ${repoDir}`);
  pkg.current = version;
  await writeIndex(repoDir, index);
}

/** Drops a package from the index: trees following the repository remove it. Its objects stay. */
export async function withdrawPackage(repoDir: string, name: string): Promise<void> {
  const index = await readIndexOrEmpty(repoDir);
  delete index.packages[name];
  await writeIndex(repoDir, index);
}
