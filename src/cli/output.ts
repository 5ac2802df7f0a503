/** How the CLI shows things: aligned tables for people, JSON for scripts, report files. */
import { lstatSync, type Stats } from 'node:fs';
import { ioFailure, SysprimeError } from '../errors.js';
import { replaceFile } from '../os/durable.js';

/** What a non-regular file is, for a message. */
function kindOf(st: Stats): string {
  if (st.isBlockDevice()) return 'a block device';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Refuse a name given with -o that is not a regular file (or absent): run
 * before the work, so a refused report costs nothing and records nothing.
 * A symbolic link is refused, never followed: root writing where a link
 * someone planted points would replace any file of the system. A device,
 * FIFO or socket is refused too: `-o /dev/sda` would write a manifest over
 * a disk, and what is written into a FIFO is not a report anyone keeps.
 */
export function checkOutputFile(file: string): void {
  const st = lstatSync(file, { throwIfNoEntry: false });
  if (st === undefined || st.isFile()) return;
  if (st.isSymbolicLink()) {
    throw new SysprimeError('REFUSED', `${file} is a symbolic link; a report is not written through one`, { hint: 'name the file itself, or remove the link' });
  }
  if (st.isDirectory()) throw new SysprimeError('IO', `${file} is a directory`, { hint: 'name a file, not a directory' });
  throw new SysprimeError('IO', `${file} is ${kindOf(st)}; -o writes a regular file only`, {
    hint: 'name a regular file, or leave -o out to write to standard output',
  });
}

/**
 * Write a file named with -o (drift's report, bart's manifest and index),
 * after checkOutputFile. A report can hold what only root may read, so it
 * is created 0600 (under a fresh temporary name, O_EXCL and O_NOFOLLOW, then
 * renamed over the name: never half-written, and whatever was put at the
 * name since the check, a link or a device node, is replaced, never
 * written through).
 */
export function writeOutputFile(file: string, text: string | Buffer): void {
  try {
    checkOutputFile(file);
    // A report may hold what only root should read: 0600, written by the one durable writer
    // (a new O_EXCL|O_NOFOLLOW temporary name, fsync, rename, fsync of the directory).
    replaceFile(file, typeof text === 'string' ? Buffer.from(text) : text, { mode: 0o600 });
  } catch (err) {
    // Name the file the user gave, not the temporary one, and say what the errno means
    // (the durable writer keeps the system call's error as the cause).
    const raw = err instanceof SysprimeError && (err.code === 'IO' || err.code === 'NO_SPACE') && err.cause !== undefined ? err.cause : err;
    throw ioFailure(raw, file) ?? err;
  }
}

export function formatBytes(n: number | null): string {
  if (n === null) return '-';
  const units = ['B', 'K', 'M', 'G', 'T'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v}B` : `${v < 10 ? v.toFixed(1) : Math.round(v)}${units[u]}`;
}

export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function useColor(stream: NodeJS.WriteStream = process.stdout): boolean {
  return stream.isTTY === true && process.env['NO_COLOR'] === undefined && process.env['TERM'] !== 'dumb';
}
