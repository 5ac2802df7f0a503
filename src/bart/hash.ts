/**
 * Hashing one file's contents with large sequential reads into one reused
 * buffer: a small file costs open, one read and close; a large one is fed
 * to the hash in 1 MiB chunks (xxhash-wasm slows down on giant inputs).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { createHash } from 'node:crypto';
import xxhash from 'xxhash-wasm';
import type { HashAlgorithm } from './types.js';

export const CHUNK = 1 << 20;

type XX = Awaited<ReturnType<typeof xxhash>>;
let xx: XX | undefined;

export async function loadHashers(): Promise<void> {
  xx ??= await xxhash();
}

export function hex64(v: bigint): string {
  return v.toString(16).padStart(16, '0');
}

/** xxh64 of any amount of bytes, fed in CHUNK pieces (one call on a large buffer would grow the WASM memory). */
export function xxh64Hex(data: Uint8Array): string {
  if (xx === undefined) throw new Error('loadHashers() must run before hashing with xxh64');
  if (data.length <= CHUNK) return hex64(xx.h64Raw(data));
  const h = xx.create64();
  for (let i = 0; i < data.length; i += CHUNK) h.update(data.subarray(i, Math.min(data.length, i + CHUNK)));
  return hex64(h.digest());
}

/** Digest of a byte buffer (used for long xattr values). */
export function hashBytes(alg: HashAlgorithm, data: Uint8Array): string {
  if (alg === 'xxh64') {
    if (xx === undefined) throw new Error('loadHashers() must run before hashing with xxh64');
    return hex64(xx.h64Raw(data));
  }
  return createHash(alg).update(data).digest('hex');
}

/** A digest fed piece by piece: a file too large to hold, streamed through src/os/file-data.ts. */
export interface Hasher {
  update(data: Uint8Array): void;
  digest(): string;
}

/** The same digest hashBytes gives for the bytes fed, in order. */
export function createHasher(alg: HashAlgorithm): Hasher {
  if (alg === 'xxh64') {
    if (xx === undefined) throw new Error('loadHashers() must run before hashing with xxh64');
    const h = xx.create64();
    return {
      update(data) {
        for (let i = 0; i < data.length; i += CHUNK) h.update(data.subarray(i, Math.min(data.length, i + CHUNK)));
      },
      digest: () => hex64(h.digest()),
    };
  }
  const h = createHash(alg);
  return {
    update(data) {
      h.update(data);
    },
    digest: () => h.digest('hex'),
  };
}

/**
 * Hash the file at `path` (a string or raw bytes). `buf` is the caller's
 * reusable buffer of at least CHUNK bytes. Throws the fs error as is.
 */
export function hashFile(alg: HashAlgorithm, path: string | Buffer, buf: Buffer): string {
  const fd = openSync(path, 'r');
  try {
    let n = readSync(fd, buf, 0, buf.length, null);
    if (n < buf.length) {
      // Whole file in one read: the common case on an OS tree.
      return hashBytes(alg, buf.subarray(0, n));
    }
    if (alg === 'xxh64') {
      const h = xx!.create64();
      while (n > 0) {
        h.update(buf.subarray(0, n));
        n = readSync(fd, buf, 0, buf.length, null);
      }
      return hex64(h.digest());
    }
    const h = createHash(alg);
    while (n > 0) {
      h.update(buf.subarray(0, n));
      n = readSync(fd, buf, 0, buf.length, null);
    }
    return h.digest('hex');
  } finally {
    closeSync(fd);
  }
}
