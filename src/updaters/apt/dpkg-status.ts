/**
 * dpkg's view of a tree, read from its files rather than by running dpkg:
 * the live and pristine trees are only ever read, and no program of theirs
 * may run. `var/lib/dpkg/status` says what is installed, in which version,
 * and what the admin selected (install, hold, deinstall, purge);
 * `var/lib/apt/extended_states` says which packages apt installed only as
 * dependencies. Everything here is a pure function of the text.
 */
import type { PackageChange } from '../types.js';

export const DPKG_STATUS = 'var/lib/dpkg/status';
export const APT_EXTENDED_STATES = 'var/lib/apt/extended_states';

export type Want = 'unknown' | 'install' | 'hold' | 'deinstall' | 'purge';

export interface DpkgPackage {
  name: string;
  architecture: string;
  /** Empty when dpkg has no version for it (never installed). */
  version: string;
  want: Want;
  /** "ok" or "reinstreq". */
  flag: string;
  /** installed, config-files, half-installed, unpacked, not-installed, ... */
  state: string;
}

/** One deb822 paragraph: field names as written, values with continuation lines joined by "\n". */
export type Stanza = Map<string, string>;

export function parseDeb822(text: string): Stanza[] {
  const stanzas: Stanza[] = [];
  let current: Stanza | null = null;
  let lastField: string | null = null;
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (current !== null && current.size > 0) stanzas.push(current);
      current = null;
      lastField = null;
      continue;
    }
    if (line.startsWith('#')) continue;
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (current !== null && lastField !== null) current.set(lastField, `${current.get(lastField) ?? ''}\n${line.slice(1)}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    current ??= new Map();
    lastField = line.slice(0, colon);
    current.set(lastField, line.slice(colon + 1).trim());
  }
  if (current !== null && current.size > 0) stanzas.push(current);
  return stanzas;
}

const WANTS: ReadonlySet<string> = new Set(['unknown', 'install', 'hold', 'deinstall', 'purge']);

export function parseDpkgStatus(text: string): DpkgPackage[] {
  const out: DpkgPackage[] = [];
  for (const s of parseDeb822(text)) {
    const name = s.get('Package');
    const status = s.get('Status');
    if (name === undefined || status === undefined) continue;
    const [want = '', flag = '', state = ''] = status.split(/\s+/);
    out.push({
      name,
      architecture: s.get('Architecture') ?? 'all',
      version: s.get('Version') ?? '',
      want: (WANTS.has(want) ? want : 'unknown') as Want,
      flag,
      state,
    });
  }
  return out;
}

/**
 * dpkg's own architecture: the one its own package is built for (dpkg is
 * never a foreign-architecture package). Falls back to the most common one.
 */
export function nativeArchitecture(packages: readonly DpkgPackage[]): string {
  const dpkg = packages.find((p) => p.name === 'dpkg' && p.architecture !== 'all');
  if (dpkg !== undefined) return dpkg.architecture;
  const counts = new Map<string, number>();
  for (const p of packages) if (p.architecture !== 'all') counts.set(p.architecture, (counts.get(p.architecture) ?? 0) + 1);
  let best = 'all';
  let bestCount = 0;
  for (const [arch, n] of counts) if (n > bestCount) [best, bestCount] = [arch, n];
  return best;
}

/** The name apt and dpkg accept for a package: qualified only when it is of a foreign architecture. */
export function packageKey(name: string, architecture: string | undefined, native: string): string {
  return architecture === undefined || architecture === 'all' || architecture === native ? name : `${name}:${architecture}`;
}

/** A tree's package state, keyed as packageKey() names them. */
export interface PackageState {
  native: string;
  /** Installed packages (fully installed, dpkg flag ok) and their versions. */
  installed: Map<string, string>;
  /** Installed packages the admin put on hold. */
  held: Set<string>;
  /** Packages dpkg still has a record of without them being installed: removed but not purged. */
  configFiles: Set<string>;
  /** Installed only as a dependency (apt's Auto-Installed mark). */
  auto: Set<string>;
}

/**
 * `extendedStates` may be empty (a tree without apt's marks): every package
 * then counts as chosen by hand.
 */
export function packageState(statusText: string, extendedStatesText = '', nativeHint?: string): PackageState {
  const packages = parseDpkgStatus(statusText);
  const native = nativeHint ?? nativeArchitecture(packages);
  const state: PackageState = { native, installed: new Map(), held: new Set(), configFiles: new Set(), auto: new Set() };
  for (const p of packages) {
    const key = packageKey(p.name, p.architecture, native);
    if (p.state === 'installed' && p.flag === 'ok') {
      state.installed.set(key, p.version);
      if (p.want === 'hold') state.held.add(key);
    } else if (p.state === 'config-files') {
      state.configFiles.add(key);
    }
  }
  for (const s of parseDeb822(extendedStatesText)) {
    const name = s.get('Package');
    if (name === undefined || s.get('Auto-Installed') !== '1') continue;
    state.auto.add(packageKey(name, s.get('Architecture'), native));
  }
  return state;
}

/** What changed between two states of the same tree, sorted by name. */
export function packageChanges(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): PackageChange[] {
  const changes: PackageChange[] = [];
  for (const [name, from] of before) {
    const to = after.get(name);
    if (to === undefined) changes.push({ name, from, to: null });
    else if (to !== from) changes.push({ name, from, to });
  }
  for (const [name, to] of after) if (!before.has(name)) changes.push({ name, from: null, to });
  return changes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
