/**
 * Users' data is carried over whole, whatever its size: a user's disk image
 * of just over 2 GiB in /home (a shared path inside the root) and a sparse file the
 * admin changed in /etc arrive in the staged environment with the same
 * bytes, as sparse as they were (on Btrfs as clones of the running
 * environment's extents), and `stage` stays far below their size in memory.
 * Before, a file of 2 GiB or more failed to carry over, and a smaller one
 * was read whole into memory and written out in full.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, ftruncateSync, lstatSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { KINDS, makeScratch, type Kind, type Scratch } from '../../fixtures/scratch.js';
import { makeZfsScratch } from '../../fixtures/zfs-scratch.js';
import { writeOsTree } from '../../fixtures/os-tree.js';
import { BIN, environmentMounter, sysprime } from '../../fixtures/cli.js';

const MiB = 1 << 20;
const GiB = 1 << 30;
/** Just over 2 GiB, Node's limit for one buffer and where 32-bit offsets end: the sizes that failed before. */
const BIG = 2 * GiB + 16 * MiB;
const A = randomBytes(MiB);
const B = randomBytes(MiB);
const C = randomBytes(MiB);
const FILES = ['etc/app.img', 'home/alice/disk.img'];

function writeAt(path: string, flags: string, size: number | undefined, offset: number, data: Buffer): void {
  const fd = openSync(path, flags);
  try {
    if (size !== undefined) ftruncateSync(fd, size);
    writeSync(fd, data, 0, data.length, offset);
  } finally {
    closeSync(fd);
  }
}

/** The installed system: the small OS tree and a sparse file in /etc (1 MiB of data at 1 GiB). */
function writeInstalled(root: string): void {
  writeOsTree(root);
  writeAt(join(root, 'etc/app.img'), 'w', BIG, GiB, A);
}

function updateScript(dir: string): string {
  const script = join(dir, 'update.sh');
  writeFileSync(script, '#!/bin/sh\nset -e\necho 2 > "$SYSPRIME_ROOT/usr/share/doc/demo/VERSION"\n');
  chmodSync(script, 0o755);
  return script;
}

/** `stage` through /usr/bin/time: its exit status, what it printed, and its peak resident memory. */
function stageMeasured(config: string): Promise<{ code: number; out: string; peak: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', 'peak-rss-kib %M', process.execPath, BIN, '--config', config, 'stage'], { env: { ...process.env, NO_COLOR: '1' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const kib = /peak-rss-kib (\d+)/.exec(out)?.[1];
      if (kib === undefined) reject(new Error(`no peak memory from /usr/bin/time:\n${out}`));
      else resolve({ code: code ?? -1, out, peak: Number(kib) * 1024 });
    });
  });
}

/** Physical extents of a file (filefrag -v): equal lists mean the two files share their data. */
async function extents(path: string): Promise<string[]> {
  const out = (await run('filefrag', ['-v', path])).stdout;
  return [...out.matchAll(/^\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+)\.\.\s*(\d+):/gm)].map((m) => `${m[1]}..${m[2]}`);
}

async function scratch(kind: Kind, toml: string): Promise<Scratch> {
  if (kind === 'zfs') return makeZfsScratch(toml, writeInstalled);
  const s = await makeScratch('btrfs', toml);
  writeAt(join(s.where, '@/etc/app.img'), 'w', BIG, GiB, A);
  return s;
}

for (const kind of KINDS) {
  describe(`large and sparse files staged on ${kind}`, () => {
    let s: Scratch;
    let dir: string;
    const sp = (...args: string[]) => sysprime(args, { config: s.config });

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sysprime-large-'));
      s = await scratch(kind, `[update]\nmethod = "command"\ncommand = "${updateScript(dir)}"\nchroot = false\n`);
      const init = await sp('init', '--adopt', s.adopt, '--name', 'base');
      assert.equal(init.code, 0, init.stderr);
      await environmentMounter(sp, () => join(dir, 'base'))('base', (root) => {
        // The admin changed 1 MiB of the /etc file, past 2 GiB; alice made a disk image just over 2 GiB with 1 MiB in it.
        writeAt(join(root, 'etc/app.img'), 'r+', undefined, 2 * GiB + 4 * MiB, B);
        mkdirSync(join(root, 'home/alice'));
        chownSync(join(root, 'home/alice'), 1000, 1000);
        writeAt(join(root, 'home/alice/disk.img'), 'w', BIG, 2 * GiB + 8 * MiB, C);
        chownSync(join(root, 'home/alice/disk.img'), 1000, 1000);
        chmodSync(join(root, 'home/alice/disk.img'), 0o600);
      });
    });
    after(async () => {
      await s?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    test('arrive whole and sparse in the staged environment, with memory far below their size', async (c) => {
      const r = await stageMeasured(s.config);
      c.diagnostic(`stage peaked at ${Math.round(r.peak / MiB)} MiB`);
      assert.equal(r.code, 0, r.out);
      assert.ok(r.peak < 512 * MiB, `stage peaked at ${Math.round(r.peak / MiB)} MiB`);
      const base = join(dir, 'base');
      const gen = join(dir, 'gen-1');
      for (const [name, mnt] of [['base', base], ['gen-1', gen]] as const) {
        const m = await sp('mount', name, mnt);
        assert.equal(m.code, 0, m.stderr);
      }
      try {
        await run('sync', []);
        for (const rel of FILES) {
          const cmp = await run('cmp', [join(base, rel), join(gen, rel)], { allowFailure: true });
          assert.equal(cmp.exitCode, 0, `${rel}: ${cmp.stdout}${cmp.stderr}`);
          const [o, g] = [lstatSync(join(base, rel)), lstatSync(join(gen, rel))];
          assert.deepEqual([g.size, g.mode, g.uid, g.gid], [o.size, o.mode, o.uid, o.gid], rel);
          assert.ok(g.blocks * 512 <= 4 * MiB, `${rel} takes ${g.blocks * 512} bytes on disk`);
          if (kind === 'btrfs') assert.deepEqual(await extents(join(gen, rel)), await extents(join(base, rel)), `${rel} shares the running environment's extents`);
        }
      } finally {
        for (const name of ['gen-1', 'base']) await sp('umount', name);
      }
    });
  });
}
