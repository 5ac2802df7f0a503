import { readFileSync } from 'node:fs';
import { parse as parseToml, TomlError } from 'smol-toml';
import { wholeNumber } from './numbers.js';
import cron from 'node-cron';
import { SysprimeError, errnoOf, messageOf } from '../errors.js';
import { KEYS, cloneDefaults, type Config } from './schema.js';
import { parseWindow } from './windows.js';

export const SYSTEM_CONFIG = '/etc/sysprime/sysprime.toml';

/**
 * Resolve which file to read: an explicit --config wins, then SYSPRIME_CONFIG,
 * then the system file if it exists. An explicit file that is missing is an
 * error; a missing system file just means "defaults".
 */
export function loadConfig(explicit?: string, env: NodeJS.ProcessEnv = process.env): Config {
  const chosen = explicit ?? env['SYSPRIME_CONFIG'];
  if (chosen !== undefined && chosen !== '') return parseConfigFile(chosen, true);
  return parseConfigFile(SYSTEM_CONFIG, false);
}

function parseConfigFile(path: string, required: boolean): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (!required && errnoOf(err) === 'ENOENT') return cloneDefaults();
    throw new SysprimeError('CONFIG', `cannot read configuration ${path}: ${messageOf(err)}`, {
      hint: 'check the path given with --config or SYSPRIME_CONFIG',
    });
  }
  const config = parseConfigText(text, path);
  return config;
}

export function parseConfigText(text: string, source: string): Config {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text, { integersAsBigInt: true }) as Record<string, unknown>;
  } catch (err) {
    const line = err instanceof TomlError ? ` (line ${err.line})` : '';
    throw new SysprimeError('CONFIG', `${source}${line}: not valid TOML: ${firstLine(messageOf(err))}`);
  }
  const config = cloneDefaults();
  config.source = source;
  for (const [key, value] of flatten(doc)) {
    const spec = KEYS[key];
    if (!spec) {
      const near = suggest(key, Object.keys(KEYS));
      throw new SysprimeError('CONFIG', `${source}: unknown key '${key}'`, {
        hint: near ? `did you mean '${near}'? See sysprime.toml(5)` : 'see sysprime.toml(5) for the keys',
      });
    }
    spec.set(config, checkValue(key, value, spec.kind, source));
  }
  if (config.reboot.policy === 'window' && config.reboot.windows.length === 0) {
    throw new SysprimeError('CONFIG', `${source}: reboot.policy = "window" needs reboot.windows`, { hint: 'add windows = ["Sat,Sun 02:00-05:00"] under [reboot]' });
  }
  if (config.fleet.after.includes(config.fleet.group)) {
    throw new SysprimeError('CONFIG', `${source}: fleet.after names this machine's own group "${config.fleet.group}"`, { hint: 'after lists the groups that go before this one' });
  }
  return config;
}

