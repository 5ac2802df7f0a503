/**
 * An object is fetched only up to the size its manifest says: a repository
 * that sends more (without end, here) is stopped at the first byte too
 * many, not after update.timeout with the disk filling meanwhile; nothing
 * is left at the destination.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openRepository } from '../../../src/updaters/store/repository.js';

test('an object longer than its manifest says is refused as it arrives', async () => {
  let sent = 0;
  const chunk = Buffer.alloc(1 << 20, 0x61);
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const more = (): void => {
      while (!res.destroyed && sent < 64 * 2 ** 30) {
        sent += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', more);
          return;
        }
      }
    };
    more();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-object-'));
  try {
    const { port } = server.address() as AddressInfo;
    const repo = openRepository(`http://127.0.0.1:${port}/`, { timeoutSeconds: 60, trust: { keys: [], allowUnsigned: false } });
    const started = Date.now();
    await assert.rejects(repo.fetchObject('0'.repeat(64), 10, join(dir, 'object')), /has more bytes than the 10 its manifest says/);
    assert.ok(Date.now() - started < 20_000, 'stopped at once, not at update.timeout');
    assert.ok(sent < 2 ** 30, `stopped early (${sent} bytes sent)`);
    assert.ok(!existsSync(join(dir, 'object')), 'nothing left at the destination');
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
});
