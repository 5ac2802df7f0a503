/**
 * A clock that jumps a year back or forward between (and during) runs, as
 * sysprime sees it: libfaketime (Debian's `faketime`) moves the wall clock
 * of the sysprime process only; the monotonic clock and the filesystems'
 * own times stay real, as after an admin's `date -s` or an NTP correction.
 * Staging, its names, journal recovery, the lock, `create`'s snapshot names,
 * retention and the daemon's schedule all keep working.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { BIN, sysprime } from '../../fixtures/cli.js';

const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

/** The environment that makes sysprime's wall clock `offset` (libfaketime syntax: "-365d"). */
function shifted(offset: string): Record<string, string> {
  return { LD_PRELOAD: LIBFAKETIME, FAKETIME: offset, FAKETIME_DONT_FAKE_MONOTONIC: '1' };
}

interface StageJson {
  kind: string;
  name: string;
  generation: number;
  recovered: string[];
}

describe('libfaketime', () => {
  test('is installed and moves node\'s clock (Debian package faketime)', async () => {
    assert.ok(existsSync(LIBFAKETIME), `${LIBFAKETIME} is missing: apt-get install faketime`);
    const year = new Date().getUTCFullYear();
    const r = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ['-e', 'process.stdout.write(String(new Date().getUTCFullYear()))'], { env: { ...process.env, ...shifted('-365d') } });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('error', reject);
      child.on('close', () => resolve(out));
    });
    assert.equal(Number(r), year - 1);
  });
});

for (const kind of KINDS) {
  describe(`a clock that jumps between stagings (${kind})`, () => {
    let s: Scratch;
    let dir: string;
    const at = (offset: string, ...args: string[]) => sysprime(args, { config: s.config, env: shifted(offset) });
    const names = async () => (await sysprime(['--json', 'list'], { config: s.config })).json<{ name: string }[]>().map((e) => e.name);
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sysprime-clock-'));
      const script = join(dir, 'update.sh');
      writeFileSync(script, '#!/bin/sh\nv=$(cat "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION" 2>/dev/null || echo 1)\necho $((v + 1)) > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"\n');
      chmodSync(script, 0o755);
      s = await makeScratch(kind, `[update]\nmethod = "command"\ncommand = "${script}"\nchroot = false\n[retention]\nkeep = 2\nmin_free_percent = 0\n`);
      assert.equal((await sysprime(['init', '--adopt', s.adopt, '--name', 'base'], { config: s.config })).code, 0);
    });
    after(async () => {
      await s?.cleanup();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('now, a year back, a year forward: each stages the next generation', async () => {
      for (const [offset, generation] of [['+0', 1], ['-365d', 2], ['+365d', 3]] as const) {
        const r = await at(offset, '--json', 'stage');
        assert.equal(r.code, 0, `${offset}: ${r.stderr}`);
        const out = r.json<StageJson>();
        assert.equal(out.kind, 'staged');
        assert.equal(out.generation, generation, `${offset}: generations count up whatever the clock says`);
        assert.equal(out.name, `gen-${generation}`);
      }
      const st = (await at('-365d', '--json', 'status')).json<{ lastStage: { status: string; environment: string } }>();
      assert.equal(st.lastStage.environment, 'gen-3', 'the last staging is the last one made, not the one with the latest clock');
      assert.equal(st.lastStage.status, 'done');
    });

    test('a staging killed in the future is recovered in the past, its lock taken over', async () => {
      const dead = await sysprime(['stage'], { config: s.config, env: { ...shifted('+365d'), SYSPRIME_FAULT_INJECT: 'kill:stage:update:after' } });
      assert.equal(dead.code, -1, 'killed');
      const r = await at('-365d', '--json', 'stage');
      assert.equal(r.code, 0, r.stderr);
      const out = r.json<StageJson>();
      assert.equal(out.recovered.length, 1, JSON.stringify(out.recovered));
      assert.equal(out.kind, 'staged');
    });

    test('create copies an environment in the past and in the future (names with timestamps do not clash)', async () => {
      for (const [offset, name] of [['+365d', 'copy-future'], ['-365d', 'copy-past'], ['-365d', 'copy-past-2']] as const) {
        const r = await at(offset, 'create', name, '--from', 'base');
        assert.equal(r.code, 0, `${offset} ${name}: ${r.stderr}`);
      }
      for (const name of ['copy-future', 'copy-past', 'copy-past-2']) assert.equal((await at('+0', 'destroy', name)).code, 0);
    });

    test('retention keeps the newest by the order they were made, whatever the clock said', async () => {
      // keep = 2: each staging pruned after itself; the default (base) stays anyway, of the rest the two made last.
      const expected = ['base', 'gen-3', 'gen-4'];
      assert.deepEqual((await names()).sort(), expected);
      for (const offset of ['-365d', '+365d']) {
        const r = await at(offset, 'prune');
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual((await names()).sort(), expected, `prune at ${offset}`);
      }
    });
  });
}

describe('the daemon when the clock jumps back a year while it waits', () => {
  let s: Scratch;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-clock-daemon-'));
    const script = join(dir, 'update.sh');
    writeFileSync(script, '#!/bin/sh\nv=$(cat "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION" 2>/dev/null || echo 1)\necho $((v + 1)) > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"\n');
    chmodSync(script, 0o755);
    s = await makeScratch('btrfs', `[update]\nmethod = "command"\ncommand = "${script}"\nchroot = false\n`);
    assert.equal((await sysprime(['init', '--adopt', s.adopt, '--name', 'base'], { config: s.config })).code, 0);
  });
  after(async () => {
    await s?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('keeps its schedule in the new time instead of waiting for the old one to come round', { timeout: 180_000 }, async () => {
    const cfg = join(dir, 'daemon.toml');
    // Ten seconds apart: the jump below lands well before the next run falls due in the old time.
    writeFileSync(cfg, readFileSync(s.config, 'utf8') + '\n[schedule]\nstage = "*/10 * * * * *"\ndrift = "off"\nprune = "off"\nrandom_delay = 0\n');
    // libfaketime reads the offset from this file again every second: the clock jumps while the daemon runs.
    const offsetFile = join(dir, 'faketime');
    writeFileSync(offsetFile, '+0\n');
    const env = { ...process.env, NO_COLOR: '1', LD_PRELOAD: LIBFAKETIME, FAKETIME_TIMESTAMP_FILE: offsetFile, FAKETIME_CACHE_DURATION: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' };
    const child = spawn(process.execPath, [BIN, '--config', cfg, 'daemon', '--max-runs', '2'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let jumped = false;
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!jumped && /stage: staged generation 1/.test(stderr)) {
        jumped = true;
        writeFileSync(offsetFile, '-365d\n');
      }
    });
    const code = await new Promise<number | null>((r) => child.on('close', r));
    assert.equal(code, 0, stderr);
    assert.ok(jumped, stderr);
    assert.match(stderr, /the clock jumped back by \d+ s: planning the schedule again/);
    assert.match(stderr, /stage: staged generation 2 as gen-2/, 'the second run came in the new time');
  });
});
