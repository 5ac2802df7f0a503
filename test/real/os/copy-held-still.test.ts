/**
 * A file copied into an environment (a kernel into /boot, a store object)
 * or onto the ESP counts only if its source held still: one written during
 * the copy fails it, and no torn file (nor a temporary) is left. A write
 * at the same size right after the source's last change (within the
 * clock tick, where size, mtime and ctime can all stay as they were) is
 * seen too. On a real Btrfs filesystem and a real zfs-fuse dataset.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { copyFileIn, withDirInAsync } from '../../../src/os/confined.js';
import { copyDurable } from '../../../src/os/durable.js';
import { makeBtrfsPool } from '../../fixtures/btrfs-pool.js';
import { makeZfsPool } from '../../fixtures/zfs-pool.js';

/** Overwrite `length` bytes at `at` with new ones: the size stays the same. */
function scribble(path: string, at: number, length = 4096): void {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, randomBytes(length), 0, length, at);
  } finally {
    closeSync(fd);
  }
}

const POOLS = {
  btrfs: async () => {
    const pool = await makeBtrfsPool();
    return { dir: pool.top, cleanup: () => pool.cleanup() };
  },
  zfs: async () => {
    const pool = await makeZfsPool();
    const dir = join(pool.dir, 'fs');
    mkdirSync(dir);
    await run('zfs', ['create', '-o', `mountpoint=${dir}`, `${pool.name}/files`]);
    return {
      dir,
      cleanup: async () => {
        await run('zfs', ['unmount', `${pool.name}/files`], { allowFailure: true });
        await pool.cleanup();
      },
    };
  },
};

for (const [kind, make] of Object.entries(POOLS)) {
  describe(`copies whose source held still, on ${kind}`, () => {
    let fs: { dir: string; cleanup: () => Promise<void> };
    let tree = '';
    let n = 0;
    before(async () => {
      fs = await make();
      tree = join(fs.dir, 'tree');
      mkdirSync(join(tree, 'boot'), { recursive: true });
    });
    after(async () => {
      await fs?.cleanup();
    });

    /** A source file, changed long enough ago unless `fresh`. */
    async function source(size: number, fresh = false): Promise<string> {
      const src = join(fs.dir, `src-${n++}`);
      writeFileSync(src, randomBytes(size));
      if (!fresh) await new Promise((r) => setTimeout(r, 50));
      return src;
    }

    const copyIn = (src: string, name: string) => withDirInAsync(tree, '/boot', { create: false }, (dir) => copyFileIn(dir, name, src, 0o644, { uid: 0, gid: 0 }));

    test('copyFileIn: a source that holds still is copied whole', async () => {
      const src = await source(3 << 20);
      await copyIn(src, 'vmlinuz-1');
      assert.ok(readFileSync(join(tree, 'boot/vmlinuz-1')).equals(readFileSync(src)));
    });

    test('copyFileIn: a source written during the copy fails it; nothing torn, no temporary', async () => {
      const src = await source(16 << 20);
      await assert.rejects(
        withDirInAsync(tree, '/boot', { create: false }, async (dir) => {
          // The source's state is taken before copyFileIn first waits: this write lands during the copy.
          const copying = copyFileIn(dir, 'vmlinuz-2', src, 0o644);
          scribble(src, 8 << 20);
          await copying;
        }),
        /changed while sysprime was reading it/,
      );
      assert.deepEqual(readdirSync(join(tree, 'boot')).sort(), ['vmlinuz-1']);
    });

    test('copyFileIn: a same-size write in the clock tick of the last change is seen', async () => {
      for (let i = 0; i < 5; i++) {
        const src = await source(64 << 10, true);
        await assert.rejects(
          withDirInAsync(tree, '/boot', { create: false }, async (dir) => {
            const copying = copyFileIn(dir, `initrd-${i}`, src, 0o644);
            scribble(src, 0);
            await copying;
          }),
          /changed while sysprime was reading it/,
          `try ${i}`,
        );
      }
      assert.deepEqual(readdirSync(join(tree, 'boot')).sort(), ['vmlinuz-1']);
    });

    test('copyDurable (kernels onto the ESP, a separate /boot): the same', async () => {
      const esp = join(fs.dir, 'esp');
      mkdirSync(esp, { recursive: true });
      const src = await source(16 << 20);
      const copying = copyDurable(src, join(esp, 'vmlinuz'), { mode: 0o644 });
      scribble(src, 8 << 20);
      await assert.rejects(copying, /changed while sysprime was reading it/);
      const fresh = await source(64 << 10, true);
      const again = copyDurable(fresh, join(esp, 'initrd'), { mode: 0o644 });
      scribble(fresh, 0);
      await assert.rejects(again, /changed while sysprime was reading it/);
      assert.deepEqual(readdirSync(esp), []);
      const still = await source(1 << 20);
      await copyDurable(still, join(esp, 'vmlinuz'), { mode: 0o644 });
      assert.ok(readFileSync(join(esp, 'vmlinuz')).equals(readFileSync(still)));
    });
  });
}
