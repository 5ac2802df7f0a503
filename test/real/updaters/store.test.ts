import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cloneDefaults } from '../../../src/config/schema.js';
import { isSysprimeError } from '../../../src/errors.js';
import { createUpdater } from '../../../src/updaters/registry.js';
import { applyStore } from '../../../src/updaters/store/index.js';
import { objectKey, objectRelPath } from '../../../src/updaters/store/format.js';
import { openRepository } from '../../../src/updaters/store/repository.js';
import { forgetExchangeProbe } from '../../../src/updaters/store/assemble.js';
import { withdrawPackage } from '../../../src/updaters/store/publish.js';
import { publishVersion, UNSIGNED_LOCAL, type PackageFiles } from '../../fixtures/store-repo.js';

let scratch: string;
before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'sysprime-store-'));
});
after(() => {
  rmSync(scratch, { recursive: true, force: true });
});

function fresh(name: string): { repo: string; root: string } {
  const repo = join(scratch, name, 'repo');
  const root = join(scratch, name, 'root');
  mkdirSync(repo, { recursive: true });
  mkdirSync(root, { recursive: true });
  return { repo, root };
}

/** path -> what a reader of the tree sees (type, metadata, content or target). */
function listing(root: string, skip: (rel: string) => boolean = () => false): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const name of readdirSync(rel === '' ? root : join(root, rel)).sort()) {
      const p = rel === '' ? name : `${rel}/${name}`;
      if (skip(p)) continue;
      const st = lstatSync(join(root, p));
      const meta = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isDirectory()) {
        out.set(p, `dir ${meta}`);
        walk(p);
      } else if (st.isSymbolicLink()) out.set(p, `link ${readlinkSync(join(root, p))}`);
      else out.set(p, `file ${meta} ${createHash('sha256').update(readFileSync(join(root, p))).digest('hex')}`);
    }
  };
  walk('');
  return out;
}

const STORE = 'var/lib/sysprime/store';
const exe = (content: string) => ({ content, mode: 0o755 });

const BASE_V1: PackageFiles = {
  'usr/bin/hello': exe('#!/bin/sh\necho hello 1\n'),
  'usr/bin/hi': { symlink: 'hello' },
  'usr/bin/su-like': { content: 'setuid\n', mode: 0o4755 },
  'usr/lib/libold.so': 'old library\n',
  'usr/share/doc/base/README': 'same bytes\n',
  'usr/share/doc/base/COPY': 'same bytes\n',
  'usr/share/doc/base/COPY-exec': { content: 'same bytes\n', mode: 0o755 },
  'usr/share/games': { dir: true, mode: 0o2775, gid: 60 },
  'usr/share/games/score': { content: 'score\n', mode: 0o664, uid: 5, gid: 60 },
  'etc/hello.conf': { content: 'greeting = 1\n', mode: 0o640, gid: 4 },
  'etc/old.conf': 'removed in 2\n',
  bin: { symlink: 'usr/bin' },
};
const TOOLS_V1: PackageFiles = { 'usr/bin/tool': exe('tool 1\n'), 'etc/tool.d': { dir: true, mode: 0o750 } };
const BASE_V2: PackageFiles = {
  'usr/bin/hello': exe('#!/bin/sh\necho hello 2\n'),
  'usr/bin/hi': { symlink: 'hello' },
  'usr/bin/new': exe('new in 2\n'),
  'usr/bin/su-like': { content: 'setuid\n', mode: 0o4755 },
  'usr/share/doc/base/README': 'same bytes\n',
  'usr/share/games': { dir: true, mode: 0o2775, gid: 60 },
  'usr/share/games/score': { content: 'score\n', mode: 0o664, uid: 5, gid: 60 },
  'etc/hello.conf': { content: 'greeting = 2\n', mode: 0o640, gid: 4 },
  'etc/new.conf': 'new in 2\n',
  bin: { symlink: 'usr/bin' },
};

