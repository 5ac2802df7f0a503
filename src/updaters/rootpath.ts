/**
 * Paths inside a target tree. An updater writes only below its root, and a
 * tree being built may contain symlinks that point anywhere (absolute links
 * are meant for the tree's own `/`), so every path we write through is
 * checked component by component instead of trusting the kernel to resolve it.
 */
import { lstat } from 'node:fs/promises';
import { posix, resolve, sep } from 'node:path';
import { SysprimeError, errnoOf } from '../errors.js';

/** A relative path that stays below its root: no `..`, no `.`, no empty parts. */
export function isCleanRelative(rel: string): boolean {
  if (rel.length === 0 || rel.startsWith('/') || rel.endsWith('/') || rel.includes('\0')) return false;
  return rel.split('/').every((part) => part.length > 0 && part !== '.' && part !== '..');
}

export function joinInside(root: string, rel: string): string {
  if (!isCleanRelative(rel)) {
    throw new SysprimeError('REFUSED', `path ${JSON.stringify(rel)} would leave the tree ${root}`, {
      hint: 'paths in a package must be relative, without "." or ".." components',
    });
  }
  return resolve(root, ...rel.split('/'));
}

/**
 * Refuses when any existing parent of `rel` below `root` is not a real
 * directory (a symlink could lead the write out of the tree). Missing parents
 * are fine: the caller creates them. Returns the absolute path.
 */
export async function safeInside(root: string, rel: string): Promise<string> {
  const target = joinInside(root, rel);
  const parts = rel.split('/');
  let current = root;
  for (const part of parts.slice(0, -1)) {
    current = current + (current.endsWith(sep) ? '' : sep) + part;
    try {
      const st = await lstat(current);
      if (st.isSymbolicLink()) {
        throw new SysprimeError('REFUSED', `${current} is a symlink; sysprime does not write through it`, {
          hint: `replace the symlink with a directory in the tree, or drop ${posix.join(...parts)} from the package`,
        });
      }
      if (!st.isDirectory()) {
        throw new SysprimeError('REFUSED', `${current} is not a directory, so ${target} cannot be written`);
      }
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return target;
      throw err;
    }
  }
  return target;
}
