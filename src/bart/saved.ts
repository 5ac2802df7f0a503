/**
 * `bart create` as the command runs it: a manifest as bytes (ready to be
 * written to a file) and its version 2 index, made incrementally from a
 * saved manifest when one is given.
 *
 * With `previousFile` (and no `sign`: a signed manifest hashes every file,
 * since the index that would let it copy digests is not signed), the saved
 * manifest and its index (`FILE.idx`) are
 * checked to belong together and to have been made with the same rules,
 * hash and options; then unchanged entries are copied as bytes
 * (incremental.ts); a signature line at its end (signed.ts) is left out, and
 * the index is always of the manifest without it. Anything else falls back, never silently to a wrong
 * manifest: an index that is missing, version 1, truncated, foreign or made
 * with other options means a full walk (digests still reused from the
 * parsed manifest when its index can vouch for them), with a warning
 * saying why.
 */
import { readFileSync } from 'node:fs';
import { SysprimeError, errnoOf, messageOf } from '../errors.js';
import { createManifest, rootPrefix, type CreateOptions } from './create.js';
import { formatManifestBytes } from './format.js';
import { createIncremental } from './incremental.js';
import { RECORD, R_CTIME_MS, R_DEV, R_INO, R_LINE, R_MTIME_MS, R_SIZE, R_STATE, R_WALK, STATE_COMPLETE, STATE_INCOMPLETE, STATE_NO_STAT, decodeIndex, encodeIndex, isIndex2, optionsDigest } from './index-file.js';
import { applyIndex, parseManifest } from './parse.js';
import { defaultRules } from './rules.js';
import { appendSignature, splitSignature } from './signed.js';
import type { PrivateSigningKey } from '../signing/keys.js';
import type { Manifest } from './types.js';

export interface CreateTextOptions extends Omit<CreateOptions, 'previous'> {
  /** A manifest file written by an earlier create of the same tree, with its index beside it (`FILE.idx`). */
  previousFile?: string;
  /** Also return the index (for `FILE.idx`). */
  index?: boolean;
  /** Sign the manifest: its last line is then the signature (signed.ts), and the index is of the signed bytes. */
  sign?: PrivateSigningKey | undefined;
}

export interface CreateTextResult {
  text: Buffer;
  /** The version 2 index of `text`, when asked for. */
  index?: Buffer;
  status: 0 | 1;
  warnings: string[];
  hashed: number;
  reused: number;
  /** 'copied': unchanged lines copied from the previous manifest; 'walked': a full create. */
  mode: 'copied' | 'walked';
}

function readPrevious(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new SysprimeError('USAGE', `cannot read manifest ${file}: ${messageOf(err)}`, { hint: 'check the --previous path' });
  }
}

function readIndexFile(file: string): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw new SysprimeError('USAGE', `cannot read index ${file}: ${messageOf(err)}`, { hint: 'check the permissions of the index beside the --previous manifest' });
  }
}

