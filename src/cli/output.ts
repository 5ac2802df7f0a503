/** How the CLI shows things: aligned tables for people, JSON for scripts, report files. */
import { closeSync, constants, lstatSync, openSync, writeSync } from 'node:fs';
import { ioFailure, SysprimeError } from '../errors.js';
import { replaceFile } from '../os/durable.js';

function writeAll(fd: number, data: Buffer): void {
  for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
}

/**
 * Write a file named with -o (drift's report, bart's manifest and index).
 * A report can hold what only root may read, so a new file is created 0600
 * (under a fresh temporary name, O_EXCL and O_NOFOLLOW, then renamed over
 * the name: never half-written). A symbolic link at the name is refused,
 * never followed: root writing where a link someone planted points would
 * replace any file of the system. A device or a FIFO (`/dev/null`) is
 * written into, not replaced.
 */
export function writeOutputFile(file: string, text: string | Buffer): void {
  try {
    writeOutput(file, text);
  } catch (err) {
    // Name the file the user gave, not the temporary one, and say what the errno means
    // (the durable writer keeps the system call's error as the cause).
    const raw = err instanceof SysprimeError && (err.code === 'IO' || err.code === 'NO_SPACE') && err.cause !== undefined ? err.cause : err;
    throw ioFailure(raw, file) ?? err;
  }
}

function writeOutput(file: string, text: string | Buffer): void {
  const data = typeof text === 'string' ? Buffer.from(text) : text;
  const st = lstatSync(file, { throwIfNoEntry: false });
  if (st?.isSymbolicLink()) {
    throw new SysprimeError('REFUSED', `${file} is a symbolic link; a report is not written through one`, { hint: 'name the file itself, or remove the link' });
  }
  if (st?.isDirectory()) throw new SysprimeError('IO', `${file} is a directory`, { hint: 'name a file, not a directory' });
  if (st !== undefined && !st.isFile()) {
    // O_NOFOLLOW: a link swapped in since the lstat is refused by the kernel (ELOOP).
    const fd = openSync(file, constants.O_WRONLY | constants.O_NOFOLLOW);
    try {
      writeAll(fd, data);
    } finally {
      closeSync(fd);
    }
    return;
  }
  // A report may hold what only root should read: 0600, written by the one durable writer
  // (a new O_EXCL|O_NOFOLLOW temporary name, fsync, rename, fsync of the directory).
  replaceFile(file, data, { mode: 0o600 });
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
