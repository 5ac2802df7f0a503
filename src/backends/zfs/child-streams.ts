/**
 * The send streams of an environment's child datasets (zsys), one after
 * the other in one part of an export, each framed so that each `zfs
 * receive` is given exactly its own stream: a receive stops at its
 * stream's end record, but whatever the pipe had already taken past it
 * would be lost to the next one. Each stream is a run of frames (a 4-byte
 * big-endian length and that many bytes) ended by a frame of length 0.
 */
import { PassThrough, Transform, type Writable } from 'node:stream';
import { SysprimeError } from '../../errors.js';
import { runStreaming } from '../../process/run.js';

/** Longer than any frame `sendFramed` writes (a pipe's read is at most a few hundred KiB). */
const MAX_FRAME = 1 << 24;

function damaged(why: string): SysprimeError {
  return new SysprimeError('REFUSED', `the stream of child datasets is not whole: ${why}`, { hint: 'export the environment again; nothing was imported' });
}

/** `zfs send` of each snapshot into `out` (not ended), each framed and ended by a frame of length 0. */
export async function sendFramed(snapshots: readonly string[], out: NodeJS.WritableStream): Promise<void> {
  for (const snapshot of snapshots) {
    const framer = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        const len = Buffer.alloc(4);
        len.writeUInt32BE(chunk.length);
        done(null, Buffer.concat([len, chunk]));
      },
    });
    framer.pipe(out as Writable, { end: false });
    try {
      await runStreaming('zfs', ['send', snapshot], { stdout: framer });
    } finally {
      framer.end();
    }
    // Every frame of this stream is in `out` before its end mark.
    if (!framer.readableEnded) await new Promise<void>((resolve) => framer.once('end', () => resolve()));
    await new Promise<void>((resolve, reject) => out.write(Buffer.alloc(4), (err) => (err ? reject(err) : resolve())));
  }
}

/** Reads the framed streams `sendFramed` wrote, one at a time, from one input. */
export class FramedStreams {
  private buf: Buffer = Buffer.alloc(0);
  private readonly chunks: AsyncIterator<Buffer>;

  constructor(input: NodeJS.ReadableStream) {
    this.chunks = (input as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  /** Whether `n` bytes are buffered, reading on for them; false when the input ends first. */
  private async have(n: number): Promise<boolean> {
    while (this.buf.length < n) {
      const next = await this.chunks.next();
      if (next.done === true) return false;
      this.buf = this.buf.length === 0 ? next.value : Buffer.concat([this.buf, next.value]);
    }
    return true;
  }

  /** The next stream's bytes into `out`, which is ended after them; REFUSED when the input ends inside it. */
  async copyNext(out: Writable): Promise<void> {
    for (;;) {
      if (!(await this.have(4))) throw damaged('it ends before the stream of a child dataset it names');
      const len = this.buf.readUInt32BE(0);
      if (len > MAX_FRAME) throw damaged('a frame is longer than any sysprime writes');
      if (!(await this.have(4 + len))) throw damaged('it is cut short inside the stream of a child dataset');
      const frame = this.buf.subarray(4, 4 + len);
      this.buf = this.buf.subarray(4 + len);
      if (len === 0) {
        out.end();
        return;
      }
      if (!out.write(frame)) {
        // The receive reads no more once it failed: its input is destroyed then, and this copy stops.
        await new Promise<void>((resolve) => {
          out.once('drain', resolve);
          out.once('close', resolve);
        });
        if (out.destroyed) throw new SysprimeError('BACKEND', 'the receive of a child dataset stopped reading its stream');
      }
    }
  }

  /** Whether every stream was read: nothing follows the last. */
  async atEnd(): Promise<boolean> {
    return !(await this.have(1));
  }
}

/**
 * `zfs receive` of the next framed stream of `from` into `target`. Whichever
 * fails first says why: a receive that fails stops the copy, a stream cut
 * short ends the receive's input.
 */
export async function receiveFramed(from: FramedStreams, receiveArgs: readonly string[]): Promise<void> {
  const input = new PassThrough();
  let failure: unknown = null;
  const fail = (err: unknown): void => {
    failure ??= err;
    input.destroy();
  };
  await Promise.all([runStreaming('zfs', receiveArgs, { stdin: input, wholeStdin: true }).catch(fail), from.copyNext(input).catch(fail)]);
  if (failure !== null) throw failure;
}
