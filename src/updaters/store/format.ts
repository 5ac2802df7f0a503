/**
 * The store's on-disk formats (documented in docs/updaters.md), their
 * validation and the pure planning over them. Everything a repository sends
 * is checked here before any of it reaches a tree: a repository is input, not
 * trusted code.
 */
import { createHash } from 'node:crypto';
import { SysprimeError, messageOf } from '../../errors.js';
import { isCleanRelative } from '../rootpath.js';
import type { PackageChange } from '../types.js';

export const STORE_FORMAT = 'sysprime-store-1';

export type EntryType = 'file' | 'dir' | 'symlink';

export interface TreeEntry {
  /** Relative to the tree's root, no leading slash: "usr/bin/hello". */
  path: string;
  type: EntryType;
  /** Permission bits including setuid/setgid/sticky, e.g. 0o755. */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of content (files), length of the target (symlinks), 0 (dirs). */
  size: number;
  /** Lowercase hex sha256 of the content; files only. */
  sha256?: string;
  /** Symlinks only. */
  target?: string;
}

export interface PackageManifest {
  format: typeof STORE_FORMAT;
  name: string;
  version: string;
  entries: TreeEntry[];
}

export interface IndexPackage {
  /** The version every tree following this repository should have. */
  current: string;
  /** version -> sha256 of its manifest file. */
  versions: Record<string, string>;
}

export interface RepositoryIndex {
  format: typeof STORE_FORMAT;
  /**
   * Raised by one at every write of the index (0 when absent: written by an
   * older sysprime). Signed with the rest, it lets a tree refuse an older
   * index served again (a rollback attack).
   */
  serial: number;
  /**
   * The repository's identity, chosen once when its index is first written
   * and kept (`store publish --id`): signed with the rest, it binds the
   * signature and the serial to one repository, whatever URL serves it.
   * Absent from an index written by an older sysprime.
   */
  id?: string;
  packages: Record<string, IndexPackage>;
}

export interface InstalledPackage {
  version: string;
  manifest: string;
}

export interface InstalledState {
  format: typeof STORE_FORMAT;
  /** Where the packages came from (informative). */
  repository: string;
  /** The serial of the index the packages came from: an older one of the same repository is refused. */
  serial: number;
  /** The id of the repository the packages came from (absent: an index without one). */
  repositoryId?: string;
  packages: Record<string, InstalledPackage>;
}

const SHA256 = /^[0-9a-f]{64}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9+._-]{0,127}$/;
/** A repository id: what `store publish --id` and `[update] repository_id` accept. */
export const REPOSITORY_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const VERSION = /^[A-Za-z0-9][A-Za-z0-9+.:~_-]{0,127}$/;

