/**
 * The file `sysprime export` writes and `sysprime import` reads: a first
 * line naming the format, a line of JSON saying what it holds (the backend,
 * the environment's name, generation and description), then the
 * filesystem's send stream (`zfs send`, `btrfs send`) cut in frames, each a
 * 4-byte big-endian length and that many bytes, a frame of length 0, and a
 * last line of JSON with the number of bytes and their SHA-256. A stream
 * cut short (a disk full, a copy interrupted) or changed is told apart
 * from a whole one even where the filesystem's receive would accept what
 * it got, before the environment it makes is given its name.
 */
import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import type { BackendKind } from '../config/schema.js';
import { SysprimeError } from '../errors.js';

export const MAGIC = 'SYSPRIME-EXPORT 1';

export interface ExportHeader {
  backend: BackendKind;
  environment: string;
  generation: number;
  description: string | null;
  exported: string;
}

const FRAME = 1 << 20;

/** Frames the payload written to `payload` into `out`; `finish()` ends it, waits for every frame, then writes the end and the trailer. */
export function exportWriter(out: NodeJS.WritableStream, header: ExportHeader): { payload: PassThrough; finish(): Promise<void> } {
  const hash = createHash('sha256');
  let bytes = 0;
  const write = (b: Buffer | string): Promise<void> =>
    new Promise((resolve, reject) => {
      out.write(b, (err) => (err ? reject(err) : resolve()));
    });
  let chain = write(`${MAGIC}\n${JSON.stringify(header)}\n`);
  const payload = new PassThrough();
  payload.on('data', (chunk: Buffer) => {
    for (let at = 0; at < chunk.length; at += FRAME) {
      const part = chunk.subarray(at, at + FRAME);
      hash.update(part);
      bytes += part.length;
      const len = Buffer.alloc(4);
      len.writeUInt32BE(part.length);
      chain = chain.then(() => write(Buffer.concat([len, part])));
    }
    // Read no faster than the file or pipe takes it: the stream may be many times the memory.
    payload.pause();
    void chain.then(() => payload.resume(), () => payload.resume());
  });
  return {
    payload,
    async finish() {
      if (!payload.writableEnded) payload.end();
      // What the payload still buffers becomes frames before the end mark.
      if (!payload.readableEnded) await new Promise<void>((resolve) => payload.once('end', () => resolve()));
      await chain;
      await write(Buffer.concat([Buffer.alloc(4), Buffer.from(`${JSON.stringify({ bytes, sha256: hash.digest('hex') })}\n`)]));
    },
  };
}

export interface ExportReader {
  /** The header, once read; refuses what is not a sysprime export. */
  header: Promise<ExportHeader>;
  /** The filesystem's send stream, unframed. */
  payload: PassThrough;
  /** Resolves once the whole stream was read and checked; rejects when it is cut short or changed. */
  verified: Promise<void>;
}

function damaged(why: string): SysprimeError {
  return new SysprimeError('REFUSED', `the stream is not a whole sysprime export: ${why}`, {
    hint: 'copy the file again, or export the environment again; nothing was imported',
  });
}

export function exportReader(input: Readable): ExportReader {
  const payload = new PassThrough();
  let headerDone!: (h: ExportHeader) => void;
  let headerFailed!: (e: unknown) => void;
  const header = new Promise<ExportHeader>((resolve, reject) => {
    headerDone = resolve;
    headerFailed = reject;
  });
  header.catch(() => undefined);
  const verified = (async () => {
    const hash = createHash('sha256');
    let bytes = 0;
    let buf = Buffer.alloc(0);
    let state: 'head' | 'frames' | 'trailer' = 'head';
    let trailer: { bytes: number; sha256: string } | null = null;
    const push = async (b: Buffer): Promise<void> => {
      hash.update(b);
      bytes += b.length;
      if (payload.destroyed) throw new Error('the receiving side went away');
      if (!payload.write(b)) {
        await new Promise<void>((r) => {
          payload.once('drain', () => r());
          payload.once('close', () => r());
        });
      }
    };
    try {
      for await (const chunk of input) {
        buf = Buffer.concat([buf, chunk as Buffer]);
        for (;;) {
          if (state === 'head') {
            const first = buf.indexOf(10);
            if (first < 0 && buf.length > MAGIC.length + 1) throw damaged('it does not start with a sysprime export header');
            if (first < 0) break;
            if (buf.subarray(0, first).toString('latin1') !== MAGIC) throw damaged('it does not start with a sysprime export header');
            const second = buf.indexOf(10, first + 1);
            if (second < 0) {
              if (buf.length > 1 << 20) throw damaged('its header does not end');
              break;
            }
            let h: ExportHeader;
            try {
              h = JSON.parse(buf.subarray(first + 1, second).toString('utf8')) as ExportHeader;
            } catch {
              throw damaged('its header is not JSON');
            }
            if ((h.backend !== 'zfs' && h.backend !== 'btrfs') || typeof h.environment !== 'string' || !Number.isSafeInteger(h.generation)) throw damaged('its header lacks the backend, name or generation');
            headerDone(h);
            buf = buf.subarray(second + 1);
            state = 'frames';
          } else if (state === 'frames') {
            if (buf.length < 4) break;
            const len = buf.readUInt32BE(0);
            if (len === 0) {
              buf = buf.subarray(4);
              state = 'trailer';
              continue;
            }
            if (len > FRAME) throw damaged('a frame is longer than any sysprime writes');
            if (buf.length < 4 + len) break;
            const part = buf.subarray(4, 4 + len);
            buf = buf.subarray(4 + len);
            await push(part);
          } else {
            const end = buf.indexOf(10);
            if (end < 0) break;
            try {
              trailer = JSON.parse(buf.subarray(0, end).toString('utf8')) as { bytes: number; sha256: string };
            } catch {
              throw damaged('its last line is not JSON');
            }
            buf = buf.subarray(end + 1);
            break;
          }
        }
        if (trailer !== null) break;
      }
      if (state === 'head') throw damaged('it ends before its header');
      if (trailer === null) throw damaged(`it ends after ${bytes} bytes, before its end mark: it was cut short`);
      if (trailer.bytes !== bytes || trailer.sha256 !== hash.digest('hex')) throw damaged('its content does not match its checksum');
      payload.end();
    } catch (err) {
      headerFailed(err);
      // Closed, not failed: the reason is `verified`'s, and an 'error' event nobody listens to would end the process.
      payload.destroy();
      throw err;
    }
  })();
  verified.catch(() => undefined);
  return { header, payload, verified };
}
