/**
 * A store repository that trickles (one byte every few seconds, never
 * done) cannot hold staging forever: every request has the update.timeout
 * deadline, the error names it, the staging is undone and its lock released,
 * so the next staging runs.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { sysprime } from '../../fixtures/cli.js';
import { signIndex } from '../../../src/updaters/store/publish.js';
import { publishVersion, testKey } from '../../fixtures/store-repo.js';
import { OS_FILES } from '../../fixtures/os-tree.js';

describe('a trickling store repository (btrfs)', () => {
  let s: Scratch;
  let dir: string;
  let server: Server;
  /** Which requests trickle: none, the index (probe) or the objects (the update step). */
  let trickle: 'none' | 'index' | 'objects' = 'none';
  const open = new Set<ServerResponse>();
  const sp = (...args: string[]) => sysprime(args, { config: s.config });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-store-slow-'));
    const repo = join(dir, 'repo');
    const files: Record<string, string> = {};
    for (const [path, text] of Object.entries(OS_FILES)) if (path.startsWith('usr/')) files[path] = text;
    files['usr/share/doc/demo/NEWS'] = 'new\n';
    await publishVersion(repo, 'demo-os', '1', files);
    // Over http the index must be signed (update.allow_unsigned is for local repositories).
    const key = testKey(dir, 'repo');
    await signIndex(repo, [key.key]);
    server = createServer((req, res) => {
      const rel = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^\/+/, '');
      const file = join(repo, rel);
      if (rel.startsWith('..') || !existsSync(file)) {
        res.writeHead(404).end();
        return;
      }
      const body = readFileSync(file);
      const slow = (trickle === 'index' && rel === 'index.json') || (trickle === 'objects' && rel.startsWith('objects/'));
      if (!slow) {
        res.writeHead(200, { 'content-length': body.length }).end(body);
        return;
      }
      // Headers at once, then one byte every 3 s: always alive, never done.
      res.writeHead(200, { 'content-length': body.length });
      open.add(res);
      let i = 0;
      const timer = setInterval(() => {
        if (i < body.length - 1) res.write(body.subarray(i, ++i));
      }, 3000);
      res.on('close', () => {
        clearInterval(timer);
        open.delete(res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    s = await makeScratch('btrfs', `[update]\nmethod = "store"\nrepository = "http://127.0.0.1:${port}/"\ntimeout = 4\ntrusted_keys = ["${key.publicPath}"]\n`);
    assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
  });
  after(async () => {
    for (const res of open) res.destroy();
    await new Promise<void>((r) => server?.close(() => r()));
    await s?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an object that trickles: the update step fails naming update.timeout, is undone, the lock is released', { timeout: 120_000 }, async () => {
    trickle = 'objects';
    const r = await sp('stage');
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stderr, /did not finish within update\.timeout \(4 s\)/);
    assert.deepEqual((await sp('--json', 'list')).json<{ name: string }[]>().map((e) => e.name), ['base'], 'the clone is undone');

    trickle = 'none';
    const again = await sp('stage');
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /staged generation 1 as "gen-1"/);
  });

  test('an index that trickles: staging stops at the probe, naming update.timeout', { timeout: 120_000 }, async () => {
    trickle = 'index';
    const r = await sp('stage');
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stderr, /index\.json did not finish within update\.timeout \(4 s\)/);
    trickle = 'none';
    const st = await sp('--json', 'status');
    assert.equal(st.code, 0, st.stderr);
    assert.equal(st.json<{ running: unknown }>().running, null, 'no lock left behind');
  });
});
