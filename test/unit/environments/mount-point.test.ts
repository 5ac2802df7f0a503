/** Where `mount` refuses to mount without --force: checked without mounting anything. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mountPointProblem } from '../../../src/environments/lifecycle.js';

test('directories of the running system are refused, through a link too', () => {
  for (const p of ['/', '/usr', '/etc', '/opt', '/var', '/boot', '/usr/lib', '/etc/ssh']) {
    if (mountPointProblem(p) === null) assert.fail(`${p} accepted`);
    assert.match(mountPointProblem(p)!, /is a directory of the running system|is not a directory/, p);
  }
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-mp-'));
  try {
    symlinkSync('/usr', join(dir, 'to-usr'));
    assert.match(mountPointProblem(join(dir, 'to-usr'))!, /\(\/usr\) is a directory of the running system/);
    assert.equal(mountPointProblem(join(dir, 'new')), null, 'a directory that does not exist yet is made');
    mkdirSync(join(dir, 'empty'));
    assert.equal(mountPointProblem(join(dir, 'empty')), null);
    writeFileSync(join(dir, 'empty', 'x'), '');
    assert.match(mountPointProblem(join(dir, 'empty'))!, /is not empty/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