function invalid(what: string, why: string): SysprimeError {
  return new SysprimeError('REFUSED', `${what} is not valid: ${why}`, {
    hint: 'the store repository is damaged or was written by another tool; republish it',
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xfffffffe;
}

/** A JSON object of this store format, or an error naming the file. */
function parseDocument(text: string, where: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw invalid(where, `not JSON (${messageOf(err)})`);
  }
  if (!isRecord(raw) || raw['format'] !== STORE_FORMAT) throw invalid(where, `format must be "${STORE_FORMAT}"`);
  return raw;
}

export function parseIndex(text: string, where: string): RepositoryIndex {
  const raw = parseDocument(text, where);
  const packages = raw['packages'];
  if (!isRecord(packages)) throw invalid(where, '"packages" must be an object');
  const serial = raw['serial'] ?? 0;
  if (typeof serial !== 'number' || !Number.isSafeInteger(serial) || serial < 0) throw invalid(where, '"serial" must be a whole number');
  const id = raw['id'];
  if (id !== undefined && (typeof id !== 'string' || !REPOSITORY_ID.test(id))) throw invalid(where, '"id" must be a repository id (letters, digits, "._:-")');
  const out: RepositoryIndex = { format: STORE_FORMAT, serial, packages: {}, ...(id === undefined ? {} : { id }) };
  for (const [name, pkg] of Object.entries(packages)) {
    if (!NAME.test(name)) throw invalid(where, `bad package name ${JSON.stringify(name)}`);
    if (!isRecord(pkg) || typeof pkg['current'] !== 'string' || !isRecord(pkg['versions'])) {
      throw invalid(where, `package ${name} needs "current" and "versions"`);
    }
    const versions: Record<string, string> = {};
    for (const [version, sha] of Object.entries(pkg['versions'])) {
      if (!VERSION.test(version)) throw invalid(where, `bad version ${JSON.stringify(version)} of ${name}`);
      if (typeof sha !== 'string' || !SHA256.test(sha)) throw invalid(where, `version ${version} of ${name} has no manifest sha256`);
      versions[version] = sha;
    }
    if (versions[pkg['current']] === undefined) throw invalid(where, `current version ${pkg['current']} of ${name} is not among its versions`);
    out.packages[name] = { current: pkg['current'], versions };
  }
  return out;
}

function parseMode(v: unknown): number | undefined {
  if (typeof v !== 'string' || !/^0?[0-7]{3,4}$/.test(v)) return undefined;
  return parseInt(v, 8);
}

export function formatMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

export function parseManifest(text: string, where: string, expect?: { name: string; version: string }): PackageManifest {
  const raw = parseDocument(text, where);
  const name = raw['name'];
  const version = raw['version'];
  if (typeof name !== 'string' || !NAME.test(name) || typeof version !== 'string' || !VERSION.test(version)) {
    throw invalid(where, 'needs a valid "name" and "version"');
  }
  if (expect && (expect.name !== name || expect.version !== version)) {
    throw invalid(where, `it describes ${name} ${version}, not ${expect.name} ${expect.version}`);
  }
  if (!Array.isArray(raw['entries'])) throw invalid(where, '"entries" must be a list');
  const seen = new Set<string>();
  const entries: TreeEntry[] = [];
  for (const e of raw['entries'] as unknown[]) {
    if (!isRecord(e) || typeof e['path'] !== 'string') throw invalid(where, 'an entry has no path');
    const path = e['path'];
    if (!isCleanRelative(path)) throw invalid(where, `path ${JSON.stringify(path)} is not a clean relative path`);
    if (seen.has(path)) throw invalid(where, `path ${path} appears twice`);
    seen.add(path);
    const type = e['type'];
    const mode = parseMode(e['mode']);
    if (type !== 'file' && type !== 'dir' && type !== 'symlink') throw invalid(where, `${path}: type must be file, dir or symlink`);
    if (mode === undefined) throw invalid(where, `${path}: mode must be an octal string such as "0644"`);
    if (!isId(e['uid']) || !isId(e['gid'])) throw invalid(where, `${path}: uid and gid must be non-negative integers`);
    const size = e['size'];
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw invalid(where, `${path}: bad size`);
    const entry: TreeEntry = { path, type, mode, uid: e['uid'], gid: e['gid'], size };
    if (type === 'file') {
      if (typeof e['sha256'] !== 'string' || !SHA256.test(e['sha256'])) throw invalid(where, `${path}: a file needs its sha256`);
      entry.sha256 = e['sha256'];
    } else if (type === 'symlink') {
      const target = e['target'];
      if (typeof target !== 'string' || target.length === 0 || target.includes('\0')) throw invalid(where, `${path}: a symlink needs a target`);
      entry.target = target;
    }
    entries.push(entry);
  }
  return { format: STORE_FORMAT, name, version, entries };
}

export function parseInstalled(text: string, where: string): InstalledState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new SysprimeError('STATE', `${where} is not JSON (${messageOf(err)})`, {
      hint: 'the environment\'s store state is damaged; stage from an older generation',
    });
  }
  if (!isRecord(raw) || raw['format'] !== STORE_FORMAT || !isRecord(raw['packages'])) {
    throw new SysprimeError('STATE', `${where} is not a sysprime store state (${STORE_FORMAT})`);
  }
  const packages: Record<string, InstalledPackage> = {};
  for (const [name, p] of Object.entries(raw['packages'])) {
    if (!isRecord(p) || typeof p['version'] !== 'string' || typeof p['manifest'] !== 'string' || !SHA256.test(p['manifest'])) {
      throw new SysprimeError('STATE', `${where}: package ${name} is not recorded properly`);
    }
    packages[name] = { version: p['version'], manifest: p['manifest'] };
  }
  const serial = typeof raw['serial'] === 'number' && Number.isSafeInteger(raw['serial']) && raw['serial'] >= 0 ? raw['serial'] : 0;
  const repositoryId = typeof raw['repositoryId'] === 'string' ? raw['repositoryId'] : undefined;
  return { format: STORE_FORMAT, repository: typeof raw['repository'] === 'string' ? raw['repository'] : '', serial, packages, ...(repositoryId === undefined ? {} : { repositoryId }) };
}

/**
 * Whether a tree may be updated from `index`: refused (REFUSED) when the
 * index is of another repository than the tree was built from (unless the
 * admin pinned the new one, `[update] repository_id`), or of the same
 * repository with a lower serial (an old index served again). Serials are
 * compared per repository id, whatever URL serves it; a tree or an index
 * without an id (written by an older sysprime) falls back to the URL.
 */
