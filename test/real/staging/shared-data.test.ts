/**
 * Users' data inside the root is never left behind: on the Debian
 * installer's Btrfs layout (one subvolume `@rootfs` holding everything) and
 * on a ZFS dataset holding everything, files written in /home, a crontab and
 * a mailbox after `init` are in the staged environment, a file deleted from
 * /home stays deleted, and what is written after staging arrives at the first
 * boot. With /home on a subvolume of its own (Ubuntu's `@home`), nothing of
 * it is copied and nothing says it is at risk.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { makeBtrfsPool } from '../../fixtures/btrfs-pool.js';
import { makeZfsScratch } from '../../fixtures/zfs-scratch.js';
import { writeOsTree } from '../../fixtures/os-tree.js';
import { environmentMounter, sysprime } from '../../fixtures/cli.js';

interface Layout {
  config: string;
  adopt: string;
  /** The top-level subvolume (Btrfs). */
  top?: string;
  cleanup(): Promise<void>;
}

/** The update: a new version of a packaged file, its own log line, a log of its own. */
function updateScript(dir: string): string {
  const script = join(dir, 'update.sh');
  writeFileSync(
    script,
    `#!/bin/sh
set -e
r="$SYSPRIME_ROOT"
echo 2 > "$r/usr/share/doc/demo/VERSION"
echo 'update ran' >> "$r/var/log/messages"
echo 'installed demo 2' > "$r/var/log/update.log"
`,
  );
  chmodSync(script, 0o755);
  return script;
}

/** What the installer left: a user's home with a file in it, the spool and mail directories. */
function writeInstalledTree(root: string): void {
  writeOsTree(root);
  mkdirSync(join(root, 'home/alice'), { recursive: true });
  writeFileSync(join(root, 'home/alice/.profile'), 'PATH=$HOME/bin:$PATH\n');
  writeFileSync(join(root, 'home/alice/old.txt'), 'from the installer\n');
  chownSync(join(root, 'home/alice'), 1000, 1000);
  chownSync(join(root, 'home/alice/old.txt'), 1000, 1000);
  mkdirSync(join(root, 'var/spool/cron'), { recursive: true });
  mkdirSync(join(root, 'var/mail'), { recursive: true, mode: 0o2775 });
}

function toml(stateDir: string, backend: string, dir: string): string {
  return `${backend}\n[state]\ndir = "${stateDir}"\n[boot]\nloader = "none"\n[update]\nmethod = "command"\ncommand = "${updateScript(dir)}"\nchroot = false\n`;
}

