/**
 * `sysprime shell ENV -- CMD`: a command chrooted in an environment that is
 * not running, through the real CLI on real pools. The scratch tree gets the
 * host's dash and the two libraries it needs, so there is a /bin/sh to run.
 * What is checked: the command runs inside the environment's tree with the
 * kernel filesystems mounted there, its exit status is sysprime's, and
 * nothing is left mounted or running afterwards — after a normal end, after
 * SIGTERM to sysprime, and (by the next shell) after a kill -9.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KINDS, makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { BIN, environmentMounter, sysprime } from '../../fixtures/cli.js';

/** The host's dash as the tree's /bin/sh, with what the dynamic loader needs for it. */
function installSh(root: string): void {
  for (const d of ['bin', 'lib/x86_64-linux-gnu', 'lib64']) mkdirSync(join(root, d), { recursive: true });
  copyFileSync('/usr/bin/dash', join(root, 'bin/sh'));
  chmodSync(join(root, 'bin/sh'), 0o755);
  copyFileSync(realpathSync('/lib/x86_64-linux-gnu/libc.so.6'), join(root, 'lib/x86_64-linux-gnu/libc.so.6'));
  copyFileSync(realpathSync('/lib64/ld-linux-x86-64.so.2'), join(root, 'lib64/ld-linux-x86-64.so.2'));
}

/**
 * The mount points of this test's pool, state directory and sysprime's run
 * directory: what a shell mounts, and must leave as it found. Not the whole
 * machine's: other tests and the VM suite mount and unmount beside it.
 */
function chrootMounts(s: Scratch): string[] {
  const ours = (m: string): boolean => m.startsWith(`${s.where}/`) || m.startsWith(`${s.stateDir}/`) || m.startsWith('/run/sysprime/');
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => m !== undefined && m !== '' && ours(m))
    .sort();
}

/** Processes still running the test's waiting command. */
function waiting(): string {
  return spawnSync('pgrep', ['-f', 'echo ready; read line'], { encoding: 'utf8' }).stdout.trim();
}

/** sysprime started by hand, for signals: resolves with its exit status; `ready` once the command printed "ready". */
function startShell(config: string, argv: string[]): { child: ChildProcess; ready: Promise<void>; done: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, '--config', config, 'shell', ...argv], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let out = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`sysprime shell exited (${code}) before the command was ready: ${out}`)));
  });
  const done = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, ready, done };
}

/** What the scratch tree lacks and a shell creates to mount on (and usr/sbin for its policy-rc.d). */
const CREATED = ['dev', 'proc', 'sys', 'run', 'usr/sbin'];

// Waits on a FIFO in the environment, not on stdin: the test's end of sysprime's stdin closes when sysprime dies.
const WAIT = ['--', '/bin/sh', '-c', 'echo ready; read line < /wait.fifo; echo "never: $line"'];

