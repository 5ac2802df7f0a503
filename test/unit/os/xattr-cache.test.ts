/** How many handles one getfattr call reads (src/os/xattr-cache.ts): bounded by the open files allowed, never below 256, never above 4,096. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batchFor } from '../../../src/os/xattr-cache.js';

test('the getfattr batch follows the open files limit within its bounds', () => {
  assert.equal(batchFor(undefined), 256, 'unknown limit: the old batch');
  assert.equal(batchFor(1024), 256);
  assert.equal(batchFor(2048), 512, 'a quarter of the limit');
  assert.equal(batchFor(4096), 1024);
  assert.equal(batchFor(20_000), 4096);
  assert.equal(batchFor(524_288), 4096);
  assert.equal(batchFor(Infinity), 4096, 'unlimited');
});
