/**
 * Reading the EFI variables systemd-boot shares with the OS (the Boot Loader
 * Interface). They appear under efivarfs as `<Name>-<vendor guid>`: four
 * bytes of attributes, then a NUL-terminated UTF-16LE string.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errnoOf } from '../errors.js';

export const LOADER_GUID = '4a67b082-0a4c-41cf-b6c7-440b29bb8c4f';
export const EFIVARS_DIR = '/sys/firmware/efi/efivars';

/** Decode an efivarfs file's bytes (attributes + UTF-16LE string). */
function decodeEfiString(bytes: Buffer): string {
  const body = bytes.subarray(4);
  const text = body.subarray(0, body.length - (body.length % 2)).toString('utf16le');
  const nul = text.indexOf('\0');
  return nul >= 0 ? text.slice(0, nul) : text;
}

/** The inverse of decodeEfiString (tests build fake efivars with it). */
export function encodeEfiString(text: string, attributes = 0x07): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32LE(attributes);
  return Buffer.concat([head, Buffer.from(`${text}\0`, 'utf16le')]);
}

export function readLoaderVariable(dir: string, name: string): string | null {
  try {
    return decodeEfiString(readFileSync(join(dir, `${name}-${LOADER_GUID}`)));
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return null;
    throw err;
  }
}