/** Debian 12's installer on Btrfs: `@rootfs` holds everything; with `homeOwn`, /home is `@home` mounted by fstab (Ubuntu's layout). */
async function btrfsLayout(dir: string, homeOwn: boolean): Promise<Layout> {
  const pool = await makeBtrfsPool({ sizeMiB: 512 });
  try {
    await run('btrfs', ['-q', 'subvolume', 'create', join(pool.top, '@rootfs')]);
    const root = join(pool.top, '@rootfs');
    writeInstalledTree(root);
    const uuid = (await run('blkid', ['-s', 'UUID', '-o', 'value', pool.device])).stdout.trim();
    let fstab = `UUID=${uuid} / btrfs defaults,subvol=@rootfs 0 0\n`;
    if (homeOwn) {
      await run('btrfs', ['-q', 'subvolume', 'create', join(pool.top, '@home')]);
      // The installer's files are on @home; the root keeps only the empty mount point.
      await run('cp', ['-a', join(root, 'home/alice'), join(pool.top, '@home/')]);
      rmSync(join(root, 'home/alice'), { recursive: true });
      fstab += `UUID=${uuid} /home btrfs defaults,subvol=@home 0 0\n`;
    }
    writeFileSync(join(root, 'etc/fstab'), fstab);
    const stateDir = mkdtempSync(join(tmpdir(), 'sysprime-state-'));
    const config = join(stateDir, 'sysprime.toml');
    writeFileSync(config, toml(stateDir, `backend = "btrfs"\n[btrfs]\ntop = "${pool.top}"`, dir));
    return {
      config,
      adopt: '@rootfs',
      top: pool.top,
      async cleanup() {
        await pool.cleanup();
        rmSync(stateDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await pool.cleanup();
    throw err;
  }
}

/** One dataset holding everything. */
function zfsLayout(dir: string): Promise<Layout> {
  return makeZfsScratch(`[update]\nmethod = "command"\ncommand = "${updateScript(dir)}"\nchroot = false\n`, writeInstalledTree);
}


/** The paths the one at-risk line of a verb's output names (`warning:`, `at risk:` or `shared-data:`). */
function namedAtRisk(text: string): string[] {
  const m = /(?:warning: |at risk: +|shared-data: )(\/[^\n]*?) (?:is|are) inside the root filesystem/.exec(text);
  return m === null ? [] : m[1]!.split(/, | and /);
}

for (const kind of ['btrfs', 'zfs'] as const) {
  describe(`shared data inside the root on ${kind}`, () => {
    let l: Layout;
    let dir: string;
    let mnt: string;
    const sp = (...args: string[]) => sysprime(args, { config: l.config });
    const inEnv = environmentMounter(sp, () => mnt);

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sysprime-shared-'));
      mnt = join(dir, 'mnt');
      l = kind === 'btrfs' ? await btrfsLayout(dir, false) : await zfsLayout(dir);
    });
    after(async () => {
      await l?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    test('init names every shared path inside the root', async () => {
      const r = await sp('init', '--adopt', l.adopt, '--name', 'base');
      assert.equal(r.code, 0, r.stderr);
      // One line names them all (an installer's one-subvolume root has many), not one line each.
      const warnings = r.stderr.split('\n').filter((line) => line.includes('inside the root filesystem'));
      assert.deepEqual(warnings, ['warning: /home, /root, /srv, /var/log, /var/mail and /var/spool are inside the root filesystem: their files are copied into each new environment at staging and first boot; put each on its own subvolume/dataset to share it (see docs/shared-data.md)'], r.stderr);
      assert.doesNotMatch(r.stderr, /\/var\/lib\/mysql/, 'a shared path the environment does not have is not named');
    });

    test('status and doctor name the paths at risk, and carry them in --json', async () => {
      const st = await sp('status');
      assert.equal(st.code, 0, st.stderr);
      assert.match(st.stdout, /^at risk: {5}\/home, \/root, \/srv, \/var\/log, \/var\/mail and \/var\/spool are inside the root filesystem: .*see docs\/shared-data\.md\)$/m);
      assert.equal(st.stdout.split('\n').filter((line) => line.startsWith('at risk:')).length, 1, 'one line for all of them');
      const sj = (await sp('--json', 'status')).json<{ shared: { path: string; where: string }[] }>();
      assert.deepEqual(
        sj.shared.filter((p) => p.where === 'at-risk').map((p) => p.path),
        ['/home', '/root', '/srv', '/var/log', '/var/mail', '/var/spool'],
      );
      const doc = await sp('doctor');
      assert.match(doc.stdout, /^shared-data: \/home, .*\/var\/spool are inside the root filesystem/m);
      const dj = (await sp('--json', 'doctor')).json<{ shared: { path: string; where: string }[] }>();
      assert.ok(dj.shared.some((p) => p.path === '/var/mail' && p.where === 'at-risk'));
    });

    test("users' files written after init are in the staged environment, with modes and owners, and a deletion too", async () => {
      await inEnv('base', (root) => {
        writeFileSync(join(root, 'home/alice/notes.txt'), 'remember the milk\n');
        chownSync(join(root, 'home/alice/notes.txt'), 1000, 1000);
        chmodSync(join(root, 'home/alice/notes.txt'), 0o640);
        unlinkSync(join(root, 'home/alice/old.txt'));
        mkdirSync(join(root, 'var/spool/cron/crontabs'));
        chownSync(join(root, 'var/spool/cron/crontabs'), 0, 101);
        chmodSync(join(root, 'var/spool/cron/crontabs'), 0o1730);
        writeFileSync(join(root, 'var/spool/cron/crontabs/root'), '0 3 * * * /usr/local/bin/backup\n', { mode: 0o600 });
        chmodSync(join(root, 'var/spool/cron/crontabs/root'), 0o600);
        writeFileSync(join(root, 'var/mail/alice'), 'From root  Sat Dec  5 01:00:00 2026\nSubject: hello\n\nhi\n');
        chownSync(join(root, 'var/mail/alice'), 1000, 8);
        chmodSync(join(root, 'var/mail/alice'), 0o660);
        appendFileSync(join(root, 'var/log/messages'), 'the running system logged this\n');
        // An admin change, to see it is not buried.
        writeFileSync(join(root, 'etc/motd'), 'welcome\n');
      });

      const r = await sp('stage');
      assert.equal(r.code, 0, r.stderr);
      await inEnv('gen-1', (root) => {
        assert.equal(readFileSync(join(root, 'usr/share/doc/demo/VERSION'), 'utf8'), '2\n', 'the update itself');
        assert.equal(readFileSync(join(root, 'home/alice/notes.txt'), 'utf8'), 'remember the milk\n');
        const notes = statSync(join(root, 'home/alice/notes.txt'));
        assert.deepEqual([notes.mode & 0o7777, notes.uid, notes.gid], [0o640, 1000, 1000]);
        assert.ok(!existsSync(join(root, 'home/alice/old.txt')), 'deleted by the user: stays deleted');
        assert.equal(readFileSync(join(root, 'home/alice/.profile'), 'utf8'), 'PATH=$HOME/bin:$PATH\n');
        const crontabs = statSync(join(root, 'var/spool/cron/crontabs'));
        assert.deepEqual([crontabs.mode & 0o7777, crontabs.uid, crontabs.gid], [0o1730, 0, 101]);
        const tab = statSync(join(root, 'var/spool/cron/crontabs/root'));
        assert.deepEqual([tab.mode & 0o7777, tab.uid, tab.gid], [0o600, 0, 0]);
        assert.equal(readFileSync(join(root, 'var/spool/cron/crontabs/root'), 'utf8'), '0 3 * * * /usr/local/bin/backup\n');
        const mail = statSync(join(root, 'var/mail/alice'));
        assert.deepEqual([mail.mode & 0o7777, mail.uid, mail.gid], [0o660, 1000, 8]);
        assert.match(readFileSync(join(root, 'var/mail/alice'), 'utf8'), /Subject: hello/);
        assert.equal(readFileSync(join(root, 'var/log/messages'), 'utf8'), 'boot\nthe running system logged this\n', "both changed it: the running system's version, no merge");
        assert.equal(readFileSync(join(root, 'var/log/update.log'), 'utf8'), 'installed demo 2\n', 'what only the update wrote stays');
        assert.ok(!existsSync(join(root, 'var/log/messages.sysprime-new')));
        assert.equal(readFileSync(join(root, 'etc/motd'), 'utf8'), 'welcome\n');
        const reports = readdirSync(join(root, 'var/lib/sysprime/reintegration'));
        const report = readFileSync(join(root, 'var/lib/sysprime/reintegration', reports[0]!), 'utf8');
        assert.match(report, /Applied:\n {2}\/etc\/motd\n[\s\S]*Shared data \(users' files inside the root[^\n]*\n[\s\S]*\/home\/alice\/notes\.txt/);
      });
      assert.match(r.stderr, /warning: [^\n]*\/home[^\n]* (is|are) inside the root filesystem/);
    });

    test("drift lists users' files apart, so they do not bury the admin's changes", async () => {
      type Item = { display: string };
      const drift = await sp('--json', 'drift');
      assert.equal(drift.code, 1, 'the admin changed /etc/motd');
      const d = drift.json<{ counts: { added: number }; items: Item[]; sharedData: { paths: string[]; items: Item[] } }>();
      assert.deepEqual(
        d.items.map((i) => i.display),
        ['/etc/motd'],
      );
      assert.deepEqual(d.sharedData.paths, ['/home', '/var/log', '/var/mail', '/var/spool'], 'the ones the shipped rules leave out; /root and /srv were drift before and stay in it');
      const shared = d.sharedData.items.map((i) => i.display);
      for (const p of ['/home/alice/notes.txt', '/home/alice/old.txt', '/var/spool/cron/crontabs/root', '/var/mail/alice', '/var/log/messages']) assert.ok(shared.includes(p), `${p} in ${shared.join(' ')}`);
      const text = await sp('drift');
      assert.match(text.stdout, /added +\/etc\/motd[\s\S]*^1 paths: 1 added, 0 removed, 0 modified\nshared data: \d+ paths changed under \/home, \/var\/log, \/var\/mail, \/var\/spool \(users' files/m);
      assert.doesNotMatch(text.stdout, /notes\.txt/);
    });

    test('a file written in /home after staging arrives at the first boot', async () => {
      await inEnv('base', (root) => {
        writeFileSync(join(root, 'home/alice/after-staging.txt'), 'written after staging\n');
        writeFileSync(join(root, 'var/mail/alice'), 'read and emptied\n');
      });
      const r = await sp('reintegrate', '--first-boot', '--to', 'gen-1');
      assert.equal(r.code, 0, r.stderr);
      await inEnv('gen-1', (root) => {
        assert.equal(readFileSync(join(root, 'home/alice/after-staging.txt'), 'utf8'), 'written after staging\n');
        assert.equal(readFileSync(join(root, 'var/mail/alice'), 'utf8'), 'read and emptied\n');
        assert.equal(readFileSync(join(root, 'home/alice/notes.txt'), 'utf8'), 'remember the milk\n', 'the staging result stays');
        assert.ok(!existsSync(join(root, 'home/alice/old.txt')));
      });
    });
  });
}

describe('/home on a subvolume of its own (fstab mounts @home)', () => {
  let l: Layout;
  let dir: string;
  const sp = (...args: string[]) => sysprime(args, { config: l.config });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-shared-'));
    l = await btrfsLayout(dir, true);
  });
  after(async () => {
    await l?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('is not at risk, and nothing of it is copied', async () => {
    const init = await sp('init', '--adopt', l.adopt, '--name', 'base');
    assert.equal(init.code, 0, init.stderr);
    assert.ok(namedAtRisk(init.stderr).length > 0, init.stderr);
    assert.ok(!namedAtRisk(init.stderr).includes('/home'), init.stderr);
    assert.ok(namedAtRisk(init.stderr).includes('/var/spool'), 'the rest of the root still is');
    const sj = (await sp('--json', 'status')).json<{ shared: { path: string; where: string; why: string }[] }>();
    assert.deepEqual(sj.shared.find((p) => p.path === '/home'), { path: '/home', where: 'own', why: '/etc/fstab mounts /home apart from the root' });
    const status = (await sp('status')).stdout;
    assert.ok(namedAtRisk(status).includes('/var/spool') && !namedAtRisk(status).includes('/home'), status);
    // The user writes on @home, which every environment mounts.
    writeFileSync(join(l.top!, '@home/alice/notes.txt'), 'on the shared subvolume\n');
    const r = await sp('stage');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!namedAtRisk(r.stderr).includes('/home'), r.stderr);
    const staged = join(l.top!, 'ROOT/gen-1');
    assert.deepEqual(readdirSync(join(staged, 'home')), [], 'the mount point stays empty');
    const report = readFileSync(join(staged, 'var/lib/sysprime/reintegration', readdirSync(join(staged, 'var/lib/sysprime/reintegration'))[0]!), 'utf8');
    assert.doesNotMatch(report, /\/home/);
  });
});
