/**
 * A small pool of hashing worker threads. Files are queued in batches (by
 * count and by bytes, so one message carries enough work to hide its cost);
 * each worker has at most two batches in flight so a worker stuck on a big
 * file does not hold back the queue.
 */
import { Worker } from 'node:worker_threads';
import type { HashResult } from './hash-worker.js';
import type { HashAlgorithm } from './types.js';

const BATCH_FILES = 256;
const BATCH_BYTES = 32 << 20;
const IN_FLIGHT = 2;

type Done = (digests: (string | null)[], errors: (string | null)[]) => void;

interface Slot {
  worker: Worker;
  inFlight: number;
}

export class HashPool {
  private readonly slots: Slot[] = [];
  private readonly queue: { id: number; paths: string[] }[] = [];
  private readonly callbacks = new Map<number, Done>();
  private nextId = 0;
  private current: string[] = [];
  private currentBytes = 0;
  private currentDone: ((i: number, digest: string | null, error: string | null) => void)[] = [];
  private idle: (() => void) | undefined;
  private failure: Error | undefined;

  constructor(alg: HashAlgorithm, threads: number) {
    for (let i = 0; i < Math.max(1, threads); i++) {
      const worker = new Worker(new URL('./hash-worker.js', import.meta.url), { workerData: { alg } });
      const slot: Slot = { worker, inFlight: 0 };
      worker.on('message', (msg: HashResult | { ready: true }) => {
        if (!('id' in msg)) return;
        slot.inFlight--;
        const cb = this.callbacks.get(msg.id);
        this.callbacks.delete(msg.id);
        cb?.(msg.digests, msg.errors);
        this.pump();
      });
      worker.on('error', (err) => {
        this.failure = err;
        this.idle?.();
      });
      this.slots.push(slot);
    }
  }

  /** Queue one file; `done` gets its digest (or null and the error message). */
  add(path: string, size: number, done: (digest: string | null, error: string | null) => void): void {
    this.current.push(path);
    this.currentDone.push((_, d, e) => done(d, e));
    this.currentBytes += size;
    if (this.current.length >= BATCH_FILES || this.currentBytes >= BATCH_BYTES) this.flush();
  }

  private flush(): void {
    if (this.current.length === 0) return;
    const id = this.nextId++;
    const dones = this.currentDone;
    this.callbacks.set(id, (digests, errors) => {
      for (let i = 0; i < dones.length; i++) dones[i]!(i, digests[i] ?? null, errors[i] ?? null);
    });
    this.queue.push({ id, paths: this.current });
    this.current = [];
    this.currentDone = [];
    this.currentBytes = 0;
    this.pump();
  }

  private pump(): void {
    for (const slot of this.slots) {
      while (slot.inFlight < IN_FLIGHT && this.queue.length > 0) {
        slot.worker.postMessage(this.queue.shift()!);
        slot.inFlight++;
      }
    }
    if (this.queue.length === 0 && this.callbacks.size === 0) this.idle?.();
  }

  /** Wait until every queued file is hashed. */
  async drain(): Promise<void> {
    this.flush();
    if (this.failure) throw this.failure;
    if (this.callbacks.size === 0) return;
    await new Promise<void>((resolve) => {
      this.idle = resolve;
      this.pump();
    });
    this.idle = undefined;
    if (this.failure) throw this.failure;
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
