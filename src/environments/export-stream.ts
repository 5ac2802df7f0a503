/**
 * The file `sysprime export` writes and `sysprime import` reads: a first
 * line naming the format, a line of JSON saying what it holds (the backend,
 * the environment's name, generation and description), then the
 * filesystem's send stream (`zfs send`, `btrfs send`) cut in frames, each a
 * 4-byte big-endian length and that many bytes, a frame of length 0, and a
 * last line of JSON with the number of bytes and their SHA-256. Format 2
 * holds more than one send stream, in the order its header's `parts`
 * lists them, each ended by a frame of length 0; the trailer counts them
 * all: `pristine` (the pristine snapshot of the environment's generation,
 * whole; the environment's stream is then an increment from it),
 * `environment`, `nested` (its own nested Btrfs subvolumes or ZFS child
 * datasets, one whole stream after the other (ZFS's each framed again
 * inside the part: backends/zfs/child-streams.ts), in the order the header's
 * `nested` lists their paths; `unmounted` names the child datasets among
 * them that are never mounted), `boot-pristine` (the boot half of the
 * pristine snapshot, whole, where /boot is a dataset of a ZFS boot pool),
 * `boot` (that boot dataset; an increment from its half when that went
 * first). A stream
 * cut short (a disk full, a copy interrupted) or changed is told apart
 * from a whole one even where the filesystem's receive would accept what
 * it got, before the environment it makes is given its name.
 */
import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import type { BackendKind } from '../config/schema.js';
import { SEND_PARTS, type SendPart } from '../backends/types.js';
import { SysprimeError } from '../errors.js';

export const MAGIC = 'SYSPRIME-EXPORT 1';
/** Format 2 differs only by its parts: an earlier sysprime refuses it at its first line. */
export const MAGIC_PARTS = 'SYSPRIME-EXPORT 2';

const EXPORT_PARTS = SEND_PARTS;
type ExportPart = SendPart;

/** What the export holds: format 1 holds the environment alone. */
export function partsOf(header: ExportHeader): readonly ExportPart[] {
  return header.parts ?? ['environment'];
}

export interface ExportHeader {
  backend: BackendKind;
  environment: string;
  generation: number;
  description: string | null;
  exported: string;
  /** Format 2: the send streams it holds, in EXPORT_PARTS's order, `environment` always among them. */
  parts?: ExportPart[];
  /** With the part `nested`: the nested subvolumes or child datasets it holds, in its order (paths below the root). */
  nested?: string[];
  /** ZFS: the child datasets of `nested` that are never mounted (canmount=off). */
  unmounted?: string[];
}

const FRAME = 1 << 20;

export interface ExportWriter {
  /** The send stream of the part being written (the header's first). */
  payload: PassThrough;
  /** Ends the part being written (a frame of length 0) and gives the next one, `part`, which must be the header's next. */
  next(part: ExportPart): Promise<PassThrough>;
  /** Ends the last part, waits for every frame, then writes the trailer. */
  finish(): Promise<void>;
}

/** Frames the payload written to each part into `out`. */
export function exportWriter(out: NodeJS.WritableStream, header: ExportHeader): ExportWriter {
  const parts = partsOf(header);
  if (!parts.includes('environment') || parts.some((p, i) => i > 0 && EXPORT_PARTS.indexOf(p) <= EXPORT_PARTS.indexOf(parts[i - 1]!))) throw new Error(`not parts of an export: ${parts.join(', ')}`);
  const hash = createHash('sha256');
  let bytes = 0;
  const write = (b: Buffer | string): Promise<void> =>
    new Promise((resolve, reject) => {
      out.write(b, (err) => (err ? reject(err) : resolve()));
    });
  let chain = write(`${header.parts !== undefined ? MAGIC_PARTS : MAGIC}\n${JSON.stringify(header)}\n`);
  const part = (): PassThrough => {
    const payload = new PassThrough();
    payload.on('data', (chunk: Buffer) => {
      for (let at = 0; at < chunk.length; at += FRAME) {
        const piece = chunk.subarray(at, at + FRAME);
        hash.update(piece);
        bytes += piece.length;
        const len = Buffer.alloc(4);
        len.writeUInt32BE(piece.length);
        chain = chain.then(() => write(Buffer.concat([len, piece])));
      }
      // Read no faster than the file or pipe takes it: the stream may be many times the memory.
      payload.pause();
      void chain.then(() => payload.resume(), () => payload.resume());
    });
    return payload;
  };
  const end = async (payload: PassThrough): Promise<void> => {
    if (!payload.writableEnded) payload.end();
    // What the payload still buffers becomes frames before the end mark.
    if (!payload.readableEnded) await new Promise<void>((resolve) => payload.once('end', () => resolve()));
    await chain;
    await write(Buffer.alloc(4));
  };
  let at = 0;
  const w: ExportWriter = {
    payload: part(),
    async next(name) {
      if (parts[at + 1] !== name) throw new Error(`the export's next part is ${parts[at + 1] ?? 'none'}, not ${name}`);
      await end(w.payload);
      at++;
      w.payload = part();
      return w.payload;
    },
    async finish() {
      if (at !== parts.length - 1) throw new Error(`the export's part ${parts[at + 1]} was never written`);
      await end(w.payload);
      await write(`${JSON.stringify({ bytes, sha256: hash.digest('hex') })}\n`);
    },
  };
  return w;
}