export function checkIndexSource(index: RepositoryIndex, installed: InstalledState, location: string, pinned: string | undefined): void {
  const what = `the index of ${location}`;
  if (pinned !== undefined && index.id !== pinned) {
    throw new SysprimeError('REFUSED', `${what} is of repository ${index.id ?? '(no id)'}, not ${pinned} as [update] repository_id says`, {
      hint: 'check update.repository, or set [update] repository_id to the repository this machine should follow',
    });
  }
  const built = installed.repositoryId;
  if (pinned === undefined && built !== undefined && Object.keys(installed.packages).length > 0 && index.id !== built) {
    throw new SysprimeError('REFUSED', `${what} is of repository ${index.id ?? '(no id)'}, but this tree was built from repository ${built}`, {
      hint:
        index.id === undefined
          ? 'the index was written by an older sysprime and names no repository: publish to it again with a current one, then set [update] repository_id to its id'
          : `to move this machine to the other repository, set [update] repository_id = "${index.id}" in sysprime.toml`,
    });
  }
  const same = built !== undefined && index.id !== undefined ? built === index.id : installed.repository === location;
  if (same && index.serial < installed.serial) {
    throw new SysprimeError('REFUSED', `${what} is older (serial ${index.serial}) than the one this tree was built from (serial ${installed.serial}): an old index served again`, {
      hint: 'the repository or a mirror serves a stale or replayed index; publish or sign again, or fix the mirror',
    });
  }
}

export function emptyInstalled(repository: string): InstalledState {
  return { format: STORE_FORMAT, repository, serial: 0, packages: {} };
}

/**
 * The key of an object in an environment's store: content and metadata
 * together, so one stored inode carries the right mode and owner everywhere
 * it is hardlinked (chmod on a hardlink would change every link).
 */
export function objectKey(entry: Pick<TreeEntry, 'sha256' | 'mode' | 'uid' | 'gid'>): string {
  if (entry.sha256 === undefined) throw new Error('objectKey of an entry without content');
  return createHash('sha256')
    .update(`${STORE_FORMAT}\0${entry.sha256}\0${formatMode(entry.mode)}\0${entry.uid}\0${entry.gid}`)
    .digest('hex');
}

export function objectRelPath(hash: string): string {
  return `objects/${hash.slice(0, 2)}/${hash.slice(2)}`;
}

/**
 * What the repository asks for compared with what the tree has: the
 * repository is authoritative, so a different version is an update whether it
 * sorts higher or not (publishing an older version is how a repository rolls
 * back), and a package the index no longer lists is removed.
 */
export function planChanges(index: RepositoryIndex, installed: InstalledState): PackageChange[] {
  const changes: PackageChange[] = [];
  for (const [name, pkg] of Object.entries(index.packages)) {
    const have = installed.packages[name];
    const manifest = pkg.versions[pkg.current];
    if (have === undefined) changes.push({ name, from: null, to: pkg.current });
    else if (have.version !== pkg.current || have.manifest !== manifest) changes.push({ name, from: have.version, to: pkg.current });
  }
  for (const [name, have] of Object.entries(installed.packages)) {
    if (index.packages[name] === undefined) changes.push({ name, from: have.version, to: null });
  }
  return changes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function summarize(changes: readonly PackageChange[]): string {
  if (changes.length === 0) return 'nothing to update';
  const added = changes.filter((c) => c.from === null).length;
  const removed = changes.filter((c) => c.to === null).length;
  const updated = changes.length - added - removed;
  const parts = [
    updated > 0 ? `${updated} updated` : '',
    added > 0 ? `${added} new` : '',
    removed > 0 ? `${removed} removed` : '',
  ].filter((p) => p !== '');
  return `store: ${parts.join(', ')} (${changes.map((c) => `${c.name} ${c.from ?? '-'} -> ${c.to ?? '-'}`).join('; ')})`;
}

/**
 * The union of the packages' trees, keyed by path. Two packages may share a
 * directory; any other overlap is an error in the repository.
 */
export function mergeTrees(manifests: readonly PackageManifest[]): Map<string, TreeEntry> {
  const out = new Map<string, TreeEntry>();
  const owner = new Map<string, string>();
  for (const m of manifests) {
    for (const e of m.entries) {
      const prev = out.get(e.path);
      if (prev === undefined) {
        out.set(e.path, e);
        owner.set(e.path, m.name);
      } else if (!(prev.type === 'dir' && e.type === 'dir')) {
        throw new SysprimeError('REFUSED', `packages ${owner.get(e.path)} and ${m.name} both provide /${e.path}`, {
          hint: 'fix the store repository: a path other than a directory belongs to one package',
        });
      }
    }
  }
  // A file below a symlink would be written wherever the link points, possibly out of the tree.
  for (const e of out.values()) {
    const parts = e.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const ancestor = out.get(parts.slice(0, i).join('/'));
      if (ancestor !== undefined && ancestor.type !== 'dir') {
        throw new SysprimeError('REFUSED', `/${e.path} (${owner.get(e.path)}) lies below /${ancestor.path}, which ${owner.get(ancestor.path)} makes a ${ancestor.type}`, {
          hint: 'fix the store repository: only directories can contain other entries',
        });
      }
    }
  }
  const usr = out.get('usr');
  if (usr !== undefined && usr.type !== 'dir') {
    throw new SysprimeError('REFUSED', `package ${owner.get('usr')} makes /usr a ${usr.type}; the store builds /usr as a directory`);
  }
  return out;
}