function checkValue(key: string, value: unknown, kind: (typeof KEYS)[string]['kind'], source: string): unknown {
  const bad = (want: string) =>
    // Integers are read as bigint (see 'int'), also inside arrays: JSON cannot show those.
    new SysprimeError('CONFIG', `${source}: '${key}' must be ${want}, not ${typeof value === 'bigint' ? String(value) : JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))}`, {
      hint: 'see sysprime.toml(5)',
    });
  switch (kind.t) {
    case 'string':
      if (typeof value !== 'string' || value.includes('\0')) throw bad('a string without NUL');
      // eslint-disable-next-line no-control-regex
      if (kind.oneLine === true && /[\x00-\x1f\x7f]/.test(value)) throw bad('one line without control characters');
      return value;
    case 'path':
      // A NUL cannot be in a path: the system call would refuse it later, as a crash.
      if (typeof value !== 'string' || !value.startsWith('/') || value.includes('\0')) throw bad('an absolute path');
      return value;
    case 'paths':
      if (kind.rulesSafe === true) {
        // They become subtree lines of the drift rules: a blank, quote, backslash or wildcard would change what the line means.
        if (!Array.isArray(value) || !value.every((p) => typeof p === 'string' && /^(\/[^/\s"'\\*?[\]!{}]+)+$/.test(p) && !p.split('/').some((c) => c === '.' || c === '..'))) {
          throw bad('a list of absolute paths such as ["/data", "/var/lib/app"] (no blanks, quotes, wildcards, "." or "..", no trailing /)');
        }
        return [...(value as string[])];
      }
      if (!Array.isArray(value) || !value.every((p) => typeof p === 'string' && p.startsWith('/') && !p.split('/').includes('..') && !p.includes('\0'))) {
        throw bad('a list of absolute paths');
      }
      return [...(value as string[])];
    case 'enum':
      if (typeof value !== 'string' || !kind.values.includes(value)) throw bad(`one of ${kind.values.join(', ')}`);
      return value;
    case 'int': {
      // Integers are parsed as bigint, so a float (2.9, 1e3, 5.0) or a string is never taken for one.
      const n = typeof value === 'bigint' ? wholeNumber(value, kind) : undefined;
      if (n === undefined) throw bad(`a whole number from ${kind.min} to ${kind.max}`);
      return n;
    }
    case 'bool':
      if (typeof value !== 'boolean') throw bad('true or false');
      return value;
    case 'cron':
      if (typeof value !== 'string' || !isCron(value)) throw bad('a cron expression (5 or 6 fields) or "off"');
      return value;
    case 'windows': {
      if (!Array.isArray(value) || !value.every((w) => typeof w === 'string')) throw bad('a list of windows such as ["Sat,Sun 02:00-05:00"]');
      return (value as string[]).map((w) => {
        const parsed = parseWindow(w);
        if (typeof parsed === 'string') throw new SysprimeError('CONFIG', `${source}: '${key}': window "${w}" does not parse: ${parsed}`, { hint: 'see sysprime.toml(5)' });
        return parsed;
      });
    }
    case 'urls':
      if (!Array.isArray(value) || value.length === 0 || !value.every((u) => typeof u === 'string' && /^https?:\/\/[^\s/]+:\d+\/?$/.test(u))) {
        throw bad('a list of endpoints such as ["http://10.0.0.1:2379"]');
      }
      return [...(value as string[])];
    case 'units':
      // Passed to systemctl as arguments: a leading '-' would be read as an option.
      if (!Array.isArray(value) || !value.every((u) => typeof u === 'string' && /^[A-Za-z0-9:_.@\\-]+$/.test(u) && !u.startsWith('-'))) {
        throw bad('a list of unit names such as ["nginx.service"]');
      }
      return [...(value as string[])];
    case 'group': {
      // They become parts of etcd keys: a '/' would reach into another group's keys.
      const ok = (g: unknown) => typeof g === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(g);
      if (kind.list === true ? !Array.isArray(value) || !value.every(ok) : !ok(value)) {
        throw bad(`${kind.list === true ? 'a list of names' : 'a name'} of letters, digits, '.', '_' and '-' (at most 63)`);
      }
      return Array.isArray(value) ? [...(value as string[])] : value;
    }
    case 'paths':
      // They become subtree lines of the drift rules: a blank, quote, backslash or wildcard would change what the line means.
      if (!Array.isArray(value) || !value.every((p) => typeof p === 'string' && /^(\/[^/\s"'\\*?[\]!{}]+)+$/.test(p) && !p.split('/').some((c) => c === '.' || c === '..'))) {
        throw bad('a list of absolute paths such as ["/data", "/var/lib/app"] (no blanks, quotes, wildcards, "." or "..", no trailing /)');
      }
      return value;
  }
}

export function isCron(expr: string): boolean {
  return expr === 'off' || cron.validate(expr);
}

function* flatten(obj: Record<string, unknown>, prefix = ''): Generator<[string, unknown]> {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date)) {
      if (prefix) {
        yield [key, v]; // nested tables deeper than one level are never valid
        continue;
      }
      yield* flatten(v as Record<string, unknown>, key);
    } else {
      yield [key, v];
    }
  }
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

/** The closest key by edit distance, if close enough to be a typo. */
function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return bestD <= Math.max(2, Math.floor(word.length / 4)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}
