/**
 * A small pool of worker threads that walk the tree and hash files
 * (tree-worker.ts). Each worker walks units and hashes batches, so the two
 * cores of a small machine are never split between a walking thread and
 * hashing ones: whichever worker is free takes the next job.
 *
 * Hash batches go before walk units (they hold memory until done). Each
 * worker has up to two jobs in flight, so it never waits for a round trip
 * to the main thread between two small units or batches.
 */
import { Worker } from 'node:worker_threads';
import type { Rules } from './rules.js';
import type { TreeJob, TreeReply, TreeWorkerData } from './tree-worker.js';
import type { HashAlgorithm } from './types.js';
import type { WalkResult, WalkUnit } from './walk.js';

const IN_FLIGHT = 2;
/**
 * A young generation large enough that the Stats objects of a directory
 * (four Dates each in node 20) die there instead of being promoted.
 */
const YOUNG_GENERATION_MB = 48;

type HashDone = (digests: (string | null)[], errors: (string | null)[]) => void;
type WalkDone = (result: WalkResult) => void;

interface Slot {
  worker: Worker;
  inFlight: number;
}

export class TreePool {
  private readonly slots: Slot[] = [];
  private readonly hashQueue: TreeJob[] = [];
  private readonly walkQueue: TreeJob[] = [];
  private readonly callbacks = new Map<number, (reply: TreeReply) => void>();
  private nextId = 0;
  private idle: (() => void) | undefined;
  private failure: Error | undefined;

  /** `onStarve` is called when a worker is free and nothing is queued: time to send a partial batch. */
  constructor(alg: HashAlgorithm, threads: number, rules: Rules, prefix: string, private readonly onStarve: () => void = () => {}, hashOnly = false) {
    const workerData: TreeWorkerData = { alg, rules, prefix };
    // Hashing makes little garbage: a pool that only hashes keeps node's default young generation (and its memory).
    const resourceLimits = hashOnly ? {} : { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB };
    for (let i = 0; i < Math.max(1, threads); i++) {
      const worker = new Worker(new URL('./tree-worker.js', import.meta.url), { workerData, resourceLimits });
      const slot: Slot = { worker, inFlight: 0 };
      worker.on('message', (reply: TreeReply) => {
        slot.inFlight--;
        const cb = this.callbacks.get(reply.id);
        this.callbacks.delete(reply.id);
        try {
          cb?.(reply);
        } catch (err) {
          this.failure ??= err as Error;
        }
        this.pump();
      });
      worker.on('error', (err) => {
        this.failure ??= err;
        this.idle?.();
      });
      this.slots.push(slot);
    }
  }

  walk(unit: WalkUnit, done: WalkDone): void {
    const id = this.nextId++;
    this.callbacks.set(id, (r) => done((r as { walk: WalkResult }).walk));
    this.walkQueue.push({ id, walk: unit });
    this.pump();
  }

  hash(paths: string[], done: HashDone): void {
    const id = this.nextId++;
    this.callbacks.set(id, (r) => {
      const h = r as { digests: (string | null)[]; errors: (string | null)[] };
      done(h.digests, h.errors);
    });
    this.hashQueue.push({ id, hash: paths });
    this.pump();
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (slot.inFlight === 0 && this.hashQueue.length === 0 && this.walkQueue.length === 0) this.onStarve();
      while (slot.inFlight < IN_FLIGHT && this.hashQueue.length > 0) {
        slot.worker.postMessage(this.hashQueue.shift()!);
        slot.inFlight++;
      }
      while (slot.inFlight < IN_FLIGHT && this.walkQueue.length > 0) {
        slot.worker.postMessage(this.walkQueue.shift()!);
        slot.inFlight++;
      }
    }
    if (this.callbacks.size === 0) this.idle?.();
  }

  /** Wait until every job, and every job their callbacks added, is done. */
  async drain(): Promise<void> {
    if (this.failure) throw this.failure;
    this.pump();
    if (this.callbacks.size > 0) {
      await new Promise<void>((resolve) => {
        this.idle = resolve;
        this.pump();
      });
      this.idle = undefined;
    }
    if (this.failure) throw this.failure;
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
