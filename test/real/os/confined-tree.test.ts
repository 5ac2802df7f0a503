/**
 * The tree primitives of the confined writer (src/os/confined.ts) against
 * links planted where a directory is expected: nothing outside the root is
 * created, linked, renamed into or removed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fstatSync, lstatSync, mkdirSync, statSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSysprimeError } from '../../../src/errors.js';
import { run } from '../../../src/process/run.js';
import { ConfinedRoot, ensureDirIn, isHandle, linkIn, removeTreeIn, renameBetween, renameIn, replaceWithLinkIn, writeFileIn, type DirHandle } from '../../../src/os/confined.js';

let scratch: string;
let root: string;
let outside: string;
before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'sysprime-confined-tree-'));
  root = join(scratch, 'root');
  outside = join(scratch, 'outside');
  mkdirSync(root);
  mkdirSync(outside);
  writeFileSync(join(outside, 'precious'), 'host data\n');
});
after(() => rmSync(scratch, { recursive: true, force: true }));

function withTop<T>(fn: (top: DirHandle) => T): T {
  const r = ConfinedRoot.open(root);
  try {
    const top = r.openDir([]);
    assert.ok(isHandle(top));
    try {
      return fn(top);
    } finally {
      top.close();
    }
  } finally {
    r.close();
  }
}

test('ensureDirIn refuses a link where a directory is wanted, naming it a symlink', () => {
  symlinkSync(outside, join(root, 'linked'));
  withTop((top) => {
    assert.throws(() => ensureDirIn(top, 'linked'), (err: unknown) => isSysprimeError(err, 'REFUSED') && /symlink/.test(err.message));
    const made = ensureDirIn(top, 'fresh', 0o750);
    made.dir.close();
    assert.equal(made.created, true);
  });
  assert.equal(lstatSync(join(root, 'fresh')).mode & 0o7777, 0o750, 'the mode asked for, whatever the umask');
  assert.deepEqual(readdirSync(outside), ['precious']);
});

test('removeTreeIn removes a link inside the tree, never what it points at', () => {
  mkdirSync(join(root, 'doomed/sub'), { recursive: true });
  symlinkSync(outside, join(root, 'doomed/sub/escape'));
  writeFileSync(join(root, 'doomed/file'), 'x');
  withTop((top) => assert.equal(removeTreeIn(top, 'doomed'), true));
  assert.equal(lstatSync(join(root, 'doomed'), { throwIfNoEntry: false }), undefined);
  assert.deepEqual(readdirSync(outside), ['precious']);
});

test('removeTreeIn removes every kind of entry at any depth, whatever its name, and nothing a link points at', async () => {
  const odd = Buffer.from('odd\nname\xe9', 'latin1');
  mkdirSync(join(root, 'big/a/b/c/d'), { recursive: true });
  for (let i = 0; i < 50; i++) writeFileSync(join(root, `big/a/b/c/d/f${i}`), `${i}\n`);
  writeFileSync(Buffer.concat([Buffer.from(join(root, 'big/a/')), odd]), 'x');
  mkdirSync(Buffer.concat([Buffer.from(join(root, 'big/a/b/')), odd]));
  writeFileSync(Buffer.concat([Buffer.from(join(root, 'big/a/b/')), odd, Buffer.from('/inside')]), 'y');
  symlinkSync(outside, join(root, 'big/a/to-dir'));
  symlinkSync(join(outside, 'precious'), join(root, 'big/a/b/to-file'));
  symlinkSync('dangling', join(root, 'big/dangling'));
  await run('mkfifo', [join(root, 'big/a/b/c/fifo')]);
  withTop((top) => assert.equal(removeTreeIn(top, 'big'), true));
  assert.equal(lstatSync(join(root, 'big'), { throwIfNoEntry: false }), undefined);
  assert.deepEqual(readdirSync(outside), ['precious']);
  assert.equal(readFileSync(join(outside, 'precious'), 'utf8'), 'host data\n');
  withTop((top) => assert.equal(removeTreeIn(top, 'big'), false, 'absent: false'));
});

test('links and renames between open directories replace a planted link, never write through it', () => {
  mkdirSync(join(root, 'a'));
  mkdirSync(join(root, 'b'));
  writeFileSync(join(root, 'a/object'), 'object\n');
  symlinkSync(join(outside, 'precious'), join(root, 'b/target'));
  withTop((top) => {
    const a = ensureDirIn(top, 'a').dir;
    const b = ensureDirIn(top, 'b').dir;
    try {
      replaceWithLinkIn(a, 'object', b, 'target');
      linkIn(a, 'object', b, 'second');
      renameBetween(b, 'second', a, 'moved');
    } finally {
      a.close();
      b.close();
    }
  });
  assert.equal(lstatSync(join(root, 'b/target')).ino, lstatSync(join(root, 'a/object')).ino);
  assert.equal(lstatSync(join(root, 'a/moved')).ino, lstatSync(join(root, 'a/object')).ino);
  assert.deepEqual(readdirSync(outside), ['precious']);
});

/** Descriptors this process has open. */
const openFds = () => readdirSync('/proc/self/fd').length;

