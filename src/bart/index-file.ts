/**
 * The saved index of a manifest file (version 2, `FILE.idx`): what an
 * incremental create needs to copy an unchanged entry's line from the
 * previous manifest as bytes, without parsing it.
 *
 *   # sysprime bart index 2 <entries> <manifest bytes> <manifest xxh64> <options>   (padded to 8 bytes)
 *   then per entry, in manifest order, RECORD little-endian float64s:
 *   dev ino size mtimeMs ctimeMs line-offset state walk-position
 *
 * `state` is 0 for an entry read completely, 1 for one that was not (its
 * digest or link target could not be read, or its ACL or xattr tool
 * failed: it must be read again), 2 for one without stat numbers.
 * `walk-position` is the entry's place in find's output when the manifest
 * was made (-1 when not known), so the next walk can find an entry's slot
 * by following the old order instead of by looking its name up. The
 * manifest's own length and digest bind the index to the bytes it was
 * written with; `options` is a digest of what decides the text of a line
 * (rules, hash, -n, --no-acl), so a manifest made another way is never
 * copied from. Version 1 (text, `dev ino mtimeMs ctimeMs` per line) is still
 * read by applyIndex for digest reuse.
 */
import { endianness } from 'node:os';
import { SysprimeError } from '../errors.js';
import { loadHashers, xxh64Hex } from './hash.js';
import type { Rules } from './rules.js';
import type { HashAlgorithm } from './types.js';

export const INDEX2_MAGIC = '# sysprime bart index 2 ';
/** Numbers per entry. */
export const RECORD = 8;
export const R_DEV = 0;
export const R_INO = 1;
export const R_SIZE = 2;
export const R_MTIME_MS = 3;
export const R_CTIME_MS = 4;
export const R_LINE = 5;
export const R_STATE = 6;
/** Where the entry came in the walk that made the manifest (-1: not known): the next walk most likely lists it at the same place. */
export const R_WALK = 7;

export const STATE_COMPLETE = 0;
export const STATE_INCOMPLETE = 1;
export const STATE_NO_STAT = 2;

/** Everything that decides what a manifest line says about an unchanged file. */
export interface LineOptions {
  rules: Rules;
  hash: HashAlgorithm;
  noContents: boolean;
  acl: boolean;
}

/** A digest of the options, the same for the same rules whatever their file's layout or comments. */
export async function optionsDigest(o: LineOptions): Promise<string> {
  await loadHashers();
  const rules = o.rules.rules.map((r) => [r.subtree, r.modifiers.map((m) => m.text), r.flags]);
  const text = JSON.stringify({ v: 1, hash: o.hash, n: o.noContents, acl: o.acl, g: o.rules.globalFlags, rules });
  return xxh64Hex(Buffer.from(text, 'latin1'));
}

function bad(source: string, what: string): never {
  throw new SysprimeError('MANIFEST', `${source}: ${what}`, {
    hint: 'the index is written by `bart create --index` with its manifest; make both again, or go without --previous',
  });
}

/** The index file for `records` (RECORD numbers per entry) of the manifest `text`. */
export async function encodeIndex(records: Float64Array, text: Uint8Array, options: string): Promise<Buffer> {
  await loadHashers();
  const count = records.length / RECORD;
  let head = `${INDEX2_MAGIC}${count} ${text.length} ${xxh64Hex(text)} ${options}`;
  head = head.padEnd(Math.ceil((head.length + 1) / 8) * 8 - 1, ' ') + '\n';
  const out = Buffer.allocUnsafe(head.length + records.byteLength);
  out.write(head, 0, 'latin1');
  const view = new Float64Array(out.buffer, out.byteOffset + head.length, records.length);
  view.set(records);
  return out;
}

export interface SavedIndex {
  count: number;
  records: Float64Array;
  options: string;
}

/** Whether `data` starts like a version 2 index (anything else is version 1 or foreign). */
export function isIndex2(data: Uint8Array): boolean {
  return Buffer.from(data.buffer, data.byteOffset, Math.min(data.length, INDEX2_MAGIC.length)).toString('latin1') === INDEX2_MAGIC;
}

/**
 * Read a version 2 index. With `manifest` (the bytes of the manifest file),
 * it must be the index of exactly those bytes. Throws SysprimeError
 * ('MANIFEST') naming what does not fit: foreign, truncated, or written
 * with another manifest.
 */
export async function decodeIndex(data: Buffer, source: string, manifest?: Uint8Array): Promise<SavedIndex> {
  if (!isIndex2(data)) bad(source, 'not a version 2 sysprime bart index');
  if (endianness() !== 'LE') bad(source, 'version 2 indexes are read on little-endian machines only');
  const nl = data.indexOf(0x0a);
  if (nl < 0 || (nl + 1) % 8 !== 0) bad(source, 'malformed first line');
  const fields = data.toString('latin1', INDEX2_MAGIC.length, nl).trim().split(' ');
  const [countText, bytesText, digest, options] = fields;
  const count = Number(countText);
  if (fields.length !== 4 || !Number.isSafeInteger(count) || count < 0 || options === undefined) bad(source, 'malformed first line');
  const size = nl + 1 + count * RECORD * 8;
  if (data.length < size) bad(source, `truncated: ${data.length} bytes, ${size} expected for ${count} entries`);
  if (data.length > size) bad(source, `${data.length - size} bytes after the last entry`);
  if (manifest !== undefined) {
    await loadHashers();
    if (Number(bytesText) !== manifest.length || digest !== xxh64Hex(manifest)) bad(source, 'written with another manifest (length or digest differ)');
  }
  const start = data.byteOffset + nl + 1;
  // A Float64Array needs an 8-byte aligned start: copy when the file's buffer is not.
  const records = start % 8 === 0 ? new Float64Array(data.buffer, start, count * RECORD) : new Float64Array(new Uint8Array(data.buffer, start, count * RECORD * 8).slice().buffer);
  return { count, records, options };
}
