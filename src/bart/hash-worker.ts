/**
 * Worker thread body: hashes batches of files and posts the digests back.
 * Paths arrive as byte strings; a failure is returned as its message so the
 * main thread can report it and list the file with contents '-'.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CHUNK, hashFile, loadHashers } from './hash.js';
import { toFsPath, type HashAlgorithm } from './types.js';

export interface HashBatch {
  id: number;
  paths: string[];
}

export interface HashResult {
  id: number;
  /** Digest, or null when the file could not be read. */
  digests: (string | null)[];
  errors: (string | null)[];
}

const alg = (workerData as { alg: HashAlgorithm }).alg;
const buf = Buffer.allocUnsafe(CHUNK);

await loadHashers();
parentPort!.on('message', (batch: HashBatch) => {
  const digests: (string | null)[] = new Array(batch.paths.length);
  const errors: (string | null)[] = new Array(batch.paths.length);
  for (let i = 0; i < batch.paths.length; i++) {
    try {
      digests[i] = hashFile(alg, toFsPath(batch.paths[i]!), buf);
      errors[i] = null;
    } catch (err) {
      digests[i] = null;
      errors[i] = err instanceof Error ? err.message : String(err);
    }
  }
  const result: HashResult = { id: batch.id, digests, errors };
  parentPort!.postMessage(result);
});
parentPort!.postMessage({ ready: true });