for (const kind of KINDS) {
  describe(`shell on ${kind}`, () => {
    let s: Scratch;
    let dir: string;
    const sp = (...args: string[]) => sysprime(args, { config: s.config });
    const inEnv = environmentMounter(sp, () => join(dir, 'mnt'));
    let before0: string[];

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sysprime-shell-'));
      s = await makeScratch(kind);
      assert.equal((await sp('init', '--adopt', s.adopt, '--name', 'base')).code, 0);
      await inEnv('base', (root) => {
        installSh(root);
        assert.equal(spawnSync('mkfifo', [join(root, 'wait.fifo')]).status, 0);
      });
      before0 = chrootMounts(s);
    });
    after(async () => {
      await s?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    test('runs a command chrooted in the environment, with /proc there; its exit status is sysprime\'s; nothing is left mounted', async () => {
      const r = await sp('shell', 'base', '--', '/bin/sh', '-c', 'echo "in $debian_chroot $SYSPRIME_CHROOT"; read h < /etc/hostname; echo "hostname $h"; [ -r /proc/self/status ] && echo "proc mounted"; echo made > /root/from-shell; exit 7');
      assert.equal(r.code, 7, r.stderr);
      assert.match(r.stdout, /^in sysprime:base 1$/m);
      assert.match(r.stdout, /^proc mounted$/m);
      assert.deepEqual(chrootMounts(s), before0, 'the kernel filesystems are unmounted');
      await inEnv('base', (root) => assert.equal(readFileSync(join(root, 'root/from-shell'), 'utf8'), 'made\n', 'what the command wrote is in the environment'));
      const ok = await sp('shell', 'base', '--', '/bin/sh', '-c', 'exit 0');
      assert.equal(ok.code, 0, ok.stderr);
    });

    test('SIGTERM to sysprime hangs the command up, then everything is undone; verbs that would pull the tree away refuse meanwhile', async () => {
      const sh = startShell(s.config, ['base', ...WAIT]);
      await sh.ready;
      assert.notDeepEqual(chrootMounts(s), before0, 'mounted while it runs');
      for (const verb of [['destroy', 'base'], ['rename', 'base', 'other'], ['umount', 'base'], ['shell', 'base', '--', '/bin/sh', '-c', 'exit 0']]) {
        const r = await sp(...verb);
        assert.equal(r.code, 6, `${verb.join(' ')} while a shell is open: ${r.stderr}`);
      }
      sh.child.kill('SIGTERM');
      assert.equal(await sh.done, 129, 'the command got SIGHUP, as from a closed terminal: 128 + 1');
      assert.deepEqual(chrootMounts(s), before0);
      assert.equal(waiting(), '', 'nothing of it runs any more');
    });

    test('after a kill -9 of sysprime, the next shell in that environment stops what the dead one left and unmounts it first', async () => {
      const sh = startShell(s.config, ['base', ...WAIT]);
      await sh.ready;
      sh.child.kill('SIGKILL');
      await sh.done;
      assert.notDeepEqual(chrootMounts(s), before0, 'a kill -9 leaves the mounts (and the command) behind');
      assert.notEqual(waiting(), '', 'and the command');
      const r = await sp('-v', 'shell', 'base', '--', '/bin/sh', '-c', 'exit 0');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /recovered: .*unmounted/);
      assert.deepEqual(chrootMounts(s), before0);
      assert.equal(waiting(), '', 'the dead shell\'s command was stopped');
      await inEnv('base', (root) => {
        assert.ok(!existsSync(join(root, 'usr/sbin/policy-rc.d')), 'no policy-rc.d is left in the environment');
        for (const d of CREATED) assert.ok(!existsSync(join(root, d)), `no ${d} is left where the tree had none`);
        assert.ok(!existsSync(join(root, '.sysprime-chroot-created')), 'nor the record of them');
      });
    });

    test('after a kill -9 and a reboot (mounts and processes gone, the lock row left), the next shell puts back the files the dead one substituted', async () => {
      const sh = startShell(s.config, ['base', ...WAIT]);
      await sh.ready;
      sh.child.kill('SIGKILL');
      await sh.done;
      // What a reboot does: every process and mount gone; the tree and the state database stay.
      spawnSync('pkill', ['-KILL', '-f', 'echo ready; read line']);
      const left = chrootMounts(s).filter((m) => !before0.includes(m)).reverse();
      for (const m of left) spawnSync('umount', ['-l', m]);
      assert.deepEqual(chrootMounts(s), before0);
      await inEnv('base', (root) => assert.match(readFileSync(join(root, 'usr/sbin/policy-rc.d'), 'utf8'), /exit 101/, 'the dead shell\'s policy-rc.d is still there'));
      const r = await sp('-v', 'shell', 'base', '--', '/bin/sh', '-c', 'exit 0');
      assert.equal(r.code, 0, r.stderr);
      await inEnv('base', (root) => {
        assert.ok(!existsSync(join(root, 'usr/sbin/policy-rc.d')), 'put back: no service is kept from starting in it');
        for (const d of CREATED) assert.ok(!existsSync(join(root, d)), `the ${d} the dead shell created is gone`);
      });
    });

    test('after a kill -9, prune undoes what the dead shell left before it judges the environment: it is not kept as mounted', async () => {
      const sh = startShell(s.config, ['base', ...WAIT]);
      await sh.ready;
      sh.child.kill('SIGKILL');
      await sh.done;
      assert.notDeepEqual(chrootMounts(s), before0, 'a kill -9 leaves the mounts (and the command) behind');
      const r = await sp('-v', 'prune');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /recovered: .*unmounted/);
      assert.match(r.stdout, /^kept base: it is the default boot environment/m);
      assert.doesNotMatch(r.stdout, /mounted/, 'judged by what really holds it: nothing');
      assert.deepEqual(chrootMounts(s), before0);
      assert.equal(waiting(), '', 'the dead shell\'s command was stopped');
      await inEnv('base', (root) => {
        assert.ok(!existsSync(join(root, 'usr/sbin/policy-rc.d')), 'its policy-rc.d is gone');
        for (const d of CREATED) assert.ok(!existsSync(join(root, d)), `the ${d} it created is gone`);
      });
      const next = await sp('-v', 'shell', 'base', '--', '/bin/sh', '-c', 'exit 0');
      assert.equal(next.code, 0, next.stderr);
      assert.doesNotMatch(next.stderr, /recovered:/, 'the next shell finds nothing left to undo');
    });

    test('refusals: a missing environment, a mounted one; nothing is left behind', async () => {
      const missing = await sp('shell', 'nope', '--', '/bin/sh', '-c', 'exit 0');
      assert.notEqual(missing.code, 0);
      assert.match(missing.stderr, /nope/);
      const mnt = join(dir, 'held');
      assert.equal((await sp('mount', 'base', mnt)).code, 0);
      try {
        const r = await sp('shell', 'base', '--', '/bin/sh', '-c', 'exit 0');
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /"base" is mounted at .*sysprime umount base/s);
      } finally {
        assert.equal((await sp('umount', 'base')).code, 0);
      }
      assert.ok(!existsSync(join('/run/sysprime/shell', 'base')), 'no note of an open shell is left');
      assert.deepEqual(chrootMounts(s), before0);
    });
  });
}
