/**
 * A file name with control characters (a cron file named
 * `backdoor\r\e[2Kmodified  motd` returns the cursor and clears the line,
 * hiding itself) reaches no terminal raw: drift, reintegrate --plan and the
 * reintegration report show it escaped.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { sysprime } from '../../fixtures/cli.js';

const NAME = 'backdoor\r\x1b[2Kmodified  motd';
const SHOWN = '/etc/cron.d/backdoor\\r\\x1b[2Kmodified  motd';

// eslint-disable-next-line no-control-regex
const assertNoControl = (text: string, what: string) => assert.doesNotMatch(text.replace(/\n/g, ''), /[\x00-\x1f\x7f]/, `${what} holds a raw control character`);

describe('control characters in file names (btrfs)', () => {
  let s: Scratch;
  let dir: string;
  const sp = (...args: string[]) => sysprime(args, { config: s.config });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-ctl-'));
    const script = join(dir, 'update.sh');
    writeFileSync(script, '#!/bin/sh\necho 2 > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"\n');
    chmodSync(script, 0o755);
    s = await makeScratch('btrfs', `[update]\nmethod = "command"\ncommand = "${script}"\nchroot = false\n`);
    assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
    mkdirSync(join(s.envPath!('base'), 'etc/cron.d'), { recursive: true });
    writeFileSync(join(s.envPath!('base'), 'etc/cron.d', NAME), '* * * * * root /tmp/x\n');
  });
  after(async () => {
    await s?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('drift shows the name escaped, in text', async () => {
    const r = await sp('drift', '--no-record');
    assert.equal(r.code, 1, r.stderr);
    assertNoControl(r.stdout, 'drift');
    assert.ok(r.stdout.includes(SHOWN), r.stdout);
  });

  test('reintegrate --plan and the report inside the new environment show it escaped', async () => {
    const st = await sp('stage');
    assert.equal(st.code, 0, st.stderr);
    assertNoControl(st.stdout + st.stderr, 'stage');
    // A second one, made after staging: the plan into gen-1 copies it.
    writeFileSync(join(s.envPath!('base'), 'etc/cron.d', `${NAME}2`), '* * * * * root /tmp/y\n');
    const plan = await sp('reintegrate', '--plan');
    assert.equal(plan.code, 0, plan.stderr);
    assertNoControl(plan.stdout, 'reintegrate --plan');
    assert.ok(plan.stdout.includes(`${SHOWN}2`), plan.stdout);
    const reports = join(s.envPath!('gen-1'), 'var/lib/sysprime/reintegration');
    const text = readFileSync(join(reports, readdirSync(reports).find((f) => f.endsWith('.txt'))!), 'utf8');
    assertNoControl(text, 'the report');
    assert.ok(text.includes(SHOWN), text);
  });
});
