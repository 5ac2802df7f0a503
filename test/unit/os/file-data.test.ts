/**
 * File bytes in bounded pieces (src/os/file-data.ts) on the temporary
 * directory's filesystem, where no clone can be made from one file to
 * another it does not share extents with: the copy is the byte copy that
 * keeps holes. Clones are tested on Btrfs in test/real/reintegrate/large-files.test.ts.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fstatSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyData, eachPiece, eachPieceOfPath, PIECE, readWhole, releaseBytes, sameData } from '../../../src/os/file-data.js';

const MiB = 1 << 20;
let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sysprime-file-data-'));
});
after(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

function withFd<T>(path: string, flags: string, fn: (fd: number) => T): T {
  const fd = openSync(path, flags);
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

async function withFdAsync<T>(path: string, flags: string, fn: (fd: number) => Promise<T>): Promise<T> {
  const fd = openSync(path, flags);
  try {
    return await fn(fd);
  } finally {
    closeSync(fd);
  }
}

test('readWhole: the whole file up to the limit, nothing when over it', () => {
  const p = join(dir, 'small');
  writeFileSync(p, Buffer.alloc(1000, 7));
  withFd(p, 'r', (fd) => {
    assert.equal(readWhole(fd, 1000)?.length, 1000);
    assert.equal(readWhole(fd, 999), undefined);
    // A size the caller read before the file grew: what is there now, still bounded by the limit.
    assert.equal(readWhole(fd, 5000, 10)?.length, 1000);
    assert.equal(readWhole(fd, 500, 10), undefined);
  });
  writeFileSync(p, '');
  withFd(p, 'r', (fd) => assert.equal(readWhole(fd, 10)?.length, 0));
});

test('sameData: files and bytes compared piece by piece, a difference in the last byte of a piece found', async () => {
  const data = randomBytes(2 * PIECE + 17);
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  writeFileSync(a, data);
  const other = Buffer.from(data);
  other.writeUInt8(other.readUInt8(PIECE - 1) ^ 1, PIECE - 1);
  writeFileSync(b, other);
  await withFdAsync(a, 'r', async (fa) => {
    assert.equal(await sameData(fa, data), true);
    assert.equal(await sameData(data, fa), true);
    assert.equal(await sameData(fa, other), false);
    assert.equal(await sameData(fa, data.subarray(1)), false, 'another length');
    await withFdAsync(b, 'r', async (fb) => assert.equal(await sameData(fa, fb), false));
    await withFdAsync(a, 'r', async (fa2) => assert.equal(await sameData(fa, fa2), true));
  });
});

test('eachPiece: every byte once, in order, a piece at a time', async () => {
  const data = randomBytes(PIECE + 5);
  const p = join(dir, 'pieces');
  writeFileSync(p, data);
  const seen: Buffer[] = [];
  await withFdAsync(p, 'r', (fd) => eachPiece(fd, (piece) => seen.push(Buffer.from(piece))));
  assert.deepEqual(
    seen.map((s) => s.length),
    [PIECE, 5],
  );
  assert.ok(Buffer.concat(seen).equals(data));
});

test('copyData without a clone: the same bytes, holes kept (the one at the end too), halfway once, private while written', async () => {
  const src = join(dir, 'sparse.src');
  const dst = join(dir, 'sparse.dst');
  const size = 64 * MiB + 123;
  const pieces = [
    { at: 0, data: randomBytes(4096) },
    // Data, a zero block, data, inside one piece: the zero block stays a hole.
    { at: 20 * MiB, data: Buffer.concat([randomBytes(4096), Buffer.alloc(8192), randomBytes(100)]) },
    { at: 40 * MiB - 10, data: randomBytes(20) },
  ];
  withFd(src, 'w', (fd) => {
    ftruncateSync(fd, size);
    for (const p of pieces) writeSync(fd, p.data, 0, p.data.length, p.at);
  });
  writeFileSync(dst, '', { mode: 0o600 });
  let halfway = 0;
  const how = await withFdAsync(src, 'r', (s) =>
    withFdAsync(dst, 'r+', async (d) => {
      const h = await copyData(s, d, () => halfway++);
      assert.equal(fstatSync(d).mode & 0o7777, 0o600);
      return h;
    }),
  );
  assert.equal(how, 'copied');
  assert.equal(halfway, 1);
  assert.equal(statSync(dst).size, size);
  assert.ok(readFileSync(dst).equals(readFileSync(src)));
  // About 20 KiB of data: a few blocks, where writing the zeros would take 64 MiB.
  assert.ok(statSync(dst).blocks * 512 <= 256 * 1024, `${statSync(dst).blocks * 512} bytes allocated`);
});

test('copyData of an empty file and of one that is all data', async () => {
  for (const data of [Buffer.alloc(0), randomBytes(PIECE + 4097)]) {
    const src = join(dir, 'plain.src');
    const dst = join(dir, 'plain.dst');
    writeFileSync(src, data);
    writeFileSync(dst, '');
    await withFdAsync(src, 'r', (s) => withFdAsync(dst, 'r+', (d) => copyData(s, d)));
    assert.ok(readFileSync(dst).equals(data), `${data.length} bytes`);
  }
});

test('eachPieceOfPath: every byte once, in order, a piece at a time; false when there is no file', () => {
  for (const size of [0, 1, PIECE, PIECE + 17, 2 * PIECE]) {
    const path = join(dir, `pieces-${size}`);
    const bytes = randomBytes(size);
    writeFileSync(path, bytes);
    const digest = createHash('sha256');
    const lengths: number[] = [];
    assert.equal(eachPieceOfPath(path, (p) => (lengths.push(p.length), digest.update(p))), true);
    assert.equal(digest.digest('hex'), createHash('sha256').update(bytes).digest('hex'), `${size} bytes`);
    assert.ok(lengths.every((n) => n > 0 && n <= PIECE), `pieces ${lengths.join(',')}`);
  }
  assert.equal(eachPieceOfPath(join(dir, 'none'), () => assert.fail('no piece of a missing file')), false);
  assert.throws(() => eachPieceOfPath(dir, () => undefined), /EISDIR/);
});

test('releaseBytes frees a large buffer read whole, and leaves memory it does not own alone', () => {
  const path = join(dir, 'release');
  writeFileSync(path, randomBytes(2 * PIECE));
  const whole = readFileSync(path);
  const before = process.memoryUsage().arrayBuffers;
  releaseBytes(whole);
  assert.equal(whole.length, 0, 'the bytes are gone');
  assert.ok(process.memoryUsage().arrayBuffers <= before - 2 * PIECE, 'and their memory with them, at once');
  // A view into a larger buffer, a pooled small one and a buffer below a piece are not released.
  const big = Buffer.alloc(2 * PIECE, 1);
  const view = big.subarray(PIECE);
  releaseBytes(view);
  assert.equal(big.length, 2 * PIECE);
  assert.equal(view.length, PIECE);
  const pooled = Buffer.from('small');
  releaseBytes(pooled);
  assert.equal(pooled.toString(), 'small');
  const small = Buffer.alloc(PIECE - 1, 2);
  releaseBytes(small);
  assert.equal(small.length, PIECE - 1);
});
