import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { exportReader, exportWriter, type ExportHeader } from '../../../src/environments/export-stream.js';
import { isSysprimeError } from '../../../src/errors.js';

const header: ExportHeader = { backend: 'zfs', environment: 'gen-4', generation: 4, description: 'before php 8', exported: '2026-11-22T03:01:02.000Z' };

async function exported(payload: Buffer): Promise<Buffer> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const w = exportWriter(out, header);
  // Written in pieces of odd sizes, some larger than a frame.
  for (let at = 0; at < payload.length; at += 1_500_001) w.payload.write(payload.subarray(at, at + 1_500_001));
  // finish() itself ends the payload: what it still buffers must come before the end mark.
  await w.finish();
  return Buffer.concat(chunks);
}

async function read(bytes: Buffer): Promise<{ header: ExportHeader; payload: Buffer }> {
  const r = exportReader(Readable.from([bytes.subarray(0, 7), bytes.subarray(7)]));
  const parts: Buffer[] = [];
  r.parts.environment.on('data', (c: Buffer) => parts.push(c));
  await r.verified;
  return { header: await r.header, payload: Buffer.concat(parts) };
}

test('what is written is read back whole, header and payload', async () => {
  const payload = randomBytes(3_300_000);
  const back = await read(await exported(payload));
  assert.deepEqual(back.header, header);
  assert.ok(back.payload.equals(payload));
  assert.ok((await read(await exported(Buffer.alloc(0)))).payload.length === 0, 'an empty payload too');
});

test('a stream cut short, changed, or not an export is refused, however it is cut', async () => {
  const whole = await exported(randomBytes(100_000));
  const refused = (e: unknown) => isSysprimeError(e, 'REFUSED');
  for (const cut of [10, 60, 1000, whole.length - 80, whole.length - 1]) await assert.rejects(read(whole.subarray(0, cut)), refused, `cut at ${cut}`);
  const changed = Buffer.from(whole);
  changed.writeUInt8(changed.readUInt8(changed.length - 500) ^ 0xff, changed.length - 500);
  await assert.rejects(read(changed), /checksum/);
  await assert.rejects(read(Buffer.from('hello\nworld\n')), /sysprime export header/);
  await assert.rejects(read(Buffer.from('SYSPRIME-EXPORT 1\n{"backend":"ext4"}\n')), /lacks the backend/);
});

async function exportedWithPristine(pristine: Buffer, environment: Buffer): Promise<Buffer> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const w = exportWriter(out, { ...header, parts: ['pristine', 'environment'] });
  w.payload.write(pristine);
  const env = await w.next('environment');
  env.write(environment);
  await w.finish();
  return Buffer.concat(chunks);
}

async function readBoth(bytes: Buffer): Promise<{ header: ExportHeader; pristine: Buffer; payload: Buffer }> {
  const r = exportReader(Readable.from([bytes.subarray(0, 7), bytes.subarray(7)]));
  const p: Buffer[] = [];
  const e: Buffer[] = [];
  // The pristine part is read to its end before the environment's, as a receive of each in turn does.
  const pristineRead = (async () => {
    for await (const c of r.parts.pristine) p.push(c as Buffer);
    for await (const c of r.parts.environment) e.push(c as Buffer);
  })();
  // A refused stream closes both parts: the reading above ends with it, the reason is `verified`'s.
  pristineRead.catch(() => undefined);
  await r.verified;
  await pristineRead;
  return { header: await r.header, pristine: Buffer.concat(p), payload: Buffer.concat(e) };
}

test('with its pristine state: format 2, both parts read back whole and apart; a plain export is as before, its pristine part empty', async () => {
  const pristine = randomBytes(2_200_000);
  const environment = randomBytes(700_000);
  const bytes = await exportedWithPristine(pristine, environment);
  assert.equal(bytes.subarray(0, 18).toString(), 'SYSPRIME-EXPORT 2\n');
  const back = await readBoth(bytes);
  assert.deepEqual(back.header, { ...header, parts: ['pristine', 'environment'] });
  assert.ok(back.pristine.equals(pristine));
  assert.ok(back.payload.equals(environment));
  const plain = await exported(environment);
  assert.equal(plain.subarray(0, 18).toString(), 'SYSPRIME-EXPORT 1\n');
  const again = await readBoth(plain);
  assert.equal(again.pristine.length, 0);
  assert.ok(again.payload.equals(environment));
  // Cut in the pristine part or the environment's: refused.
  for (const cut of [200, 1_000_000, bytes.length - 700_100, bytes.length - 10]) await assert.rejects(readBoth(bytes.subarray(0, cut)), (e: unknown) => isSysprimeError(e, 'REFUSED'), `cut at ${cut}`);
});

test('a format not known, or a header that disagrees with its format, is refused', async () => {
  await assert.rejects(read(Buffer.from('SYSPRIME-EXPORT 3\n{}\n')), /a format this sysprime does not know \(3\)/);
  const one = Buffer.from(`SYSPRIME-EXPORT 1\n${JSON.stringify({ ...header, parts: ['pristine', 'environment'] })}\n`);
  await assert.rejects(read(one), /header and its format disagree/);
  const two = Buffer.from(`SYSPRIME-EXPORT 2\n${JSON.stringify(header)}\n`);
  await assert.rejects(read(two), /header and its format disagree/);
  for (const parts of [['boot'], ['environment', 'pristine'], ['environment', 'kernel'], ['environment', 'environment']]) {
    await assert.rejects(read(Buffer.from(`SYSPRIME-EXPORT 2\n${JSON.stringify({ ...header, parts })}\n`)), /lists parts this sysprime does not know or in another order/, parts.join(','));
  }
  assert.throws(() => exportWriter(new PassThrough(), { ...header, parts: ['boot', 'environment'] }), /not parts of an export/);
  // The nested subvolumes' paths are where import puts them: never outside the environment, never without their part.
  for (const [parts, nested] of [[['environment', 'nested'], ['srv/../../etc']], [['environment', 'nested'], ['/srv']], [['environment', 'nested'], []], [['environment'], ['srv']], [['environment', 'nested'], ['srv//x']]] as const) {
    await assert.rejects(read(Buffer.from(`SYSPRIME-EXPORT 2\n${JSON.stringify({ ...header, parts, nested })}\n`)), /list of nested subvolumes/, `${parts.join(',')}: ${nested.join(',')}`);
  }
});
