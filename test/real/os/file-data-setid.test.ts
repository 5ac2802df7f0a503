/**
 * A clone (FICLONE) of a set-user-ID or set-group-ID file is never made:
 * libuv sets the target's mode from the source's before sysprime's chown,
 * so a root-owned set-id copy of a user's bytes would exist, reachable in
 * the user's own directory, for that moment. On a real Btrfs filesystem,
 * where an ordinary file is cloned, a set-id one is copied byte by byte.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, constants, fstatSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { copyData } from '../../../src/os/file-data.js';
import { makeBtrfsPool, type BtrfsPool } from '../../fixtures/btrfs-pool.js';

let pool: BtrfsPool | undefined;
before(async () => {
  pool = await makeBtrfsPool();
});
after(async () => {
  await pool?.cleanup();
});

async function copyOf(mode: number, name: string): Promise<{ how: string; modeSeen: number }> {
  const src = join(pool!.top, `${name}.src`);
  const dst = join(pool!.top, `${name}.tmp`);
  writeFileSync(src, randomBytes(2 << 20));
  chmodSync(src, mode);
  const s = openSync(src, constants.O_RDONLY | constants.O_NOFOLLOW);
  const d = openSync(dst, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    const how = await copyData(s, d);
    const modeSeen = fstatSync(d).mode & 0o7777;
    assert.deepEqual(readFileSync(dst), readFileSync(src), 'same bytes');
    return { how, modeSeen };
  } finally {
    closeSync(s);
    closeSync(d);
  }
}

test('an ordinary file is cloned on Btrfs', async () => {
  assert.equal((await copyOf(0o755, 'plain')).how, 'cloned');
});

test('a set-user-ID or set-group-ID file is copied, never cloned, and the copy never carries the set-id bits', async () => {
  for (const [mode, name] of [[0o4755, 'setuid'], [0o2755, 'setgid'], [0o6711, 'both']] as const) {
    const r = await copyOf(mode, name);
    assert.equal(r.how, 'copied', `${name}: not cloned`);
    assert.equal(r.modeSeen & 0o6000, 0, `${name}: no set-id bit on the root-owned copy`);
  }
});
