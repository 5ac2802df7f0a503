/**
 * Which package owns a path, from dpkg's database inside the environment
 * (`var/lib/dpkg/info/*.list`). Only the paths asked about are kept, so a
 * full database costs one read of its lists.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export async function packageOwners(root: string, paths: readonly string[]): Promise<Map<string, string>> {
  const owners = new Map<string, string>();
  if (paths.length === 0) return owners;
  const wanted = new Set(paths);
  const dir = join(root, 'var/lib/dpkg/info');
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.list'));
  } catch {
    return owners; // not a dpkg system
  }
  for (const name of names) {
    const pkg = name.slice(0, -'.list'.length).replace(/:[^:]+$/, '');
    let text: string;
    try {
      text = readFileSync(join(dir, name), 'latin1');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      if (line.length > 0 && wanted.has(line) && !owners.has(line)) owners.set(line, pkg);
    }
  }
  return owners;
}