test('v1 installs into an empty tree with the right metadata, /usr hardlinked from the store', async () => {
  const { repo, root } = fresh('v1');
  await publishVersion(repo, 'base', '1', BASE_V1);
  await publishVersion(repo, 'tools', '1', TOOLS_V1);

  const res = await applyStore(openRepository(repo, UNSIGNED_LOCAL), root);
  assert.equal(res.changed, true);
  assert.deepEqual(res.packages, [
    { name: 'base', from: null, to: '1' },
    { name: 'tools', from: null, to: '1' },
  ]);

  const l = listing(root, (p) => p.startsWith('var'));
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  assert.equal(l.get('usr/bin/hello'), `file 755 0:0 ${sha('#!/bin/sh\necho hello 1\n')}`);
  assert.equal(l.get('usr/bin/hi'), 'link hello');
  assert.equal(l.get('usr/bin/su-like'), `file 4755 0:0 ${sha('setuid\n')}`);
  assert.equal(l.get('usr/share/games'), 'dir 2775 0:60');
  assert.equal(l.get('usr/share/games/score'), `file 664 5:60 ${sha('score\n')}`);
  assert.equal(l.get('usr/share/doc'), 'dir 755 0:0', 'a parent no package lists');
  assert.equal(l.get('etc/hello.conf'), `file 640 0:4 ${sha('greeting = 1\n')}`);
  assert.equal(l.get('etc/tool.d'), 'dir 750 0:0');
  assert.equal(l.get('bin'), 'link usr/bin');
  assert.equal(l.get('usr/bin/tool'), `file 755 0:0 ${sha('tool 1\n')}`);
  assert.equal(readdirSync(root).filter((n) => n.startsWith('.usr')).length, 0);

  // /usr files are store objects; same content and metadata share one inode, other metadata does not.
  const hello = lstatSync(join(root, 'usr/bin/hello'));
  const object = lstatSync(join(root, STORE, objectRelPath(objectKey({ sha256: sha('#!/bin/sh\necho hello 1\n'), mode: 0o755, uid: 0, gid: 0 }))));
  assert.equal(hello.ino, object.ino);
  const readme = lstatSync(join(root, 'usr/share/doc/base/README'));
  assert.equal(lstatSync(join(root, 'usr/share/doc/base/COPY')).ino, readme.ino);
  assert.notEqual(lstatSync(join(root, 'usr/share/doc/base/COPY-exec')).ino, readme.ino);
  assert.equal(readme.nlink, 3, 'two paths and the store object');
  // Files outside /usr are copies the admin may edit without touching the store.
  assert.equal(lstatSync(join(root, 'etc/hello.conf')).nlink, 1);

  const installed = JSON.parse(readFileSync(join(root, STORE, 'installed.json'), 'utf8'));
  assert.equal(installed.packages.base.version, '1');
  assert.equal(installed.packages.tools.version, '1');
});

test('v2 changes, adds and removes files; the swap leaves a complete /usr; unreferenced objects go', async () => {
  const { repo, root } = fresh('v2');
  await publishVersion(repo, 'base', '1', BASE_V1);
  await publishVersion(repo, 'tools', '1', TOOLS_V1);
  mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
  writeFileSync(join(root, 'usr/local/bin/mine'), 'the admin\'s\n');
  await applyStore(openRepository(repo, UNSIGNED_LOCAL), root);
  assert.equal(readFileSync(join(root, 'usr/local/bin/mine'), 'utf8'), 'the admin\'s\n', '/usr/local survives the first install');

  await publishVersion(repo, 'base', '2', BASE_V2);
  await withdrawPackage(repo, 'tools');
  const res = await applyStore(openRepository(repo, UNSIGNED_LOCAL), root);
  assert.equal(res.changed, true);
  assert.deepEqual(res.packages, [
    { name: 'base', from: '1', to: '2' },
    { name: 'tools', from: '1', to: null },
  ]);

  // A tree that never saw v1, built from v2 alone, is what the update must produce.
  const ref = fresh('v2-reference');
  await publishVersion(ref.repo, 'base', '2', BASE_V2);
  mkdirSync(join(ref.root, 'usr/local/bin'), { recursive: true });
  writeFileSync(join(ref.root, 'usr/local/bin/mine'), 'the admin\'s\n');
  await applyStore(openRepository(ref.repo, UNSIGNED_LOCAL), ref.root);
  const skip = (p: string) => p.startsWith('var');
  assert.deepEqual(listing(root, skip), listing(ref.root, skip));
  assert.equal(lstatSync(join(root, 'etc/old.conf'), { throwIfNoEntry: false }), undefined);
  assert.equal(lstatSync(join(root, 'etc/tool.d'), { throwIfNoEntry: false }), undefined);
  assert.equal(readFileSync(join(root, 'etc/new.conf'), 'utf8'), 'new in 2\n');
  assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('.usr')), []);

  // The store holds exactly what v2 links to, no leftovers of v1.
  const objects = readdirSync(join(root, STORE, 'objects')).flatMap((d) => readdirSync(join(root, STORE, 'objects', d)).map((r) => d + r));
  assert.deepEqual(objects.sort(), objectsOf(ref.root));
  assert.equal(lstatSync(join(root, 'usr/bin/hello')).nlink, 2);
  assert.deepEqual(readdirSync(join(root, STORE, 'manifests')).length, 1);
});

