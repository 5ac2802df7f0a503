/**
 * `mount` refuses a mount point that is not empty or is not a directory
 * unless --force (and a system directory always, see the unit test, which
 * never mounts over this machine's own); `doctor` says when the default
 * entry has no boot tries left; the verbs that change environments take
 * the lock, and say who holds it.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeBootScratch, type BootScratch } from './boot-setup.js';
import { openState } from '../../../src/state/db.js';
import { processStart } from '../../../src/process/alive.js';

describe('mount points and boot tries (btrfs, systemd-boot)', () => {
  let b: BootScratch;
  let esp: string;
  const sp = (...args: string[]) => b.sp(...args);

  before(async () => {
    b = await makeBootScratch('btrfs', (dir) => {
      esp = join(dir, 'esp');
      mkdirSync(join(esp, 'loader/entries'), { recursive: true });
      return `loader = "systemd-boot"\nesp = "${esp}"\n`;
    });
    assert.equal((await sp('init', '--adopt', b.s.adopt, '--name', 'base')).code, 0);
    assert.equal((await sp('create', 'other')).code, 0);
  });
  after(async () => {
    await b?.cleanup();
  });

  test('while another sysprime holds the lock, the verbs that change environments say so and change nothing', async () => {
    const db = openState(b.s.stateDir);
    try {
      // pid 1 is alive for as long as the machine runs: a holder that is not this test.
      db.prepare("INSERT OR REPLACE INTO locks (name, pid, start, what, at) VALUES ('stage', 1, ?, 'staging', '2026-01-01T00:00:00Z')").run(processStart(1) ?? '');
      for (const args of [['destroy', 'other'], ['rename', 'other', 'renamed'], ['create', 'third'], ['activate', 'other'], ['describe', 'other', 'text']]) {
        const r = await sp(...args);
        assert.equal(r.code, 6, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, /^sysprime: another sysprime \(pid 1\) is staging since /, args.join(' '));
      }
      const list = await sp('--json', 'list');
      assert.deepEqual(list.json<{ name: string; default: boolean }[]>().map((e) => [e.name, e.default]), [['base', true], ['other', false]]);
    } finally {
      db.prepare('DELETE FROM locks').run();
      db.close();
    }
  });

  test('a directory that holds something is refused, with one line; --force mounts over it', async () => {
    const busy = join(b.dir, 'busy');
    mkdirSync(busy);
    writeFileSync(join(busy, 'keep-me'), 'x\n');
    const r = await sp('mount', 'other', busy);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /^sysprime: not mounting "other" there: .*busy is not empty\n {2}hint: /);
    assert.deepEqual(readdirSync(busy), ['keep-me'], 'nothing mounted over it');
    const forced = await sp('mount', '--force', 'other', busy);
    assert.equal(forced.code, 0, forced.stderr);
    assert.ok(existsSync(join(busy, 'etc/demo.conf')));
    assert.equal((await sp('umount', 'other')).code, 0);
    assert.deepEqual(readdirSync(busy), ['keep-me']);
  });

  test('a file is refused as a mount point, with one line, even with --force', async () => {
    const file = join(b.dir, 'hostname');
    writeFileSync(file, 'host\n');
    for (const args of [['mount', 'other', file], ['mount', '--force', 'other', file]]) {
      const r = await sp(...args);
      assert.equal(r.code, 5, r.stderr);
      assert.match(r.stderr, /^sysprime: not mounting "other" there: .*hostname is not a directory\n/);
      assert.doesNotMatch(r.stderr, /internal error/);
    }
  });

  test('an empty directory is fine', async () => {
    const empty = join(b.dir, 'empty');
    mkdirSync(empty);
    assert.equal((await sp('mount', 'other', empty)).code, 0);
    assert.equal((await sp('umount', 'other')).code, 0);
  });

  test('doctor warns when the default entry has 0 tries left', async () => {
    const st = await sp('stage');
    assert.equal(st.code, 0, st.stderr);
    assert.equal((await sp('activate', 'gen-1')).code, 0);
    const before = await sp('doctor');
    assert.doesNotMatch(before.stdout, /tries left/);
    // The bootloader used the tries up: +3 becomes +0-3.
    const dir = join(esp, 'loader/entries');
    const counting = readdirSync(dir).find((f) => f.startsWith('sysprime-gen-1+'))!;
    renameSync(join(dir, counting), join(dir, 'sysprime-gen-1+0-3.conf'));
    const r = await sp('doctor');
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /default-no-tries: the default entry "gen-1" has 0 boot tries left/);
    assert.doesNotMatch(r.stdout, /no problems found/);
  });
});
