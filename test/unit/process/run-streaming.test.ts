/**
 * runStreaming with `wholeStdin`: a command that succeeds having read only
 * part of its input (as `zfs receive` stops at its stream's end record) is
 * refused, and what it left is read off so that the writer is never left
 * waiting; one that reads everything passes; an input closed by its writer
 * (a stream found damaged) is the writer's to report.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { runStreaming } from '../../../src/process/run.js';
import { isSysprimeError } from '../../../src/errors.js';

test('bytes a command left unread after succeeding refuse it, and are read off', async () => {
  const input = new PassThrough();
  // Written with backpressure, as the export reader writes a part: this write would wait forever if nobody read on.
  const writing = (async () => {
    for (let i = 0; i < 40; i++) if (!input.write(Buffer.alloc(64 * 1024, 1))) await new Promise((r) => input.once('drain', r));
    input.end();
  })();
  await assert.rejects(runStreaming('head', ['-c', '1000'], { stdin: input, wholeStdin: true }), (e: unknown) => isSysprimeError(e, 'REFUSED') && /more bytes followed it/.test((e as Error).message));
  await writing;
});

test('a command that reads its input to the end passes; without wholeStdin what is left is not looked at', async () => {
  await runStreaming('wc', ['-c'], { stdin: Readable.from([Buffer.alloc(300_000)]), wholeStdin: true });
  await runStreaming('head', ['-c', '10'], { stdin: Readable.from([Buffer.alloc(10)]), wholeStdin: true });
  const input = new PassThrough();
  input.end(Buffer.alloc(300_000));
  await runStreaming('head', ['-c', '10'], { stdin: input });
});

test('an input its writer closed before its end is not counted as left over', async () => {
  const input = new PassThrough();
  input.write(Buffer.alloc(200_000));
  setTimeout(() => input.destroy(), 200);
  await runStreaming('head', ['-c', '10'], { stdin: input, wholeStdin: true });
});