export async function createManifestText(opts: CreateTextOptions): Promise<CreateTextResult> {
  const warnings: string[] = [];
  const warn = (msg: string) => {
    warnings.push(msg);
    opts.onWarning?.(msg);
  };
  const hash = opts.hash ?? 'xxh64';
  const rules = opts.rules ?? defaultRules();
  const lineOptions = { rules, hash, noContents: opts.noContents === true, acl: opts.acl !== false };
  const options = await optionsDigest(lineOptions);
  let previous: Manifest | undefined;
  // The text as written (signed when asked); the index is of the manifest without its signature line, as a later --previous reads it.
  const finish = async (made: Buffer, records: Float64Array, indexOptions: string): Promise<{ text: Buffer; index?: Buffer }> => ({
    text: opts.sign === undefined ? made : appendSignature(made, opts.sign),
    ...(opts.index ? { index: await encodeIndex(records, made, indexOptions) } : {}),
  });

  if (opts.previousFile !== undefined && opts.sign !== undefined) {
    // A signature vouches for every digest: none may come from a cache whose inode and time index is not signed
    // (rewriting it would carry an old digest over a changed file into a newly signed manifest).
    opts.onWarning?.(`${opts.previousFile}: not used, as a signed manifest hashes every file (its index is not signed); walking the whole tree`);
  } else if (opts.previousFile !== undefined) {
    const file = opts.previousFile;
    // A signature line is not an entry: copying it would leave a stale signature in the middle of the new manifest.
    const text = splitSignature(readPrevious(file)).signed;
    const indexData = readIndexFile(`${file}.idx`);
    let why: string | undefined;
    if (opts.files !== undefined) why = 'a list of files (-I) is catalogued as given';
    else if (indexData === undefined) why = `${file}.idx does not exist`;
    else if (!isIndex2(indexData)) why = `${file}.idx is not a version 2 index`;
    if (why === undefined) {
      try {
        const index = await decodeIndex(indexData!, `${file}.idx`, text);
        if (index.options !== options) why = `${file} was made with other rules or options`;
        else {
          const made = await createIncremental({ prefix: rootPrefix(opts.root ?? '/'), rules, hash, noContents: lineOptions.noContents, acl: lineOptions.acl, text, index, warn: (m) => opts.onWarning?.(m) });
          if (made !== undefined) {
            return {
              ...(await finish(made.text, made.records, options)),
              status: made.status,
              warnings: made.warnings,
              hashed: made.hashed,
              reused: made.records.length / RECORD - made.hashed,
              mode: 'copied',
            };
          }
          why = 'the root or a subtree has a name find cannot be given';
        }
      } catch (err) {
        if (!(err instanceof SysprimeError) || err.code !== 'MANIFEST') throw err;
        why = err.message;
      }
    }
    // A notice, not a problem with the tree: the status stays what the walk says.
    opts.onWarning?.(`${file}: unchanged entries not copied (${why}); walking the whole tree`);
    previous = parseManifest(text, file);
    if (indexData !== undefined) {
      try {
        applyIndex(previous, indexData, `${file}.idx`);
      } catch (err) {
        if (!(err instanceof SysprimeError)) throw err;
        // An index that does not fit its manifest vouches for nothing: every file is hashed.
        for (const e of previous.entries) delete e.stat;
      }
    }
  }

  if (previous === undefined && opts.files === undefined) {
    // A full create is the incremental one with nothing to copy from: find walks, the workers only hash.
    const empty = { count: 0, records: new Float64Array(0), options };
    const made = await createIncremental({ prefix: rootPrefix(opts.root ?? '/'), rules, hash, noContents: lineOptions.noContents, acl: lineOptions.acl, text: Buffer.alloc(0), index: empty, warn });
    if (made !== undefined) {
      return {
        ...(await finish(made.text, made.records, options)),
        status: warnings.length > 0 ? 1 : 0,
        warnings,
        hashed: made.hashed,
        reused: 0,
        mode: 'walked',
      };
    }
  }
  const { previousFile: _p, index: _i, sign: _s, ...createOpts } = opts;
  const result = await createManifest({ ...createOpts, ...(previous === undefined ? {} : { previous }), onWarning: warn });
  const entries = result.manifest.entries;
  const records = new Float64Array(entries.length * RECORD);
  const text = formatManifestBytes(result.manifest, records, RECORD, R_LINE);
  if (opts.index) {
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const o = i * RECORD;
      const st = e.stat;
      records[o + R_SIZE] = e.size;
      records[o + R_WALK] = -1;
      if (st === undefined) records[o + R_STATE] = STATE_NO_STAT;
      else {
        records[o + R_DEV] = st.dev;
        records[o + R_INO] = st.ino;
        records[o + R_MTIME_MS] = st.mtimeMs;
        records[o + R_CTIME_MS] = st.ctimeMs;
        records[o + R_STATE] = result.incomplete.has(e) ? STATE_INCOMPLETE : STATE_COMPLETE;
      }
    }
  }
  return {
    ...(await finish(text, records, opts.files === undefined ? options : 'files')),
    status: warnings.length > 0 ? 1 : 0,
    warnings,
    hashed: result.hashed,
    reused: result.reused,
    mode: 'walked',
  };
}