function objectsOf(root: string): string[] {
  const dir = join(root, STORE, 'objects');
  return readdirSync(dir).flatMap((d) => readdirSync(join(dir, d)).map((r) => d + r)).sort();
}

test('applying again changes nothing', async () => {
  const { repo, root } = fresh('idem');
  await publishVersion(repo, 'base', '1', BASE_V1);
  await applyStore(openRepository(repo, UNSIGNED_LOCAL), root);
  const before = listing(root);
  const again = await applyStore(openRepository(repo, UNSIGNED_LOCAL), root);
  assert.equal(again.changed, false);
  assert.deepEqual(again.packages, []);
  assert.deepEqual(listing(root), before);
});

test('a corrupt object fails the update and leaves the tree as it was', async () => {
  const { repo, root } = fresh('corrupt');
  await publishVersion(repo, 'base', '1', BASE_V1);
  await applyStore(openRepository(repo, UNSIGNED_LOCAL), root);
  await publishVersion(repo, 'base', '2', BASE_V2);
  const bad = join(repo, objectRelPath(createHash('sha256').update('new in 2\n').digest('hex')));
  chmodSync(bad, 0o644);
  writeFileSync(bad, 'tampered!\n');
  const before = listing(root);

  await assert.rejects(
    applyStore(openRepository(repo, UNSIGNED_LOCAL), root),
    (err: unknown) => isSysprimeError(err, 'IO') && /corrupt/.test(err.message) && err.hint !== undefined,
  );
  assert.deepEqual(listing(root), before);
});

test('a missing object fails the update and leaves an empty tree empty', async () => {
  const { repo, root } = fresh('missing-object');
  await publishVersion(repo, 'base', '1', BASE_V1);
  rmSync(join(repo, objectRelPath(createHash('sha256').update('old library\n').digest('hex'))));
  await assert.rejects(applyStore(openRepository(repo, UNSIGNED_LOCAL), root), (err: unknown) => isSysprimeError(err, 'NOT_FOUND') && /missing/.test(err.message));
  assert.deepEqual(readdirSync(root), []);
});

test('a missing repository is a clear NOT_FOUND, from apply and from probe', async () => {
  const { root } = fresh('no-repo');
  const c = cloneDefaults();
  c.update.method = 'store';
  c.update.repository = join(scratch, 'does-not-exist');
  const u = createUpdater(c);
  await assert.rejects(u.probe(), (err: unknown) => isSysprimeError(err, 'NOT_FOUND') && /no store repository/.test(err.message));
  await assert.rejects(
    u.apply({ root, timeout: 60, verbose: false }),
    (err: unknown) => isSysprimeError(err, 'NOT_FOUND') && err.message.includes(c.update.repository!),
  );
});

