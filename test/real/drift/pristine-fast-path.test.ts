/**
 * The manifest of a new pristine snapshot made from the kept manifest of
 * the older one it descends from and `btrfs send --no-data -p` between the
 * two, on a real loop-file Btrfs: after a staging with the store updater and
 * after hand-made changes of every kind, it is exactly what a full walk of
 * the new snapshot gives (entries, side index, header); between unrelated
 * snapshots the tree is walked.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  appendFileSync, chmodSync, chownSync, linkSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeScratch, type Scratch } from '../../fixtures/scratch.js';
import { sysprime } from '../../fixtures/cli.js';
import { publishVersion, type PackageFiles, ALLOW_UNSIGNED } from '../../fixtures/store-repo.js';
import { OS_FILES } from '../../fixtures/os-tree.js';
import { run } from '../../../src/process/run.js';
import { createBtrfsBackend } from '../../../src/backends/btrfs/index.js';
import { createManifest, formatEntry, formatIndex, type Manifest } from '../../../src/bart/index.js';
import { pristineManifestFromChanges } from '../../../src/drift/changes.js';
import { loadRules } from '../../../src/drift/rules.js';
import { cloneDefaults } from '../../../src/config/schema.js';
import { openState } from '../../../src/state/db.js';
import { loadManifest } from '../../../src/state/manifests.js';

const RULES = `# everything, directory times and extended attributes included
/
CHECK all
CHECK xattr
/var/log
IGNORE all
/ *.swp
IGNORE all
`;

/** A path with bytes that are not UTF-8, for node:fs. */
const raw = (root: string, rel: string): Buffer => Buffer.concat([Buffer.from(root + '/', 'utf8'), Buffer.from(rel, 'latin1')]);

function lines(m: Manifest): string[] {
  return m.entries.map(formatEntry);
}

/** The OS tree's /usr as a store package, at a version. */
function osPackage(version: string): PackageFiles {
  const files: PackageFiles = {};
  for (const [path, text] of Object.entries(OS_FILES)) if (path.startsWith('usr/')) files[path] = text;
  files['usr/bin/demo'] = { content: `#!/bin/sh\necho "demo ${version}"\n`, mode: 0o755 };
  files['usr/lib/os-release'] = `PRETTY_NAME="Demo Linux ${version}"\nID=demo\nVERSION_ID=${version}\n`;
  for (let i = 0; i < 40; i++) files[`usr/share/demo/data-${i}`] = `data ${i} of ${i % 4 === 0 ? version : 'every version'}\n`;
  return files;
}

