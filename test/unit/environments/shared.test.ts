/** Which shared paths are on their own filesystem and which are at risk inside the root. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { atRiskMessage, classifySharedPaths, sharedPathsOf, type TreeKind } from '../../../src/environments/shared.js';
import { cloneDefaults } from '../../../src/config/schema.js';
import { loadRules } from '../../../src/drift/rules.js';
import { ruleFor } from '../../../src/bart/rules.js';
import { parseFstab } from '../../../src/os/mounts.js';
import { parseConfigText } from '../../../src/config/load.js';
import { readTextAt } from '../../../src/os/confined.js';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const tree = (kinds: Record<string, TreeKind>) => (p: string): TreeKind => kinds[p] ?? 'same-filesystem';

test('a directory of the root filesystem is at risk; a mount, an fstab line or another filesystem in the tree is not', () => {
  const r = classifySharedPaths(['/home', '/srv', '/var/lib/mysql', '/var/log', '/var/mail', '/var/spool'], {
    mounted: ['/srv'],
    fstab: ['/var'],
    inTree: tree({ '/var/lib/mysql': 'missing', '/home': 'other-filesystem' }),
  });
  assert.deepEqual(
    r.map((s) => [s.path, s.where]),
    [
      ['/home', 'own'],
      ['/srv', 'own'],
      ['/var/log', 'own'],
      ['/var/mail', 'own'],
      ['/var/spool', 'own'],
    ],
  );
  assert.equal(r.find((s) => s.path === '/var/log')?.why, '/etc/fstab mounts /var apart from the root');
});

test('the at-risk message names the path, what sysprime does and what to do', () => {
  const [s] = classifySharedPaths(['/home'], { mounted: ['/'], fstab: ['/'], inTree: tree({}) });
  assert.deepEqual(s, {
    path: '/home',
    where: 'at-risk',
    why: '/home is inside the root filesystem: its files are copied into each new environment at staging and first boot; put it on its own subvolume/dataset to share it (see docs/shared-data.md)',
  });
});

test('a shared path that is a link is left to the rules that cover it', () => {
  assert.deepEqual(classifySharedPaths(['/var/mail'], { mounted: [], fstab: [], inTree: tree({ '/var/mail': 'not-a-directory' }) }), []);
});

test('[shared] paths adds to the built-in ones, and refuses what a rules line could not say', () => {
  const c = parseConfigText('[shared]\npaths = ["/data", "/var/lib/app"]\n', 'test');
  assert.deepEqual(sharedPathsOf(c), ['/data', '/home', '/root', '/srv', '/var/lib/app', '/var/lib/mysql', '/var/lib/postgresql', '/var/log', '/var/mail', '/var/spool']);
  for (const bad of ['"data"', '["data"]', '["/a b"]', '["/a/*"]', '["/a/../b"]', '["/a/"]', '["/"]']) {
    assert.throws(() => parseConfigText(`[shared]\npaths = ${bad}\n`, 'test'), /'shared\.paths' must be a list of absolute paths/, bad);
  }
});

test('the rules check the paths at risk whatever the shipped rules say, and the digest tells the sets apart', () => {
  const config = cloneDefaults();
  const plain = loadRules(config);
  const withHome = loadRules(config, ['/home']);
  const flags = (r: typeof plain, p: string) => ruleFor(r.rules, p, 'F')?.flags ?? 0;
  assert.equal(flags(plain, '/home/alice/notes.txt'), 0, 'left out by the shipped rules');
  assert.notEqual(flags(withHome, '/home/alice/notes.txt'), 0, 'checked when /home is at risk');
  assert.equal(flags(withHome, '/var/cache/x'), 0, 'the rest is as shipped');
  assert.notEqual(plain.digest, withHome.digest);
});

test('fstab: comments, escapes and options', () => {
  const e = parseFstab('# comment\nUUID=1 / btrfs subvol=@rootfs 0 0\nUUID=1\t/home\\040x btrfs subvol=@home,noatime 0 0\n\n/swap none swap sw 0 0\n');
  assert.deepEqual(
    e.map((x) => [x.mountPoint, x.fsType, x.options]),
    [
      ['/', 'btrfs', ['subvol=@rootfs']],
      ['/home x', 'btrfs', ['subvol=@home', 'noatime']],
      ['none', 'swap', ['sw']],
    ],
  );
});

test("an environment's fstab is read inside it, never through a link", () => {
  const dir = mkdtempSync(join(tmpdir(), 'sysprime-shared-unit-'));
  try {
    const outside = join(dir, 'outside');
    mkdirSync(join(outside, 'etc'), { recursive: true });
    writeFileSync(join(outside, 'etc/fstab'), 'UUID=1 /home btrfs subvol=@home 0 0\n');
    const tree = join(dir, 'tree');
    mkdirSync(tree);
    symlinkSync(join(outside, 'etc'), join(tree, 'etc'));
    assert.equal(readTextAt(tree, '/etc/fstab'), null, 'etc is a link');
    rmSync(join(tree, 'etc'));
    mkdirSync(join(tree, 'etc'));
    symlinkSync(join(outside, 'etc/fstab'), join(tree, 'etc/fstab'));
    assert.equal(readTextAt(tree, '/etc/fstab'), null, 'fstab is a link');
    rmSync(join(tree, 'etc/fstab'));
    writeFileSync(join(tree, 'etc/fstab'), 'LABEL=x /srv ext4 defaults 0 2\n');
    assert.equal(readTextAt(tree, '/etc/fstab'), 'LABEL=x /srv ext4 defaults 0 2\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the paths at risk are named in one line, however many there are', () => {
  assert.equal(atRiskMessage(['/home']), atRiskMessage('/home'));
  assert.equal(
    atRiskMessage(['/home', '/root', '/var/log']),
    '/home, /root and /var/log are inside the root filesystem: their files are copied into each new environment at staging and first boot; put each on its own subvolume/dataset to share it (see docs/shared-data.md)',
  );
});

test('a shared path on a child dataset of the environment (zsys) is at risk: each environment has its own clone of it', () => {
  const r = classifySharedPaths(['/home', '/var/lib/mysql', '/var/spool'], {
    mounted: ['/home', '/var/lib', '/var/lib/mysql', '/var/spool'],
    parts: ['/var/lib', '/var/spool'],
    fstab: [],
    inTree: tree({ '/home': 'other-filesystem', '/var/lib/mysql': 'other-filesystem', '/var/spool': 'other-filesystem' }),
  });
  assert.deepEqual(
    r.map((s) => [s.path, s.where]),
    [
      ['/home', 'own'],
      ['/var/lib/mysql', 'own'],
      ['/var/spool', 'at-risk'],
    ],
  );
  assert.match(r[2]!.why, /^\/var\/spool is on \/var\/spool, a child dataset of the environment that each environment has its own clone of: its files are copied/);
});
