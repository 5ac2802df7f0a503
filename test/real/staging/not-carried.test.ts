/**
 * A staging that could not carry some of the admin's changes says so: the
 * summary (text and JSON) names each path, `stage` exits non-zero, and the
 * daemon logs it at error priority. The failure is real: the update leaves
 * the file immutable (chattr +i), so writing the admin's version fails.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { sysprime } from '../../fixtures/cli.js';
import { run } from '../../../src/process/run.js';

// zfs-fuse has no inode flags (chattr fails there), so the failure is only
// reproducible on Btrfs.
describe('staging that cannot carry a change (btrfs)', () => {
  let s: Scratch;
  let dir: string;
  const sp = (...args: string[]) => sysprime(args, { config: s.config });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-notcarried-'));
    const script = join(dir, 'update.sh');
    writeFileSync(script, '#!/bin/sh\nset -e\necho 2 > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"\nchattr +i "$SYSPRIME_ROOT/etc/hostname"\n');
    chmodSync(script, 0o755);
    s = await makeScratch('btrfs', `[update]\nmethod = "command"\ncommand = "${script}"\nchroot = false\n`);
    assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
    writeFileSync(join(s.envPath!('base'), 'etc/hostname'), 'admin-host\n');
  });
  after(async () => {
    // Unset the flag so the pool's cleanup can remove every file.
    for (const e of ['gen-1', 'gen-2', 'gen-3']) await run('chattr', ['-i', join(s.envPath!(e), 'etc/hostname')]).catch(() => undefined);
    await s?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('stage names the failed path, in text and JSON, and exits non-zero', async () => {
    const r = await sp('stage');
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /staged generation 1 as "gen-1"/);
    assert.match(r.stdout, /1 failed/);
    assert.match(r.stdout, /not carried \(failed\): \/etc\/hostname: /);
    assert.match(r.stderr, /1 of the admin's changes were not carried over into "gen-1"/);

    const j = await sp('--json', 'stage');
    assert.equal(j.code, 3, j.stderr);
    const out = j.json<{ kind: string; reintegration: { counts: Record<string, number>; notCarried: { path: string; outcome: string; detail: string }[] } }>();
    assert.equal(out.kind, 'staged');
    assert.equal(out.reintegration.counts['failed'], 1);
    assert.deepEqual(
      out.reintegration.notCarried.map((i) => [i.path, i.outcome]),
      [['/etc/hostname', 'failed']],
    );
  });

  test('the daemon logs the path at error priority', async () => {
    const cfg = join(dir, 'daemon.toml');
    writeFileSync(cfg, readFileSync(s.config, 'utf8') + '\n[schedule]\nstage = "* * * * * *"\ndrift = "off"\nprune = "off"\nrandom_delay = 0\n');
    // As under systemd: the journal reads the <N> prefix as the priority.
    const r = await sysprime(['daemon', '--max-runs', '1'], { config: cfg, env: { JOURNAL_STREAM: '8:1', INVOCATION_ID: 'test' } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^<3>stage: staged generation 3 as gen-3; 1 of the admin's changes not carried over$/m);
    assert.match(r.stderr, /^<3>stage: "gen-3": not carried over: \/etc\/hostname: .+$/m);
  });
});
