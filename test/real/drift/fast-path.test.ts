/**
 * Drift through the filesystem's own list of changes (btrfs send --no-data)
 * on a real loop-file Btrfs: after all kinds of changes, the live manifest
 * and the drift report are exactly what a full walk gives; where the
 * environment does not descend from its pristine snapshot, drift walks the
 * tree instead, with the same answer.
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
import { run } from '../../../src/process/run.js';
import { createBtrfsBackend } from '../../../src/backends/btrfs/index.js';
import { createManifest, formatEntry, formatIndex, parseRules, type Manifest } from '../../../src/bart/index.js';
import { liveManifestFromChanges } from '../../../src/drift/changes.js';

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

interface Report {
  counts: { added: number; removed: number; modified: number };
  items: { path: string; change: string; attributes: string[] }[];
}

function lines(m: Manifest): string[] {
  return m.entries.map(formatEntry);
}

describe('drift from btrfs send --no-data', () => {
  let s: Scratch;
  let dir: string;
  let rulesPath: string;
  /** A second configuration on the same filesystem with its own state: the full walk's runs. */
  let walkConfig: string;
  let generation: number;
  const viaChanges = (...args: string[]) => sysprime(args, { config: s.config, env: { SYSPRIME_DRIFT_METHOD: 'changes' } });
  const viaWalk = (...args: string[]) => sysprime(args, { config: walkConfig, env: { SYSPRIME_DRIFT_METHOD: 'walk' } });
  const env = () => s.envPath!('base');
  const pristinePath = () => join(s.where, 'ROOT', '.pristine', 'base');
  const rules = () => parseRules(RULES, rulesPath);

  async function compareManifests(name: string, pristine: string): Promise<void> {
    const backend = createBtrfsBackend({ top: s.where });
    const live = s.envPath!(name);
    const base = await createManifest({ root: pristine, rules: rules() });
    const walked = await createManifest({ root: live, rules: rules() });
    const fast = await liveManifestFromChanges({ backend, name, generation, pristine: { manifest: base.manifest, path: pristine }, live, rules: rules(), hash: 'xxh64' });
    assert.ok(fast.ok, fast.ok ? '' : fast.reason);
    assert.deepEqual(lines(fast.result.manifest), lines(walked.manifest));
    assert.equal(fast.result.manifest.header.xattrs, walked.manifest.header.xattrs);
    assert.equal(fast.result.manifest.header.root, walked.manifest.header.root);
    // Same inodes and times: an incremental walk after the fast path trusts the same digests.
    assert.equal(formatIndex(fast.result.manifest), formatIndex(walked.manifest));
    assert.ok(fast.result.reread < walked.manifest.entries.length / 2, `read ${fast.result.reread} of ${walked.manifest.entries.length} entries again`);
    // Its temporary snapshot is deleted while the manifest is read; closing the backend waits for that.
    await backend.close?.();
    const subvolumes = await run('btrfs', ['subvolume', 'list', s.where]);
    assert.doesNotMatch(subvolumes.stdout, /@drift-/, 'the temporary snapshot is gone');
  }

  async function compareReports(name?: string): Promise<Report> {
    const args = ['--json', 'drift', ...(name ? [name] : [])];
    const a = await viaChanges(...args);
    assert.doesNotMatch((await run('btrfs', ['subvolume', 'list', s.where])).stdout, /@drift-/, 'drift left its temporary snapshot');
    const b = await viaWalk(...args);
    assert.equal(a.code, 1, a.stderr);
    assert.equal(b.code, 1, b.stderr);
    const fast = a.json<Report & { at?: string; manifests?: unknown }>();
    const walked = b.json<Report & { at?: string; manifests?: unknown }>();
    // When it ran, and the digests of the manifests each run wrote (each with its own creation time), are the run's own.
    delete fast.at;
    delete walked.at;
    delete fast.manifests;
    delete walked.manifests;
    assert.deepEqual(fast, walked);
    return fast;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sysprime-fast-'));
    rulesPath = join(dir, 'drift.rules');
    writeFileSync(rulesPath, RULES);
    s = await makeScratch('btrfs', `[bart]\nrules = "${rulesPath}"\n`);
    // Reading a file moves its atime (relatime), which btrfs send lists as a change: harmless but
    // not what these tests look at. Access times are changed on purpose below instead.
    await run('mount', ['-o', 'remount,noatime', s.where]);
    const walkState = join(dir, 'walk-state');
    mkdirSync(walkState);
    walkConfig = join(dir, 'walk.toml');
    writeFileSync(walkConfig, readFileSync(s.config, 'utf8').replace(/^dir = .*$/m, `dir = "${walkState}"`));

    // More than the OS tree: hard links, a tree to rename, attributes to change.
    const at = join(s.where, '@');
    writeFileSync(join(at, 'etc/hl-a'), 'shared\n');
    linkSync(join(at, 'etc/hl-a'), join(at, 'etc/hl-b'));
    linkSync(join(at, 'etc/hl-a'), join(at, 'usr/share/hl-c'));
    for (const d of ['srv/app/conf', 'srv/app/data/cache', 'opt/tool/lib']) mkdirSync(join(at, d), { recursive: true });
    writeFileSync(join(at, 'srv/app/conf/app.conf'), 'mode = a\n');
    writeFileSync(join(at, 'srv/app/data/cache/blob'), 'x'.repeat(5000));
    writeFileSync(join(at, 'opt/tool/lib/tool.so'), 'elf');
    writeFileSync(join(at, 'etc/old name'), 'old\n');
    writeFileSync(join(at, 'etc/xa'), 'xa\n');
    writeFileSync(join(at, 'etc/xb'), 'xb\n');
    await run('setfattr', ['-n', 'user.k', '-v', 'one', join(at, 'etc/xa')]);
    await run('setfattr', ['-n', 'user.gone', '-v', 'soon', join(at, 'etc/xb')]);
    for (let i = 0; i < 300; i++) writeFileSync(join(at, `usr/share/doc/demo/page-${i}`), `page ${i}\n`);
    const r = await sysprime(['init', '--adopt', s.adopt, '--name', 'base'], { config: s.config });
    assert.equal(r.code, 0, r.stderr);
    const info = (await createBtrfsBackend({ top: s.where }).listEnvironments()).find((e) => e.name === 'base');
    generation = info!.generation;
  });

  after(async () => {
    await s?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('no changes: the fast path gives the pristine manifest and no drift', async () => {
    await compareManifests('base', pristinePath());
    const a = await viaChanges('--json', 'drift');
    assert.equal(a.code, 0, a.stderr);
    assert.deepEqual(a.json<Report>().items, []);
  });

  test('every kind of change: same manifest and same drift as a full walk', async () => {
    const e = env();
    writeFileSync(join(e, 'etc/demo.conf'), readFileSync(join(e, 'etc/demo.conf'), 'utf8').replace('workers = 2', 'workers = 8'));
    writeFileSync(join(e, 'etc/motd'), 'hello\n');
    unlinkSync(join(e, 'etc/default/demo'));
    rmSync(join(e, 'srv/app/data'), { recursive: true });
    renameSync(join(e, 'etc/hostname'), join(e, 'etc/hostname.bak'));
    renameSync(join(e, 'srv/app/conf'), join(e, 'srv/conf-moved'));
    appendFileSync(join(e, 'srv/conf-moved/app.conf'), 'mode = b\n');
    chmodSync(join(e, 'etc/shadow'), 0o600);
    chownSync(join(e, 'etc/passwd'), 0, 42);
    chownSync(join(e, 'opt/tool/lib'), 7, 7);
    await run('setfattr', ['-n', 'user.k', '-v', 'two', join(e, 'etc/xa')]);
    await run('setfattr', ['-n', 'user.new', '-v', 'v', join(e, 'etc/group')]);
    await run('setfattr', ['-x', 'user.gone', join(e, 'etc/xb')]);
    await run('setfacl', ['-m', 'u:1234:r', join(e, 'usr/bin/demo')]);
    unlinkSync(join(e, 'etc/os-release'));
    symlinkSync('/usr/lib/os-release-2', join(e, 'etc/os-release'));
    // One name of a three-name inode is written: the other two change with it.
    appendFileSync(join(e, 'etc/hl-b'), 'more\n');
    // An existing inode gains a name.
    mkdirSync(join(e, 'usr/local/bin'), { recursive: true });
    linkSync(join(e, 'usr/bin/demo'), join(e, 'usr/local/bin/demo-link'));
    writeFileSync(join(e, 'etc/with space'), 'space\n');
    writeFileSync(join(e, 'etc/new\nline'), 'newline\n');
    writeFileSync(raw(e, 'etc/bad\xff\xfe name'), 'not utf-8\n');
    renameSync(join(e, 'etc/old name'), raw(e, 'etc/renamed \xe9\n'));
    mkdirSync(join(e, 'opt/newdir/deeper'), { recursive: true });
    writeFileSync(join(e, 'opt/newdir/deeper/f'), 'deep\n');
    writeFileSync(join(e, 'etc/ignored.swp'), 'ignored by the rules\n');
    appendFileSync(join(e, 'var/log/messages'), 'ignored too\n');
    await run('mkfifo', [join(e, 'srv/fifo')]);
    await run('btrfs', ['-q', 'subvolume', 'create', join(e, 'var/lib/machines')]);
    for (let i = 0; i < 5; i++) unlinkSync(join(e, `usr/share/doc/demo/page-${i}`));
    // Only the access time: listed by send, same manifest entry.
    for (let i = 10; i < 20; i++) await run('touch', ['-a', '-d', '2001-01-01', join(e, `usr/share/doc/demo/page-${i}`)]);

    await compareManifests('base', pristinePath());
    const report = await compareReports();
    const paths = new Set(report.items.map((i) => Buffer.from(i.path, 'latin1')));
    assert.ok(report.items.length >= 20, `${report.items.length} items`);
    assert.ok([...paths].some((p) => p.equals(Buffer.from('/etc/bad\xff\xfe name', 'latin1'))), 'the non-UTF-8 name is in the drift');
    assert.ok(report.items.some((i) => i.path === '/usr/share/hl-c' && i.attributes.includes('contents')), 'the unnamed hard link changed too');
    assert.ok(!report.items.some((i) => i.path.startsWith('/var/log') || i.path.endsWith('.swp')), 'ignored paths stay out');
  });

  test('a second round, on top of the kept live manifest: still the same', async () => {
    const e = env();
    const original = readFileSync(join(pristinePath(), 'etc/demo.conf'));
    writeFileSync(join(e, 'etc/demo.conf'), original);
    appendFileSync(join(e, 'usr/share/doc/demo/page-100'), 'edited\n');
    renameSync(join(e, 'srv/conf-moved'), join(e, 'srv/app/conf'));
    rmSync(join(e, 'opt/newdir'), { recursive: true });
    await compareManifests('base', pristinePath());
    await compareReports();
  });

  test('listings one after the other in one process: each waits for the last one\'s snapshot to be deleted', async () => {
    const backend = createBtrfsBackend({ top: s.where });
    const warned: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => (warned.push(String(chunk)), true)) as typeof process.stderr.write;
    try {
      for (let i = 0; i < 3; i++) {
        const listing = await backend.changesSincePristine!('base', generation);
        assert.ok(listing.ok, listing.ok ? '' : listing.reason);
        // The next listing of subvolumes never shows it half deleted.
        assert.ok(!(await backend.listEnvironments()).some((e) => e.name.includes('@drift-')));
      }
    } finally {
      process.stderr.write = write;
    }
    // Not one found as a leftover of an interrupted run and deleted twice.
    assert.deepEqual(warned, []);
    await backend.close?.();
    assert.doesNotMatch((await run('btrfs', ['subvolume', 'list', s.where])).stdout, /@drift-/);
  });

  test('an environment that does not descend from its pristine snapshot: drift walks the tree', async () => {
    const backend = createBtrfsBackend({ top: s.where });
    await backend.createEmpty('stranger', generation);
    await run('cp', ['-a', '--reflink=never', `${env()}/.`, s.envPath!('stranger')]);
    const listing = await backend.changesSincePristine!('stranger', generation);
    assert.equal(listing.ok, false);
    assert.match(listing.ok ? '' : listing.reason, /not snapshots of one another/);

    const refused = await viaChanges('drift', 'stranger');
    assert.notEqual(refused.code, 0);
    assert.notEqual(refused.code, 1);
    assert.match(refused.stderr, /not snapshots of one another/);

    const auto = await sysprime(['-v', '--json', 'drift', 'stranger'], { config: s.config });
    assert.equal(auto.code, 1, auto.stderr);
    assert.match(auto.stderr, /walking the tree \(.*not snapshots of one another/);
    const walked = await viaWalk('--json', 'drift', 'stranger');
    const a = auto.json<Report & { at?: string; manifests?: unknown }>();
    const b = walked.json<Report & { at?: string; manifests?: unknown }>();
    delete a.at;
    delete b.at;
    delete a.manifests;
    delete b.manifests;
    assert.deepEqual(a, b);
    assert.ok(a.items.length > 0);
  });
});
