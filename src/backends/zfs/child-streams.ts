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

/** `zfs send ARGS...` for each of `sends` into `out` (not ended), each stream framed and ended by a frame of length 0. */
export async function sendFramed(sends: readonly (readonly string[])[], out: NodeJS.WritableStream): Promise<void> {
  for (const args of sends) {
    const framer = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        // A frame of length 0 ends a stream: an empty chunk (no pipe gives one) is no frame.
        if (chunk.length === 0) return done();
        const len = Buffer.alloc(4);
        len.writeUInt32BE(chunk.length);
        done(null, Buffer.concat([len, chunk]));
      },
    });
    framer.pipe(out as Writable, { end: false });
    try {
      await runStreaming('zfs', ['send', ...args], { stdout: framer });
    } finally {
      framer.end();
    }
    // Every frame of this stream is in `out` before its end mark.
    if (!framer.readableEnded) await new Promise<void>((resolve) => framer.once('end', () => resolve()));
    await new Promise<void>((resolve, reject) => out.write(Buffer.alloc(4), (err) => (err ? reject(err) : resolve())));
  }
}

function stopped(): SysprimeError {
  return new SysprimeError('BACKEND', 'the receive of a child dataset stopped reading its stream');
}

/** Until `out` takes more, or is destroyed (rejected then); its listeners removed either way. */
function drained(out: Writable): Promise<void> {
  if (out.destroyed) return Promise.reject(stopped());
  return new Promise((resolve, reject) => {
    const done = (): void => {
      out.off('drain', done);
      out.off('close', done);
      if (out.destroyed) reject(stopped());
      else resolve();
    };
    out.on('drain', done);
    out.on('close', done);
  });
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
      // The receive reads no more once it failed: its input is destroyed then (a write to it is dropped, and no
      // 'drain' follows), and this copy stops.
      if (out.destroyed) throw stopped();
      if (!out.write(frame)) await drained(out);
    }
  }

  /** Whether every stream was read: nothing follows the last. */
  async atEnd(): Promise<boolean> {
    return !(await this.have(1));
  }
}

/**
 * `zfs receive` (its arguments `receiveArgs`) of the next framed stream of
 * `from`. Whichever fails first says why: a stream cut short ends the
 * receive's input, so the receive fails and ends too; a receive that fails
 * is not waited on for the copy, which may be waiting for input that is
 * slow to come (its caller destroys that input as it gives up).
 */
export async function receiveFramed(from: FramedStreams, receiveArgs: readonly string[]): Promise<void> {
  const input = new PassThrough();
  let failure: unknown = null;
  const fail = (err: unknown): void => {
    failure ??= err;
    input.destroy();
  };
  const copying = from.copyNext(input).catch(fail);
  // A receive that succeeded read its input to its end (wholeStdin), which the copy ends: the copy is done then.
  await runStreaming('zfs', receiveArgs, { stdin: input, wholeStdin: true }).catch(fail);
  if (failure === null) await copying;
  if (failure !== null) throw failure;
}
