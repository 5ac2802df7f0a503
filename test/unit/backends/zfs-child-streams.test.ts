/**
 * The framing of child datasets' send streams in one part of an export:
 * each stream comes out whole and alone, a cut or a frame no sysprime
 * writes is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { FramedStreams } from '../../../src/backends/zfs/child-streams.js';
import { isSysprimeError } from '../../../src/errors.js';

function frames(...streams: Buffer[][]): Buffer {
  const out: Buffer[] = [];
  for (const pieces of streams) {
    for (const p of pieces) {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(p.length);
      out.push(len, p);
    }
    out.push(Buffer.alloc(4));
  }
  return Buffer.concat(out);
}

async function collect(from: FramedStreams): Promise<string> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  await from.copyNext(out);
  return Buffer.concat(chunks).toString();
}

/** The bytes in pieces of 3, so that lengths and frames straddle the input's chunks. */
function trickle(b: Buffer): Readable {
  const pieces: Buffer[] = [];
  for (let at = 0; at < b.length; at += 3) pieces.push(b.subarray(at, at + 3));
  return Readable.from(pieces);
}

test('each stream whole and alone, however the input is cut into chunks', async () => {
  const data = frames([Buffer.from('first '), Buffer.from('stream')], [Buffer.from('second')], []);
  for (const input of [Readable.from([data]), trickle(data)]) {
    const f = new FramedStreams(input);
    assert.equal(await collect(f), 'first stream');
    assert.equal(await collect(f), 'second');
    assert.equal(await collect(f), '', 'an empty stream is one too');
    assert.equal(await f.atEnd(), true);
  }
});

test('more than the header names is seen; a cut and a frame no sysprime writes are refused', async () => {
  const two = new FramedStreams(Readable.from([frames([Buffer.from('a')], [Buffer.from('b')])]));
  await collect(two);
  assert.equal(await two.atEnd(), false);
  const whole = frames([Buffer.from('abcdef')]);
  for (const cut of [whole.subarray(0, 6), whole.subarray(0, whole.length - 4), whole.subarray(0, 2)]) {
    await assert.rejects(collect(new FramedStreams(Readable.from([cut]))), (e: unknown) => isSysprimeError(e, 'REFUSED') && /not whole/.test((e as Error).message));
  }
  const huge = Buffer.alloc(8);
  huge.writeUInt32BE(0xffffffff);
  await assert.rejects(collect(new FramedStreams(Readable.from([huge]))), /longer than any sysprime writes/);
});

test('a receive that stops reading stops the copy, whether it is waited on or not; waits leave no listener behind', async () => {
  const big = Buffer.alloc(64 * 1024, 1);
  const data = frames([big, big, big, big]);
  // Nobody reads: the first write fills it, the copy waits for a drain that a destroy replaces.
  const stuck = new PassThrough({ highWaterMark: 1024 });
  const copying = new FramedStreams(Readable.from([data])).copyNext(stuck);
  await new Promise((r) => setImmediate(r));
  stuck.destroy();
  await assert.rejects(copying, /stopped reading its stream/);
  // Destroyed while the copy waited for input: the next frame is not written into it.
  const input = new PassThrough();
  const gone = new PassThrough();
  const waiting = new FramedStreams(input).copyNext(gone);
  input.write(data.subarray(0, 100));
  await new Promise((r) => setImmediate(r));
  gone.destroy();
  input.end(data.subarray(100));
  await assert.rejects(waiting, /stopped reading its stream/);
  // Read slowly: every wait for a drain removes its listeners.
  const slow = new PassThrough({ highWaterMark: 1024 });
  let most = 0;
  slow.on('data', () => {
    most = Math.max(most, slow.listenerCount('drain'), slow.listenerCount('close') - 1);
    slow.pause();
    setImmediate(() => slow.resume());
  });
  await new FramedStreams(Readable.from([frames(Array.from({ length: 40 }, () => big))])).copyNext(slow);
  assert.ok(most <= 2, `at most one wait's listeners at a time (saw ${most})`);
});
