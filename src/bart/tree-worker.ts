/**
 * Worker thread body: walks units of the tree and hashes batches of files,
 * whichever the pool sends. Paths arrive as byte strings; a file that cannot
 * be hashed comes back as its error message, so the main thread can report
 * it and list the file with contents '-'.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CHUNK, hashFile, loadHashers } from './hash.js';
import type { Rules } from './rules.js';
import { toFsPath, type HashAlgorithm } from './types.js';
import { WalkSink, walkUnit, type WalkResult, type WalkUnit } from './walk.js';
import { messageOf } from '../errors.js';

export interface TreeWorkerData {
  alg: HashAlgorithm;
  rules: Rules;
  /** The root as a byte string without its trailing slash. */
  prefix: string;
}

export type TreeJob = { id: number; walk: WalkUnit } | { id: number; hash: string[] };

export type TreeReply =
  | { id: number; walk: WalkResult }
  | { id: number; digests: (string | null)[]; errors: (string | null)[] };

/**
 * Entries a walk unit returns before it hands the rest of its directories
 * back: small enough that both threads walk and the main thread takes
 * entries (and sends files to hash) as the walk goes, large enough that
 * messages cost nothing beside the lstat calls (about 120 for 500,000
 * entries).
 */
const UNIT_ENTRIES = 4096;

const { alg, rules, prefix } = workerData as TreeWorkerData;
const buf = Buffer.allocUnsafe(CHUNK);

function hashAll(paths: string[]): { digests: (string | null)[]; errors: (string | null)[] } {
  const digests: (string | null)[] = new Array(paths.length);
  const errors: (string | null)[] = new Array(paths.length);
  for (let i = 0; i < paths.length; i++) {
    try {
      digests[i] = hashFile(alg, toFsPath(paths[i]!), buf);
      errors[i] = null;
    } catch (err) {
      digests[i] = null;
      errors[i] = messageOf(err);
    }
  }
  return { digests, errors };
}

await loadHashers();
parentPort!.on('message', (job: TreeJob) => {
  if ('walk' in job) {
    const sink = new WalkSink(prefix);
    walkUnit(rules, prefix, job.walk, sink, UNIT_ENTRIES);
    const walk = sink.result();
    parentPort!.postMessage({ id: job.id, walk } satisfies TreeReply, [walk.nums.buffer as ArrayBuffer]);
  } else {
    parentPort!.postMessage({ id: job.id, ...hashAll(job.hash) } satisfies TreeReply);
  }
});
