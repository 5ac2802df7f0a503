import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSysprimeError } from '../../../src/errors.js';
import { recoverChroot, withChroot } from '../../../src/updaters/chroot.js';
import { mountsAtOrBelow, parseMountinfo } from '../../../src/os/mounts.js';
import { buildTinyTree } from './tiny-tree.js';

let scratch: string;
before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'sysprime-chroot-'));
});
after(() => {
  // Whatever a failed test left mounted goes before the directory does.
  const left = mountsAtOrBelow(parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')), scratch);
  for (const m of left.reverse()) execFileSync('umount', ['-l', m.mountPoint]);
  rmSync(scratch, { recursive: true, force: true });
});

async function mountedBelow(dir: string): Promise<string[]> {
  return mountsAtOrBelow(parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8')), dir).map((m) => m.mountPoint);
}

function tree(name: string): string {
  const root = join(scratch, name);
  mkdirSync(root);
  buildTinyTree(root);
  return root;
}

test('a command runs inside with kernel filesystems, no services, and everything goes afterwards', async () => {
  const root = tree('basic');
  const out = await withChroot(root, {}, async (s) => {
    assert.deepEqual((await mountedBelow(root)).sort(), [root, `${root}/dev`, `${root}/dev/pts`, `${root}/dev/shm`, `${root}/proc`, `${root}/run`, `${root}/sys`].sort());
    const policy = await s.run(['/usr/sbin/policy-rc.d', 'ssh', 'start'], { allowFailure: true });
    assert.equal(policy.exitCode, 101);
    const res = await s.run(['sh', '-c', 'echo "$SYSPRIME_CHROOT $FOO"; test -r /proc/self/status && echo proc; test -c /dev/null && echo dev; echo > /run/x && echo run; echo > /sys/x 2>/dev/null || echo sys-ro'], {
      env: { FOO: 'bar' },
    });
    return res.stdout;
  });
  assert.equal(out, '1 bar\nproc\ndev\nrun\nsys-ro\n');
  assert.deepEqual(await mountedBelow(root), []);
  assert.equal(existsSync(join(root, 'usr/sbin/policy-rc.d')), false);
  assert.equal(existsSync('/run/x'), false, 'the chroot\'s /run is not the host\'s');
});

test('the tree\'s own policy-rc.d and resolv.conf come back; the host\'s resolver is used inside', async () => {
  const root = tree('restore');
  writeFileSync(join(root, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  symlinkSync('../run/systemd/resolve/stub-resolv.conf', join(root, 'etc/resolv.conf'));
  const inside = await withChroot(root, { network: true }, async (s) => (await s.run(['sh', '-c', 'while read -r l; do echo "$l"; done < /etc/resolv.conf'])).stdout);
  assert.equal(inside.trim(), readFileSync('/etc/resolv.conf', 'utf8').trim());
  assert.equal(readFileSync(join(root, 'usr/sbin/policy-rc.d'), 'utf8'), '#!/bin/sh\nexit 0\n');
  assert.equal(readlinkSync(join(root, 'etc/resolv.conf')), '../run/systemd/resolve/stub-resolv.conf');
  assert.equal(existsSync(join(root, 'etc/resolv.conf.sysprime-saved')), false);
});

test('a failing callback still tears everything down, and its error is the one thrown', async () => {
  const root = tree('fails');
  await assert.rejects(
    withChroot(root, {}, async (s) => {
      await s.run(['sh', '-c', 'echo broken >&2; exit 7']);
    }),
    (err: unknown) => isSysprimeError(err, 'COMMAND_FAILED') && /exit status 7/.test(err.detail ?? ''),
  );
  assert.deepEqual(await mountedBelow(root), []);
  assert.equal(existsSync(join(root, 'usr/sbin/policy-rc.d')), false);
});

test('a command that runs too long is stopped; a process left in the background is stopped too', async () => {
  const root = tree('timeout');
  await assert.rejects(
    withChroot(root, { timeout: 1 }, async (s) => {
      await s.run(['sh', '-c', '(while :; do :; done) >/dev/null 2>&1 & echo started']);
      await s.run(['sh', '-c', 'while :; do :; done']);
    }),
    (err: unknown) => isSysprimeError(err, 'TIMEOUT'),
  );
  assert.deepEqual(await mountedBelow(root), []);
});

test('a tree whose /proc leads out of it is refused and nothing is mounted', async () => {
  const root = tree('escape');
  const outside = join(scratch, 'outside');
  mkdirSync(outside);
  rmSync(join(root, 'proc'), { recursive: true });
  symlinkSync(outside, join(root, 'proc'));
  await assert.rejects(withChroot(root, {}, async () => undefined), (err: unknown) => isSysprimeError(err, 'REFUSED') && /proc/.test(err.message));
  assert.deepEqual(await mountedBelow(root), []);
  assert.deepEqual(await mountedBelow(outside), []);
});

test('the running root is refused', async () => {
  await assert.rejects(withChroot('/', {}, async () => undefined), (err: unknown) => isSysprimeError(err, 'REFUSED'));
});

/** Starts withChroot in another process, waits until it is inside, and kills it with SIGKILL. */
async function crashInside(root: string): Promise<void> {
  const module = new URL('../../../src/updaters/chroot.js', import.meta.url).pathname;
  const child = spawn(process.execPath, [
    '--input-type=module',
    '-e',
    `import { withChroot } from ${JSON.stringify(module)};
     await withChroot(${JSON.stringify(root)}, { network: true }, async (s) => {
       await s.run(['sh', '-c', '(while :; do :; done) >/dev/null 2>&1 &']);
       process.stdout.write('inside\\n');
       await new Promise(() => {});
     });`,
  ], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('inside')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`child exited early (${code})`)));
  });
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGKILL');
  await exited;
}

test('after a crash inside, recoverChroot unmounts and restores everything of ours', async () => {
  const root = tree('crash');
  writeFileSync(join(root, 'etc/resolv.conf'), 'nameserver 192.0.2.1\n');
  await crashInside(root);
  assert.ok((await mountedBelow(root)).length >= 6, 'the crash left mounts behind');
  const done = await recoverChroot(root);
  assert.ok(done.some((l) => l.startsWith('stopped processes')));
  assert.deepEqual(await mountedBelow(root), []);
  assert.equal(existsSync(join(root, 'usr/sbin/policy-rc.d')), false);
  assert.equal(readFileSync(join(root, 'etc/resolv.conf'), 'utf8'), 'nameserver 192.0.2.1\n');
  assert.deepEqual(await recoverChroot(root), [], 'a second recovery has nothing to do');
});

test('when the root is a mount of its own, it stays mounted: after a session and after a crash', async () => {
  const root = join(scratch, 'env');
  mkdirSync(root);
  execFileSync('mount', ['-t', 'tmpfs', 'sysprime-test-env', root]);
  try {
    buildTinyTree(root);
    await withChroot(root, {}, async (s) => void (await s.run(['sh', '-c', 'true'])));
    assert.deepEqual(await mountedBelow(root), [root]);
    await crashInside(root);
    await recoverChroot(root);
    assert.deepEqual(await mountedBelow(root), [root]);
    assert.equal(lstatSync(join(root, 'usr/bin/sh')).isFile(), true);
  } finally {
    execFileSync('umount', [root]);
  }
});
