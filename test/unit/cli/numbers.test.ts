/**
 * Numbers an admin writes are plain digits only, on the command line and in
 * sysprime.toml: `prune --keep 1e3` was read as 1 and destroyed
 * environments, `--keep 2.9` as 2, `daemon --max-runs abc` never stopped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfigText } from '../../../src/config/load.js';
import { isSysprimeError } from '../../../src/errors.js';
import { wholeNumber } from '../../../src/config/numbers.js';

const BIN = join(fileURLToPath(new URL('../../../../', import.meta.url)), 'bin/sysprime');

test('numeric options refuse anything but plain digits in range, one line, exit 2, before doing anything', () => {
  for (const args of [
    ['prune', '--keep', '1e3'],
    ['prune', '--keep', '2.9'],
    ['prune', '--keep', '0x10'],
    ['prune', '--keep', ' 3'],
    ['prune', '--keep', '0'],
    ['prune', '--keep', '-1'],
    ['prune', '--keep', '1001'],
    ['daemon', '--max-runs', 'abc'],
    ['daemon', '--max-runs', '1.5'],
    ['daemon', '--max-runs', '0'],
  ]) {
    const r = spawnSync(process.execPath, [BIN, '--config', '/nonexistent/sysprime.toml', ...args], { encoding: 'utf8' });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^error: option '--[a-z-]+ <n>' argument '.*' is invalid\. use a whole number from \d+ to \d+, in plain digits\.\n$/, args.join(' '));
  }
});

test('the shared reading: digits only, in range', () => {
  assert.equal(wholeNumber('3', { min: 1, max: 10 }), 3);
  assert.equal(wholeNumber(3n, { min: 1, max: 10 }), 3);
  for (const bad of ['1e3', '2.9', '', '+3', '3 ', '٣', 3, 2.9, 1e3, '99999999999999999999']) assert.equal(wholeNumber(bad, { min: 0, max: Number.MAX_SAFE_INTEGER }), undefined, String(bad));
  assert.equal(wholeNumber('11', { min: 1, max: 10 }), undefined);
});

test('configuration numbers are TOML integers: floats and exponents are refused', () => {
  assert.equal(parseConfigText('[retention]\nkeep = 3\n', 'x.toml').retention.keep, 3);
  for (const v of ['1e3', '2.9', '5.0', '"3"', '-1']) {
    assert.throws(
      () => parseConfigText(`[retention]\nkeep = ${v}\n`, 'x.toml'),
      (err: unknown) => isSysprimeError(err, 'CONFIG') && /'retention\.keep' must be a whole number from 1 to 1000/.test(err.message),
      v,
    );
  }
  assert.throws(() => parseConfigText('[update]\ntimeout = 1.5\n', 'x.toml'), /'update\.timeout' must be a whole number/);
});