export interface ExportReader {
  /** The header, once read; refuses what is not a sysprime export. */
  header: Promise<ExportHeader>;
  /** Each part's send stream, unframed, filled in the header's order (read each to its end before the next); a part the header does not list is ended at once. */
  parts: Record<ExportPart, PassThrough>;
  /** Resolves once the whole stream was read and checked; rejects when it is cut short or changed. */
  verified: Promise<void>;
}

function damaged(why: string): SysprimeError {
  return new SysprimeError('REFUSED', `the stream is not a whole sysprime export: ${why}`, {
    hint: 'copy the file again, or export the environment again; nothing was imported',
  });
}

export function exportReader(input: Readable): ExportReader {
  const parts = Object.fromEntries(EXPORT_PARTS.map((p) => [p, new PassThrough()])) as Record<ExportPart, PassThrough>;
  // The parts the header lists, in order; the frames go to the first until its end mark, and so on.
  let listed: ExportPart[] = [];
  let current = parts.environment;
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
      if (current.destroyed) throw new Error('the receiving side went away');
      if (!current.write(b)) {
        await new Promise<void>((r) => {
          current.once('drain', () => r());
          current.once('close', () => r());
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
            const magic = buf.subarray(0, first).toString('latin1');
            if (magic !== MAGIC && magic !== MAGIC_PARTS) {
              if (/^SYSPRIME-EXPORT \d+$/.test(magic)) {
                throw new SysprimeError('REFUSED', `the stream is in a format this sysprime does not know (${magic.slice('SYSPRIME-EXPORT '.length)})`, { hint: 'import it with the sysprime that wrote it, or a later one' });
              }
              throw damaged('it does not start with a sysprime export header');
            }
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
            if ((h.parts !== undefined) !== (magic === MAGIC_PARTS)) throw damaged('its header and its format disagree about its parts');
            listed = [...partsOf(h)];
            if (!listed.includes('environment') || listed.some((p, i) => !EXPORT_PARTS.includes(p) || (i > 0 && EXPORT_PARTS.indexOf(p) <= EXPORT_PARTS.indexOf(listed[i - 1]!)))) {
              throw damaged(`its header lists parts this sysprime does not know or in another order: ${listed.join(', ')}`);
            }
            const nested = h.nested ?? [];
            if (!Array.isArray(nested) || nested.length > 0 !== listed.includes('nested') || nested.some((n) => typeof n !== 'string' || n === '' || n.startsWith('/') || n.split('/').some((c) => c === '' || c === '.' || c === '..'))) {
              throw damaged('its list of nested subvolumes does not match its parts, or names a path outside the environment');
            }
            if (h.unmounted !== undefined && (!Array.isArray(h.unmounted) || h.unmounted.some((n) => !nested.includes(n)))) throw damaged('its list of unmounted child datasets names one it does not hold');
            for (const p of EXPORT_PARTS) if (!listed.includes(p)) parts[p].end();
            current = parts[listed.shift()!];
            headerDone(h);
            buf = buf.subarray(second + 1);
            state = 'frames';
          } else if (state === 'frames') {
            if (buf.length < 4) break;
            const len = buf.readUInt32BE(0);
            if (len === 0) {
              buf = buf.subarray(4);
              current.end();
              const following = listed.shift();
              if (following !== undefined) current = parts[following];
              else state = 'trailer';
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
    } catch (err) {
      headerFailed(err);
      // Closed, not failed: the reason is `verified`'s, and an 'error' event nobody listens to would end the process.
      for (const p of EXPORT_PARTS) parts[p].destroy();
      throw err;
    }
  })();
  verified.catch(() => undefined);
  return { header, parts, verified };
}