test('the updater from the registry follows a file: URL repository', async () => {
  const { repo, root } = fresh('registry');
  await publishVersion(repo, 'base', '1', BASE_V1);
  const c = cloneDefaults();
  c.update.method = 'store';
  c.update.repository = `file://${repo}`;
  c.update.allowUnsigned = true; // what the option is for: a local test repository
  const u = createUpdater(c);
  await u.probe();
  const res = await u.apply({ root, timeout: 60, verbose: false });
  assert.equal(res.changed, true);
  assert.match(res.summary, /1 new/);
});

test('a package path through a symlink in the tree is refused', async () => {
  const { repo, root } = fresh('symlink-escape');
  const outside = join(scratch, 'symlink-escape', 'outside');
  mkdirSync(outside);
  // The tree's /etc points out of the tree (absolute links are meant for the tree's own /).
  const { symlinkSync } = await import('node:fs');
  symlinkSync(outside, join(root, 'etc'));
  await publishVersion(repo, 'base', '1', { 'etc/evil.conf': 'x\n' });
  await assert.rejects(applyStore(openRepository(repo, UNSIGNED_LOCAL), root), (err: unknown) => isSysprimeError(err, 'REFUSED') && /symlink/.test(err.message));
  assert.deepEqual(readdirSync(outside), []);
});

test("links in the tree's own store are never written or read through", async () => {
  const { repo, root } = fresh('store-links');
  const outside = join(scratch, 'store-links', 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'host.json'), 'host file\n');
  // What an earlier generation's packages could have left in the store: links out of the tree.
  mkdirSync(join(root, STORE), { recursive: true });
  symlinkSync(outside, join(root, STORE, 'manifests'));
  symlinkSync(join(outside, 'host.json'), join(root, STORE, 'installed.json'));
  await publishVersion(repo, 'base', '1', BASE_V1);
  await assert.rejects(applyStore(openRepository(repo, UNSIGNED_LOCAL), root), (err: unknown) => isSysprimeError(err, 'REFUSED') && /manifests/.test(err.message));
  assert.deepEqual(readdirSync(outside), ['host.json'], 'no manifest written into the host directory');
  assert.equal(readFileSync(join(outside, 'host.json'), 'utf8'), 'host file\n');
  // With the directory link gone, installed.json (a link to a host file) is replaced, not written through.
  rmSync(join(root, STORE, 'manifests'));
  await applyStore(openRepository(repo, UNSIGNED_LOCAL), root);
  assert.equal(readFileSync(join(outside, 'host.json'), 'utf8'), 'host file\n');
  assert.ok(lstatSync(join(root, STORE, 'installed.json')).isFile());
});

test('with an mv that can exchange, /usr is swapped with it', async () => {
  const { repo, root } = fresh('exchange');
  await publishVersion(repo, 'base', '1', BASE_V1);
  await applyStore(openRepository(repo, UNSIGNED_LOCAL), root);
  await publishVersion(repo, 'base', '2', BASE_V2);

  // A stand-in for coreutils >= 9.5: logs its call, then exchanges by three renames.
  const bin = join(scratch, 'exchange', 'bin');
  const log = join(scratch, 'exchange', 'mv.log');
  mkdirSync(bin);
  writeFileSync(
    join(bin, 'mv'),
    `#!/bin/sh
if [ "$1" = --help ]; then echo "  --exchange  exchange source and destination"; exit 0; fi
echo "$@" >> ${log}
[ "$1" = --exchange ] && [ "$2" = --no-target-directory ] || exit 2
/bin/mv -T "$3" "$3.x" && /bin/mv -T "$4" "$3" && /bin/mv -T "$3.x" "$4"
`,
    { mode: 0o755 },
  );
  const oldPath = process.env['PATH'];
  process.env['PATH'] = `${bin}:${oldPath}`;
  forgetExchangeProbe();
  try {
    const res = await applyStore(openRepository(repo, UNSIGNED_LOCAL), root);
    assert.equal(res.swap, 'exchange');
  } finally {
    process.env['PATH'] = oldPath;
    forgetExchangeProbe();
  }
  assert.match(readFileSync(log, 'utf8'), /--exchange --no-target-directory .*\.usr\.sysprime-new .*\/usr/);
  assert.equal(readFileSync(join(root, 'usr/bin/hello'), 'utf8'), '#!/bin/sh\necho hello 2\n');
  assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('.usr')), []);
});

