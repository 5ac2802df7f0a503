/**
 * Faults a machine meets: a pool too small for the update, a state database
 * that is damaged or that another process holds. Each ends with a clear
 * message, the right exit status, nothing half-done, nothing deleted.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { sysprime } from '../../fixtures/cli.js';

for (const kind of KINDS) {
  describe(`a pool too small for the update (${kind})`, () => {
    let s: Scratch;
    let dir: string;
    const sp = (...args: string[]) => sysprime(args, { config: s.config });
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sysprime-enospc-'));
      const script = join(dir, 'update.sh');
      // The update needs more room than the pool has.
      writeFileSync(script, '#!/bin/sh\nset -e\ndd if=/dev/zero of="$SYSPRIME_ROOT/usr/huge" bs=1M count=2048 status=none\n');
      chmodSync(script, 0o755);
      s = await makeScratch(kind, `[update]\nmethod = "command"\ncommand = "${script}"\nchroot = false\n`);
      assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
    });
    after(async () => {
      await s?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    test('staging fails cleanly, says which pool is full and how much is free, and undoes itself', async () => {
      const r = await sp('stage');
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /is full: [\d.]+ [MG]iB free of [\d.]+ [MG]iB/);
      assert.match(r.stderr, /sysprime prune/);
      const envs = (await sp('--json', 'list')).json<{ name: string }[]>();
      assert.deepEqual(envs.map((e) => e.name), ['base'], 'the half-made environment is gone');
      // And the room it took is given back: a small update now fits.
      writeFileSync(join(dir, 'update.sh'), '#!/bin/sh\necho 2 > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"\n');
      const ok = await sp('stage');
      assert.equal(ok.code, 0, ok.stderr);
    });
  });
}

describe('the state database', () => {
  let s: Scratch;
  const sp = (...args: string[]) => sysprime(args, { config: s.config });
  before(async () => {
    s = await makeScratch('btrfs');
    assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
  });
  after(async () => {
    await s?.cleanup();
  });

  test('a damaged database is refused with a clear message and never deleted or rewritten', async () => {
    const db = join(s.stateDir, 'sysprime.db');
    const saved = join(s.stateDir, 'saved.db');
    copyFileSync(db, saved);
    try {
      const bytes = readFileSync(db);
      // Overwrite the middle of the file: the header stays, the pages are garbage.
      bytes.fill(0x5a, 4096, Math.min(bytes.length, 4096 * 3));
      writeFileSync(db, bytes);
      rmSync(`${db}-wal`, { force: true });
      rmSync(`${db}-shm`, { force: true });
      const damaged = readFileSync(db);
      const r = await sp('list');
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /state database .*sysprime\.db is unusable/);
      assert.match(r.stderr, /never deletes it/);
      assert.ok(existsSync(db));
      assert.ok(readFileSync(db).equals(damaged), 'left exactly as it was');
    } finally {
      copyFileSync(saved, db);
    }
    assert.equal((await sp('list')).code, 0);
  });

  test('a database another process holds for writing: a verb that would change something refuses before it does', { timeout: 120_000 }, async () => {
    const db = join(s.stateDir, 'sysprime.db');
    // Another process (an admin's sqlite3 shell, say) with a write transaction open.
    const holder = spawn(
      process.execPath,
      ['-e', `const D = require(${JSON.stringify(createRequire(import.meta.url).resolve('better-sqlite3'))}); const d = new D(${JSON.stringify(db)}); d.exec('BEGIN IMMEDIATE'); console.log('held'); setInterval(() => {}, 1000);`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout.on('data', (d: Buffer) => d.toString().includes('held') && resolve());
        holder.on('exit', () => reject(new Error('the lock holder died')));
      });
      const r = await sp('create', 'while-locked');
      assert.equal(r.code, 6, r.stderr);
      assert.match(r.stderr, /state database .*sysprime\.db is locked by another process/);
      assert.doesNotMatch(r.stderr, /^\s+at /m, 'one clear line, no stack trace');
    } finally {
      holder.kill('SIGKILL');
    }
    const envs = await sp('--json', 'list');
    assert.equal(envs.code, 0, envs.stderr);
    assert.ok(!envs.json<{ name: string }[]>().some((e) => e.name === 'while-locked'), 'nothing was created');
  });

  test('a database from a newer sysprime is refused, not downgraded', async () => {
    const db = new Database(join(s.stateDir, 'sysprime.db'));
    const before = (db.prepare('SELECT version FROM schema_version').get() as { version: number }).version;
    db.prepare('UPDATE schema_version SET version = 999').run();
    db.close();
    try {
      const r = await sp('list');
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /schema version 999, newer than this sysprime knows/);
    } finally {
      const d = new Database(join(s.stateDir, 'sysprime.db'));
      d.prepare('UPDATE schema_version SET version = ?').run(before);
      d.close();
    }
  });

  test('a state directory that cannot be created is named', async () => {
    const bad = join(s.stateDir, 'bad.toml');
    // Below a plain file: no directory can be made there.
    const below = join(s.config, 'state');
    writeFileSync(bad, readFileSync(s.config, 'utf8').replace(/dir = ".*"/, `dir = "${below}"`));
    const r = await sysprime(['list'], { config: bad });
    assert.equal(r.code, 3, r.stderr);
    assert.ok(r.stderr.includes(`cannot create the state directory ${below}`), r.stderr);
    assert.match(r.stderr, /\[state\] dir/);
  });
});
