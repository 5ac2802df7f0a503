/** Paths for people: control characters never reach a terminal raw. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { displayPath, printable } from '../../../src/bart/types.js';

test('control characters are escaped: C0, DEL and C1', () => {
  assert.equal(displayPath('/etc/cron.d/backdoor\r\x1b[2Kmodified  motd'), '/etc/cron.d/backdoor\\r\\x1b[2Kmodified  motd');
  assert.equal(displayPath('/a\nb\tc\x7fd\x01'), '/a\\nb\\tc\\x7fd\\x01');
  // U+009B (CSI) as UTF-8 (c2 9b), written as a byte string.
  assert.equal(displayPath('/x\xc2\x9b2J'), '/x\\u009b2J');
  assert.equal(printable('saved as /etc/\x1b[2Jx.sysprime-new'), 'saved as /etc/\\x1b[2Jx.sysprime-new');
});

test('what was shown before is shown the same', () => {
  assert.equal(displayPath('/etc/passwd'), '/etc/passwd');
  assert.equal(displayPath(Buffer.from('/etc/café', 'utf8').toString('latin1')), '/etc/café');
  assert.equal(displayPath('/etc/\xff'), '/etc/\\xff');
});