test('a tree published from a directory comes out the same, owners and modes included', async () => {
  const { repo, root } = fresh('from-tree');
  const src = join(scratch, 'from-tree', 'src');
  const { chownSync, symlinkSync } = await import('node:fs');
  mkdirSync(join(src, 'usr/lib/x'), { recursive: true });
  mkdirSync(join(src, 'etc'), { recursive: true });
  writeFileSync(join(src, 'usr/lib/x/data'), 'data\n');
  chownSync(join(src, 'usr/lib/x/data'), 7, 8);
  chmodSync(join(src, 'usr/lib/x/data'), 0o600);
  chmodSync(join(src, 'usr/lib/x'), 0o700);
  symlinkSync('x/data', join(src, 'usr/lib/link'));
  writeFileSync(join(src, 'etc/x.conf'), 'x\n');
  const { publishTree } = await import('../../../src/updaters/store/publish.js');
  await publishTree(repo, 'x', '1', src);
  await applyStore(openRepository(repo, UNSIGNED_LOCAL), root);
  // The unit making /usr read-only is the updater's own, not the package's (checked below).
  const skip = (p: string) => p.startsWith('var') || p.startsWith('etc/systemd');
  assert.deepEqual(listing(root, skip), listing(src, skip));
});

test('a store-built /usr is made read-only at run time by a mount unit in the tree, enabled, once; never by an fstab line', async () => {
  const { repo, root } = fresh('read-only-usr');
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'etc/fstab'), 'UUID=1234 / btrfs defaults 0 0\n');
  await publishVersion(repo, 'base', '1', BASE_V1);
  await applyStore(openRepository(repo, UNSIGNED_LOCAL), root);
  const unit = readFileSync(join(root, 'etc/systemd/system/usr.mount'), 'utf8');
  assert.match(unit, /^What=\/usr$/m);
  assert.match(unit, /^Where=\/usr$/m);
  assert.match(unit, /^Options=bind,ro$/m);
  assert.equal(readlinkSync(join(root, 'etc/systemd/system/local-fs.target.wants/usr.mount')), '/etc/systemd/system/usr.mount');
  // An initrd mounts a /usr line of the root's fstab from its own /usr: the fstab is left alone.
  assert.equal(readFileSync(join(root, 'etc/fstab'), 'utf8'), 'UUID=1234 / btrfs defaults 0 0\n');
  await publishVersion(repo, 'base', '2', BASE_V2);
  const before = lstatSync(join(root, 'etc/systemd/system/usr.mount')).ino;
  await applyStore(openRepository(repo, UNSIGNED_LOCAL), root);
  assert.equal(lstatSync(join(root, 'etc/systemd/system/usr.mount')).ino, before, 'not written again');
});

test('a masked usr.mount and an fstab that mounts its own /usr are left as they are', async () => {
  const masked = fresh('usr-masked');
  mkdirSync(join(masked.root, 'etc/systemd/system'), { recursive: true });
  symlinkSync('/dev/null', join(masked.root, 'etc/systemd/system/usr.mount'));
  await publishVersion(masked.repo, 'base', '1', BASE_V1);
  await applyStore(openRepository(masked.repo, UNSIGNED_LOCAL), masked.root);
  assert.equal(readlinkSync(join(masked.root, 'etc/systemd/system/usr.mount')), '/dev/null');
  assert.equal(lstatSync(join(masked.root, 'etc/systemd/system/local-fs.target.wants'), { throwIfNoEntry: false }), undefined);

  const own = fresh('usr-own-mount');
  mkdirSync(join(own.root, 'etc'));
  writeFileSync(join(own.root, 'etc/fstab'), 'UUID=1234 / ext4 defaults 0 1\nUUID=5678 /usr ext4 defaults 0 2\n');
  await publishVersion(own.repo, 'base', '1', BASE_V1);
  await applyStore(openRepository(own.repo, UNSIGNED_LOCAL), own.root);
  assert.equal(lstatSync(join(own.root, 'etc/systemd'), { throwIfNoEntry: false }), undefined, 'no unit to take the place of the admin\'s /usr mount');
});

