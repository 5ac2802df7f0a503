/**
 * Hashing that starts while the walk is still going: files are handed to
 * the worker threads in batches as find lists them, so on a full create the
 * two cores hash while the third process (find) walks, instead of waiting
 * for the whole listing first. A batch closes at a number of files or of
 * bytes, whichever comes first, so one batch of large files does not keep
 * one worker busy while the other has nothing.
 */
import { availableParallelism } from 'node:os';
import type { Rules } from './rules.js';
import { TreePool } from './tree-pool.js';
import { CHUNK, hashFile } from './hash.js';
import { toFsPath, type HashAlgorithm } from './types.js';
import { messageOf } from '../errors.js';

const BATCH_FILES = 256;
const BATCH_BYTES = 16 << 20;

/** What became of file `j`: its digest, or why it has none. */
export type DigestDone = (j: number, digest: string | undefined, error: string) => void;

export class HashStream {
  /** Started with the first full batch: a small tree is hashed here, without threads to start and stop. */
  private pool: TreePool | undefined;
  private indices: number[] = [];
  private paths: string[] = [];
  private bytes = 0;
  /** Files handed out so far. */
  count = 0;

  constructor(
    private readonly alg: HashAlgorithm,
    private readonly rules: Rules,
    private readonly prefix: string,
    private readonly done: DigestDone,
  ) {}

  /** File `j` of the walk, at `path` relative to the root, of `size` bytes. */
  add(j: number, path: string, size: number): void {
    this.indices.push(j);
    this.paths.push(this.prefix + path);
    this.bytes += size;
    this.count++;
    if (this.indices.length >= BATCH_FILES || this.bytes >= BATCH_BYTES) this.flush();
  }

  /** Wait for every digest; the pool is closed whatever happens. */
  async finish(): Promise<void> {
    try {
      if (this.pool === undefined) this.hashHere();
      else {
        this.flush();
        await this.pool.drain();
      }
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    await this.pool?.close();
  }

  private hashHere(): void {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let b = 0; b < this.indices.length; b++) {
      try {
        this.done(this.indices[b]!, hashFile(this.alg, toFsPath(this.paths[b]!), buf), '');
      } catch (err) {
        this.done(this.indices[b]!, undefined, messageOf(err));
      }
    }
    this.indices = [];
    this.paths = [];
  }

  private flush(): void {
    if (this.indices.length === 0) return;
    // A free worker with nothing queued takes the partial batch: the walk may be slower than the hashing.
    this.pool ??= new TreePool(this.alg, Math.max(1, Math.min(availableParallelism(), 8)), this.rules, this.prefix, () => this.flush(), true);
    const indices = this.indices;
    const paths = this.paths;
    this.indices = [];
    this.paths = [];
    this.bytes = 0;
    this.pool.hash(paths, (digests, errors) => {
      for (let b = 0; b < indices.length; b++) this.done(indices[b]!, digests[b] ?? undefined, errors[b] ?? 'cannot be read');
    });
  }
}