test('a quiet root keeps directories open, and a directory renamed or removed through it is never written through again', () => {
  mkdirSync(join(root, 'quiet/etc/app'), { recursive: true });
  const fds = openFds();
  const r = ConfinedRoot.open(root, { quiet: true });
  try {
    const first = r.openDir(['quiet', 'etc', 'app']);
    assert.ok(isHandle(first));
    const ino = fstatSync(first.fd).ino;
    first.close();
    first.close(); // twice: takes no use from the next handle
    const again = r.openDir(['quiet', 'etc', 'app']);
    assert.ok(isHandle(again));
    assert.equal(again.fd, first.fd, 'found again without walking: the same descriptor');
    const etc = r.openDir(['quiet', 'etc']);
    assert.ok(isHandle(etc));
    // Moved aside and made again through the root: the kept handles are forgotten (the one in use stays valid).
    renameIn(etc, 'app', 'app.old');
    mkdirSync(join(root, 'quiet/etc/app'));
    etc.close();
    assert.equal(fstatSync(again.fd).ino, ino, 'a handle in use keeps its directory');
    again.close();
    const fresh = r.openDir(['quiet', 'etc', 'app']);
    assert.ok(isHandle(fresh));
    assert.notEqual(fstatSync(fresh.fd).ino, ino, 'the new directory, not the one moved aside');
    writeFileIn(fresh, 'conf', Buffer.from('x\n'), 0o644);
    fresh.close();
    assert.equal(readFileSync(join(root, 'quiet/etc/app/conf'), 'utf8'), 'x\n');
    assert.deepEqual(readdirSync(join(root, 'quiet/etc/app.old')), []);
    // A link planted for a directory is refused the same way.
    symlinkSync(outside, join(root, 'quiet/link'));
    assert.deepEqual(r.openDir(['quiet', 'link', 'x']), { blocked: ['quiet', 'link'] });
  } finally {
    r.close();
  }
  assert.equal(openFds(), fds, 'closing the root closes every directory it kept');
});

test('a quiet root keeps a bounded number of directories; one in use outlives its eviction', () => {
  for (let i = 0; i < 200; i++) mkdirSync(join(root, `many/d${i}`), { recursive: true });
  const fds = openFds();
  const r = ConfinedRoot.open(root, { quiet: true });
  try {
    const held = r.openDir(['many', 'd0']);
    assert.ok(isHandle(held));
    const ino = lstatSync(join(root, 'many/d0')).ino;
    for (let i = 1; i < 200; i++) {
      const d = r.openDir(['many', `d${i}`]);
      assert.ok(isHandle(d));
      d.close();
    }
    assert.ok(openFds() - fds < 100, `at most about KEPT_DIRS kept (${openFds() - fds} open)`);
    assert.equal(fstatSync(held.fd).ino, ino, 'evicted while in use: still open, still that directory');
    held.close();
  } finally {
    r.close();
  }
  assert.equal(openFds(), fds);
});

test('writes not synced one by one name every filesystem they reached, a mount below the root included', async () => {
  mkdirSync(join(root, 'durable/below'), { recursive: true });
  await run('mount', ['-t', 'tmpfs', 'tmpfs', join(root, 'durable/below')]);
  try {
    const devices = (durable: 'each' | 'file-data' | 'at-end'): number[] => {
      const r = ConfinedRoot.open(join(root, 'durable'), { durable });
      try {
        for (const comps of [[], ['below']]) {
          const d = r.openDir(comps);
          assert.ok(isHandle(d));
          writeFileIn(d, `f-${durable}`, Buffer.from('x\n'), 0o644);
          d.close();
        }
        // Each a directory on that filesystem, as `sync --file-system` opens it.
        return r.filesystemsToSync().map((p) => statSync(p).dev);
      } finally {
        r.close();
      }
    };
    assert.deepEqual(devices('each'), [], 'each write synced as it was made: nothing left to sync');
    const want = [lstatSync(join(root, 'durable')).dev, lstatSync(join(root, 'durable/below')).dev].sort();
    assert.deepEqual(devices('file-data').sort(), want, 'the root\'s filesystem and the one mounted below it');
    assert.deepEqual(devices('at-end').sort(), want);
  } finally {
    await run('umount', [join(root, 'durable/below')]);
  }
});