test('a link planted at a fan-out directory of the store is never written through', async () => {
  const { repo, root } = fresh('fanout-link');
  const outside = join(scratch, 'fanout-link', 'outside');
  mkdirSync(outside);
  await publishVersion(repo, 'base', '1', BASE_V1);
  const key = objectKey({ sha256: createHash('sha256').update('#!/bin/sh\necho hello 1\n').digest('hex'), mode: 0o755, uid: 0, gid: 0 });
  mkdirSync(join(root, STORE, 'objects'), { recursive: true });
  symlinkSync(outside, join(root, STORE, 'objects', key.slice(0, 2)));
  await assert.rejects(applyStore(openRepository(repo, UNSIGNED_LOCAL), root), (err: unknown) => isSysprimeError(err, 'REFUSED') && /symlink/.test(err.message));
  assert.deepEqual(readdirSync(outside), [], 'no object moved into the directory the link points at');
  assert.equal(lstatSync(join(root, 'usr'), { throwIfNoEntry: false }), undefined, 'the tree is as it was');
});

/** The fan-out directories (objects/<aa>) the files of a package version go to. */
function fanoutsOf(files: PackageFiles): string[] {
  return Object.values(files).flatMap((spec) => {
    if (typeof spec !== 'string' && !('content' in spec)) return [];
    const content = typeof spec === 'string' ? spec : spec.content;
    const meta: { mode?: number; uid?: number; gid?: number } = typeof spec === 'string' ? {} : spec;
    const sha256 = createHash('sha256').update(content).digest('hex');
    return [objectKey({ sha256, mode: meta.mode ?? 0o644, uid: meta.uid ?? 0, gid: meta.gid ?? 0 }).slice(0, 2)];
  });
}

test('garbage collection never removes through a link in the store', async () => {
  const { repo, root } = fresh('gc-link');
  const outside = join(scratch, 'gc-link', 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'precious'), 'host data\n');
  await publishVersion(repo, 'base', '1', BASE_V1);
  await applyStore(openRepository(repo, UNSIGNED_LOCAL), root);
  // A fan-out name no object of v1 or v2 uses: a link there leads out of the tree.
  const used = new Set([...fanoutsOf(BASE_V1), ...fanoutsOf(BASE_V2)]);
  const fan = [...Array(256).keys()].map((i) => i.toString(16).padStart(2, '0')).find((f) => !used.has(f)) as string;
  symlinkSync(outside, join(root, STORE, 'objects', fan));
  symlinkSync(outside, join(root, STORE, 'incoming-1'));
  await publishVersion(repo, 'base', '2', BASE_V2);
  await applyStore(openRepository(repo, UNSIGNED_LOCAL), root);
  assert.deepEqual(readdirSync(outside), ['precious']);
  assert.equal(readFileSync(join(outside, 'precious'), 'utf8'), 'host data\n');
  assert.equal(lstatSync(join(root, STORE, 'objects', fan), { throwIfNoEntry: false }), undefined, 'the planted link itself is gone');
});

test('a link planted at /usr/local is carried over as a link, and what it points at is untouched', async () => {
  const { repo, root } = fresh('usr-local-link');
  const outside = join(scratch, 'usr-local-link', 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'mine'), 'the admin\'s\n');
  await publishVersion(repo, 'base', '1', BASE_V1);
  await applyStore(openRepository(repo, UNSIGNED_LOCAL), root);
  symlinkSync(outside, join(root, 'usr/local'));
  await publishVersion(repo, 'base', '2', BASE_V2);
  await applyStore(openRepository(repo, UNSIGNED_LOCAL), root);
  assert.equal(readlinkSync(join(root, 'usr/local')), outside);
  assert.deepEqual(readdirSync(outside), ['mine']);
});