describe('pristine manifests from btrfs send --no-data between two pristine snapshots', () => {
  let s: Scratch;
  let dir: string;
  let repo: string;
  let rulesPath: string;
  const sp = (...args: string[]) => sysprime(args, { config: s.config });
  // The scratch tree's shared paths are directories of its root: sysprime checks them whatever the rules file says
  // (docs/shared-data.md), so the walks compared with its manifests use the same rules.
  const rules = () => loadRules({ ...cloneDefaults(), bart: { hash: 'xxh64', rules: rulesPath } }, ['/home', '/root', '/srv', '/var/log']).rules;
  const pristinePath = (base: string) => join(s.where, 'ROOT', '.pristine', base);

  /** The manifest sysprime kept for a generation's pristine snapshot. */
  function kept(generation: number): Manifest {
    const db = openState(s.stateDir);
    try {
      const m = loadManifest(db, `pristine:${generation}`);
      assert.ok(m, `a manifest of generation ${generation}'s pristine snapshot is kept`);
      return m;
    } finally {
      db.close();
    }
  }

  async function assertSameAsWalk(m: Manifest, tree: string): Promise<void> {
    const walked = (await createManifest({ root: tree, rules: rules() })).manifest;
    assert.deepEqual(lines(m), lines(walked));
    assert.equal(m.header.xattrs, walked.header.xattrs);
    assert.equal(m.header.root, walked.header.root);
    assert.equal(m.header.hash, walked.header.hash);
    // Same devices, inodes and times: a later incremental walk trusts the same digests.
    assert.equal(formatIndex(m), formatIndex(walked));
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-pristine-fast-'));
    repo = join(dir, 'repo');
    rulesPath = join(dir, 'drift.rules');
    writeFileSync(rulesPath, RULES);
    s = await makeScratch('btrfs', `[update]\nmethod = "store"\nrepository = "${repo}"\n${ALLOW_UNSIGNED}[bart]\nrules = "${rulesPath}"\n`);
    const at = join(s.where, '@');
    writeFileSync(join(at, 'etc/hl-a'), 'shared\n');
    linkSync(join(at, 'etc/hl-a'), join(at, 'etc/hl-b'));
    linkSync(join(at, 'etc/hl-a'), join(at, 'usr/share/hl-c'));
    for (const d of ['srv/app/conf', 'srv/app/data/cache', 'opt/tool/lib']) mkdirSync(join(at, d), { recursive: true });
    writeFileSync(join(at, 'srv/app/conf/app.conf'), 'mode = a\n');
    writeFileSync(join(at, 'srv/app/data/cache/blob'), 'x'.repeat(5000));
    writeFileSync(join(at, 'etc/old name'), 'old\n');
    writeFileSync(join(at, 'etc/xa'), 'xa\n');
    writeFileSync(join(at, 'etc/xb'), 'xb\n');
    await run('setfattr', ['-n', 'user.k', '-v', 'one', join(at, 'etc/xa')]);
    await run('setfattr', ['-n', 'user.gone', '-v', 'soon', join(at, 'etc/xb')]);
    await publishVersion(repo, 'demo-os', '1', osPackage('1'));
    const r = await sp('init', '--adopt', s.adopt, '--name', 'base');
    assert.equal(r.code, 0, r.stderr);
  });

  after(async () => {
    await s?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('staging with the store updater: the new pristine manifest is made from the old one, and equals a walk', async () => {
    const drift = await sp('drift');
    assert.ok(drift.code === 0 || drift.code === 1, drift.stderr);
    await assertSameAsWalk(kept(0), pristinePath('base'));

    const staged = await sp('-v', '--json', 'stage');
    assert.equal(staged.code, 0, staged.stderr);
    assert.match(staged.stderr, /manifest of the pristine snapshot of generation 1 from btrfs send --no-data -p ROOT\/\.pristine\/base ROOT\/\.pristine\/gen-1: \d+ changes listed/);
    await assertSameAsWalk(kept(1), pristinePath('gen-1'));

    // A second update on top: generation 2 from generation 1's manifest, which was itself patched.
    await publishVersion(repo, 'demo-os', '2', osPackage('2'));
    const again = await sp('-v', '--json', 'stage');
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /manifest of the pristine snapshot of generation 2 from btrfs send --no-data -p ROOT\/\.pristine\/gen-1 ROOT\/\.pristine\/gen-2/);
    await assertSameAsWalk(kept(2), pristinePath('gen-2'));
  });

  test('hand-made changes of every kind between the two snapshots: the same as a walk', async () => {
    const backend = createBtrfsBackend({ top: s.where });
    await backend.cloneFromPristine(2, 'hand');
    const e = s.envPath!('hand');
    writeFileSync(join(e, 'etc/demo.conf'), readFileSync(join(e, 'etc/demo.conf'), 'utf8').replace('workers = 2', 'workers = 8'));
    writeFileSync(join(e, 'etc/motd'), 'hello\n');
    unlinkSync(join(e, 'etc/default/demo'));
    rmSync(join(e, 'srv/app/data'), { recursive: true });
    renameSync(join(e, 'etc/hostname'), join(e, 'etc/hostname.bak'));
    renameSync(join(e, 'srv/app/conf'), join(e, 'srv/conf-moved'));
    appendFileSync(join(e, 'srv/conf-moved/app.conf'), 'mode = b\n');
    chmodSync(join(e, 'etc/shadow'), 0o600);
    chownSync(join(e, 'etc/passwd'), 0, 42);
    await run('setfattr', ['-n', 'user.k', '-v', 'two', join(e, 'etc/xa')]);
    await run('setfattr', ['-x', 'user.gone', join(e, 'etc/xb')]);
    await run('setfacl', ['-m', 'u:1234:r', join(e, 'usr/bin/demo')]);
    unlinkSync(join(e, 'etc/os-release'));
    symlinkSync('/usr/lib/os-release-2', join(e, 'etc/os-release'));
    // One name of a three-name inode is written: the other two change with it.
    appendFileSync(join(e, 'etc/hl-b'), 'more\n');
    mkdirSync(join(e, 'usr/local/bin'), { recursive: true });
    linkSync(join(e, 'usr/bin/demo'), join(e, 'usr/local/bin/demo-link'));
    writeFileSync(join(e, 'etc/new\nline'), 'newline\n');
    writeFileSync(raw(e, 'etc/bad\xff\xfe name'), 'not utf-8\n');
    renameSync(join(e, 'etc/old name'), raw(e, 'etc/renamed \xe9\n'));
    mkdirSync(join(e, 'opt/newdir/deeper'), { recursive: true });
    writeFileSync(join(e, 'opt/newdir/deeper/f'), 'deep\n');
    writeFileSync(join(e, 'etc/ignored.swp'), 'ignored by the rules\n');
    await run('mkfifo', [join(e, 'srv/fifo')]);
    for (let i = 0; i < 5; i++) unlinkSync(join(e, `usr/share/demo/data-${i}`));
    for (let i = 10; i < 20; i++) await run('touch', ['-a', '-d', '2001-01-01', join(e, `usr/share/demo/data-${i}`)]);
    await backend.setGeneration('hand', 3);
    await backend.takePristine('hand', 3);

    const older = kept(2);
    const fast = await pristineManifestFromChanges({
      backend,
      older: { generation: 2, manifest: older },
      newer: { generation: 3, path: pristinePath('hand') },
      rules: rules(),
      hash: 'xxh64',
    });
    assert.ok(fast.ok, fast.ok ? '' : fast.reason);
    await assertSameAsWalk(fast.result.manifest, pristinePath('hand'));
    assert.ok(fast.result.reread < fast.result.manifest.entries.length / 2, `read ${fast.result.reread} of ${fast.result.manifest.entries.length} entries again`);

    // The older manifest kept from another boot, where the snapshot had another device number.
    const elsewhere: Manifest = { ...older, entries: older.entries.map((x) => (x.stat ? { ...x, stat: { ...x.stat, dev: x.stat.dev + 1000 } } : x)) };
    const fromElsewhere = await pristineManifestFromChanges({
      backend,
      older: { generation: 2, manifest: elsewhere },
      newer: { generation: 3, path: pristinePath('hand') },
      rules: rules(),
      hash: 'xxh64',
    });
    assert.ok(fromElsewhere.ok, fromElsewhere.ok ? '' : fromElsewhere.reason);
    await assertSameAsWalk(fromElsewhere.result.manifest, pristinePath('hand'));

    // Through sysprime: drift of the environment makes and keeps generation 3's manifest that way.
    const drift = await sp('-v', 'drift', 'hand');
    assert.ok(drift.code === 0 || drift.code === 1, drift.stderr);
    assert.match(drift.stderr, /manifest of the pristine snapshot of generation 3 from btrfs send --no-data -p ROOT\/\.pristine\/gen-2 ROOT\/\.pristine\/hand/);
    await assertSameAsWalk(kept(3), pristinePath('hand'));
  });

  test('a pristine snapshot that does not descend from the older one: the tree is walked', async () => {
    const backend = createBtrfsBackend({ top: s.where });
    await backend.createEmpty('stranger', 4);
    await run('cp', ['-a', '--reflink=never', `${s.envPath!('hand')}/.`, s.envPath!('stranger')]);
    await backend.takePristine('stranger', 4);
    const listing = await backend.changesBetweenPristines!(3, 4);
    assert.equal(listing.ok, false);
    assert.match(listing.ok ? '' : listing.reason, /does not descend from ROOT\/\.pristine\/hand/);

    const drift = await sp('-v', 'drift', 'stranger');
    assert.ok(drift.code === 0 || drift.code === 1, drift.stderr);
    assert.match(drift.stderr, /generation 4: not from generation 3's \(.*does not descend/);
    assert.match(drift.stderr, /manifest of the pristine snapshot of generation 4: walked/);
    await assertSameAsWalk(kept(4), pristinePath('stranger'));
  });

  test('SYSPRIME_DRIFT_METHOD=walk walks the new pristine snapshot', async () => {
    const backend = createBtrfsBackend({ top: s.where });
    await backend.cloneFromPristine(3, 'walked');
    writeFileSync(join(s.envPath!('walked'), 'etc/motd'), 'walked\n');
    await backend.setGeneration('walked', 5);
    await backend.takePristine('walked', 5);
    const drift = await sysprime(['-v', 'drift', 'walked'], { config: s.config, env: { SYSPRIME_DRIFT_METHOD: 'walk' } });
    assert.ok(drift.code === 0 || drift.code === 1, drift.stderr);
    assert.match(drift.stderr, /manifest of the pristine snapshot of generation 5: walked/);
    assert.doesNotMatch(drift.stderr, /generation 5 from btrfs send/);
    await assertSameAsWalk(kept(5), pristinePath('walked'));
  });

  test('a listing longer than a walk is worth (an update that rewrote a tree): stopped, and the tree is walked', async () => {
    const backend = createBtrfsBackend({ top: s.where });
    await backend.cloneFromPristine(3, 'bulk');
    mkdirSync(join(s.envPath!('bulk'), 'srv/bulk'));
    for (let i = 0; i < 1500; i++) writeFileSync(join(s.envPath!('bulk'), `srv/bulk/f${i}`), `${i}\n`);
    await backend.setGeneration('bulk', 6);
    await backend.takePristine('bulk', 6);
    const listing = await backend.changesBetweenPristines!(3, 6, { changes: 1000 });
    assert.equal(listing.ok, false);
    assert.match(listing.ok ? '' : listing.reason, /more than about 1000 changes/);
    const under = await backend.changesBetweenPristines!(3, 6, { changes: 100_000 });
    assert.ok(under.ok && under.changes.length > 1000, 'under a higher limit the whole list is read');

    const drift = await sp('-v', 'drift', 'bulk');
    assert.ok(drift.code === 0 || drift.code === 1, drift.stderr);
    // The tree is small: the floor of the limit, 4,000 changes, applies (1,500 files made are some 10,000 records).
    assert.match(drift.stderr, /generation 6: not from generation 3's \(more than about 4000 changes/);
    assert.match(drift.stderr, /manifest of the pristine snapshot of generation 6: walked/);
    await assertSameAsWalk(kept(6), pristinePath('bulk'));
  });

  test('a top directory replaced whole (another inode) with more entries below it than the listing may hold: walked without listing', async () => {
    const backend = createBtrfsBackend({ top: s.where });
    await backend.cloneFromPristine(3, 'many');
    mkdirSync(join(s.envPath!('many'), 'opt/many'), { recursive: true });
    for (let i = 0; i < 4100; i++) writeFileSync(join(s.envPath!('many'), `opt/many/f${i}`), `${i}\n`);
    await backend.setGeneration('many', 7);
    await backend.takePristine('many', 7);
    const first = await sp('drift', 'many');
    assert.ok(first.code === 0 || first.code === 1, first.stderr);
    // As the store updater swaps /usr: a new directory put in place of the old one, which goes.
    await backend.cloneFromPristine(7, 'swapped');
    const at = s.envPath!('swapped');
    renameSync(join(at, 'opt'), join(at, 'opt.old'));
    mkdirSync(join(at, 'opt/tool'), { recursive: true });
    writeFileSync(join(at, 'opt/tool/run'), 'new\n');
    rmSync(join(at, 'opt.old'), { recursive: true });
    await backend.setGeneration('swapped', 8);
    await backend.takePristine('swapped', 8);
    const drift = await sp('-v', 'drift', 'swapped');
    assert.ok(drift.code === 0 || drift.code === 1, drift.stderr);
    assert.match(drift.stderr, /generation 8: not from generation 7's \(\/opt was replaced whole or removed: a listing would name the \d+ entries below, more than the 4000 it may\)/);
    assert.match(drift.stderr, /manifest of the pristine snapshot of generation 8: walked/);
    await assertSameAsWalk(kept(8), pristinePath('swapped'));
  });
});
