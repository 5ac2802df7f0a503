/**
 * Ordinary errno errors are one line naming the path and the errno, not an
 * "internal error" with a stack; a reader that goes away never prints an
 * EPIPE trace and never cuts a staging off midway.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { BIN, sysprime } from '../../fixtures/cli.js';

/** One line and a hint: no stack, no "internal error". */
function assertOneLine(stderr: string, re: RegExp): void {
  assert.match(stderr, re);
  assert.doesNotMatch(stderr, /internal error|this is a bug|\n\s+at /);
  assert.ok(stderr.split('\n').filter((l) => l.startsWith('sysprime:')).length === 1, stderr);
}

/** Run a shell pipeline with bash; prints the exit status of each part on the last line. */
function pipeline(cmd: string): { out: string; statuses: number[] } {
  const r = spawnSync('bash', ['-c', `${cmd}; echo "status \${PIPESTATUS[*]}"`], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  const lines = r.stdout.trimEnd().split('\n');
  const last = lines.pop()!;
  return { out: lines.join('\n') + r.stderr, statuses: last.replace('status ', '').split(' ').map(Number) };
}

describe('errno errors and closed pipes (btrfs)', () => {
  let s: Scratch;
  let dir: string;
  const sp = (...args: string[]) => sysprime(args, { config: s.config });
  const cli = `'${process.execPath}' '${BIN}'`;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-io-'));
    // An update that talks, slowly: its output and the progress lines go on after the reader left.
    const script = join(dir, 'update.sh');
    writeFileSync(script, '#!/bin/sh\nfor i in 1 2 3 4 5; do echo "updating $i"; sleep 0.2; done\necho 2 > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"\n');
    chmodSync(script, 0o755);
    s = await makeScratch('btrfs', `[update]\nmethod = "command"\ncommand = "${script}"\nchroot = false\n`);
    assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
    mkdirSync(join(dir, 'tree'));
    writeFileSync(join(dir, 'tree', 'file'), 'x\n');
  });
  after(async () => {
    await s?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('bart create -o: a directory, a missing directory, a device (refused, not written to)', async () => {
    const tree = join(dir, 'tree');
    let r = await sysprime(['bart', 'create', '-R', tree, '-o', dir]);
    assert.equal(r.code, 2);
    assertOneLine(r.stderr, /^sysprime: .* is a directory\n/);
    r = await sysprime(['bart', 'create', '-R', tree, '-o', '/nonexistent/x']);
    assert.equal(r.code, 2);
    assertOneLine(r.stderr, /^sysprime: \/nonexistent\/x: open failed: ENOENT \(no such file or directory\)\n/);
    r = await sysprime(['bart', 'create', '-R', tree, '-o', '/dev/full']);
    assert.equal(r.code, 2);
    assertOneLine(r.stderr, /^sysprime: \/dev\/full is a character device; -o writes a regular file only\n/);
  });

  test('drift -o: a directory, a missing directory, a device (refused, not written to)', async () => {
    let r = await sp('drift', '--no-record', '-o', dir);
    assert.equal(r.code, 3);
    assertOneLine(r.stderr, /^sysprime: .* is a directory\n/);
    r = await sp('drift', '--no-record', '-o', '/nonexistent/x');
    assert.equal(r.code, 3);
    assertOneLine(r.stderr, /^sysprime: \/nonexistent\/x: open failed: ENOENT/);
    r = await sp('drift', '--no-record', '-o', '/dev/full');
    assert.equal(r.code, 3);
    assertOneLine(r.stderr, /^sysprime: \/dev\/full is a character device; -o writes a regular file only\n/);
  });

  test('a NUL in a configuration path is a configuration error', async () => {
    const cfg = join(dir, 'nul.toml');
    writeFileSync(cfg, 'backend = "btrfs"\n[state]\ndir = "/tmp/a\\u0000b"\n');
    const r = await sysprime(['--config', cfg, 'list']);
    assert.equal(r.code, 2);
    assertOneLine(r.stderr, /^sysprime: .*nul\.toml: 'state\.dir' must be an absolute path/);
  });

  test('list | head -0: no trace, and list exits as it would', () => {
    const r = pipeline(`${cli} --config '${s.config}' list | head -0`);
    assert.deepEqual(r.statuses, [0, 0], r.out);
    assert.equal(r.out.trim(), '');
  });

  test('stage 2>&1 | head -1: the staging still runs to the end', async () => {
    const r = pipeline(`${cli} --config '${s.config}' stage 2>&1 | head -1`);
    assert.equal(r.statuses[0], 0, r.out);
    assert.doesNotMatch(r.out, /EPIPE|internal error/);
    const st = (await sp('--json', 'status')).json<{ lastStage?: { status: string } | null; running: unknown }>();
    assert.equal(st.running, null);
    const envs = (await sp('--json', 'list')).json<{ name: string }[]>().map((e) => e.name);
    assert.deepEqual(envs.sort(), ['base', 'gen-1']);
  });
});
