/**
 * Comparing a file on the ESP with its source, and the ESP's free space:
 * what decides whether a kernel is copied again. The copies themselves go
 * through the durable writer (src/os/durable.ts).
 */
import { createHash } from 'node:crypto';
import { statSync, statfsSync, createReadStream } from 'node:fs';
import { errnoOf } from '../errors.js';

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Same size and same sha256: the copy on the ESP is current. */
export async function sameContent(a: string, b: string): Promise<boolean> {
  let sa: number;
  let sb: number;
  try {
    sa = statSync(a).size;
    sb = statSync(b).size;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw err;
  }
  if (sa !== sb) return false;
  return (await sha256Of(a)) === (await sha256Of(b));
}

/** Bytes free for writing on the filesystem of `path`. */
export function freeBytes(path: string): number {
  const s = statfsSync(path);
  return Number(s.bavail) * Number(s.bsize);
}
