/**
 * bart create on real trees in a fresh temp directory: every file type,
 * hard links, sparse files, unreadable files, and the incremental path.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, utimesSync, writeFileSync, openSync, writeSync, closeSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { run } from '../../../src/process/run.js';
import { createManifest } from '../../../src/bart/create.js';
import { formatManifest, formatIndex } from '../../../src/bart/format.js';
import { applyIndex, parseManifest } from '../../../src/bart/parse.js';
import { compareManifests } from '../../../src/bart/compare.js';
import { parseRules } from '../../../src/bart/rules.js';
import type { Manifest } from '../../../src/bart/types.js';

const CLI = new URL('../../../bench/bart-cli.js', import.meta.url).pathname;
let dir = '';
let tree = '';
let server: Server | undefined;

function body(m: Manifest): string {
  return formatManifest(m).split('\n').filter((l) => !l.startsWith('!')).join('\n');
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sysprime-bart-'));
  chmodSync(dir, 0o755);
  tree = join(dir, 'tree');
  mkdirSync(join(tree, 'etc', 'ssh'), { recursive: true });
  mkdirSync(join(tree, 'var', 'log'), { recursive: true });
  mkdirSync(join(tree, 'dev'));
  writeFileSync(join(tree, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  writeFileSync(join(tree, 'etc', 'ssh', 'sshd_config'), 'PermitRootLogin no\n');
  writeFileSync(join(tree, 'etc', 'name with spaces\tand tab'), 'x');
  writeFileSync(Buffer.from(join(tree, 'etc', 'bad-\xff-utf8'), 'latin1'), 'bytes');
  writeFileSync(join(tree, 'var', 'log', 'syslog'), 'noise\n');
  linkSync(join(tree, 'etc', 'passwd'), join(tree, 'etc', 'passwd-hardlink'));
  symlinkSync('../etc/passwd', join(tree, 'etc', 'link'));
  await run('mkfifo', [join(tree, 'dev', 'fifo')]);
  await run('mknod', [join(tree, 'dev', 'null'), 'c', '1', '3']);
  await run('mknod', [join(tree, 'dev', 'loop9'), 'b', '7', '9']);
  server = createServer();
  await new Promise<void>((res) => server!.listen(join(tree, 'dev', 'sock'), res));
  // Sparse: 8 MiB with a few bytes in the middle.
  const fd = openSync(join(tree, 'sparse'), 'w');
  writeSync(fd, 'middle', 4 << 20);
  closeSync(fd);
  truncateSync(join(tree, 'sparse'), 8 << 20);
  // A file bigger than one read chunk, to take the streaming path.
  writeFileSync(join(tree, 'big'), Buffer.alloc(3 << 20, 7));
});

after(async () => {
  await new Promise<void>((res) => (server ? server.close(() => res()) : res()));
  rmSync(dir, { recursive: true, force: true });
});

test('each file type is listed with its own fields', async () => {
  const { manifest, status } = await createManifest({ root: tree, hash: 'sha256' });
  assert.equal(status, 0);
  const byPath = new Map(manifest.entries.map((e) => [e.path, e]));
  const types = Object.fromEntries(['/etc', '/etc/passwd', '/etc/link', '/dev/fifo', '/dev/sock', '/dev/null', '/dev/loop9'].map((p) => [p, byPath.get(p)?.type]));
  assert.deepEqual(types, { '/etc': 'D', '/etc/passwd': 'F', '/etc/link': 'L', '/dev/fifo': 'P', '/dev/sock': 'S', '/dev/null': 'C', '/dev/loop9': 'B' });
  assert.equal(byPath.get('/etc/link')!.dest, '../etc/passwd');
  assert.equal(byPath.get('/dev/null')!.devnode, statSync(join(tree, 'dev', 'null')).rdev);
  const sha = (p: string) => createHash('sha256').update(readFileSync(join(tree, p))).digest('hex');
  assert.equal(byPath.get('/etc/passwd')!.contents, sha('etc/passwd'));
  assert.equal(byPath.get('/etc/passwd-hardlink')!.contents, sha('etc/passwd'));
  assert.equal(byPath.get('/sparse')!.contents, sha('sparse'));
  assert.equal(byPath.get('/big')!.contents, sha('big'));
  assert.equal(byPath.get('/sparse')!.size, 8 << 20);
  assert.ok(byPath.has('/etc/bad-\xff-utf8'), 'a name that is not UTF-8 keeps its bytes');
  assert.ok(byPath.has('/etc/name with spaces\tand tab'));
  const text = formatManifest(manifest);
  assert.match(text, /^\/etc\/name\\040with\\040spaces\\011and\\040tab F /m);
  assert.match(text, /^\/etc\/bad-\\377-utf8 F /m);
  assert.match(text, /^\/dev\/null C 0 20644 - [0-9a-f]+ 0 0 103$/m);
  // What was written reads back the same.
  assert.equal(body(parseManifest(Buffer.from(text, 'latin1'))), body(manifest));
});

test('xxh64 digests match xxhsum', async () => {
  const { manifest } = await createManifest({ root: tree });
  const r = await run('xxhsum', ['-H64', join(tree, 'big'), join(tree, 'etc', 'passwd')]);
  const want = r.stdout.trim().split('\n').map((l) => l.split(/\s+/)[0]);
  const got = ['/big', '/etc/passwd'].map((p) => manifest.entries.find((e) => e.path === p)!.contents);
  assert.deepEqual(got, want);
});

test('rules choose subtrees and prune ignored ones', async () => {
  const rules = parseRules('/\nCHECK all\n/var/log\nIGNORE all\n/etc *passwd*\n');
  const { manifest } = await createManifest({ root: tree, rules });
  const paths = manifest.entries.map((e) => e.path);
  assert.ok(!paths.some((p) => p.startsWith('/var/log')), 'ignored subtree left out');
  assert.ok(paths.includes('/var'));
  assert.ok(paths.includes('/etc/passwd'));
  assert.ok(paths.includes('/etc/ssh/sshd_config'), "the '/' rule still covers what the /etc patterns skip");
  const only = await createManifest({ root: tree, rules: parseRules('/etc *passwd*\n') });
  assert.deepEqual(only.manifest.entries.map((e) => e.path), ['/etc/passwd', '/etc/passwd-hardlink']);
});

test('-I catalogs exactly the listed files', async () => {
  const { manifest } = await createManifest({ root: tree, files: ['/etc/passwd', 'etc/link'] });
  assert.deepEqual(manifest.entries.map((e) => e.path), ['/etc/link', '/etc/passwd']);
});

test('an unreadable file is listed without contents and create exits 1', async () => {
  const secret = join(tree, 'etc', 'shadow');
  writeFileSync(secret, 'secret');
  chmodSync(secret, 0o600);
  try {
    const r = await run('runuser', ['-u', 'nobody', '--', process.execPath, CLI, 'bart', 'create', '-R', tree, '--no-acl'], { allowFailure: true });
    assert.equal(r.exitCode, 1, r.stderr);
    assert.match(r.stderr, /etc\/shadow: .*permission denied/i);
    assert.match(r.stdout, /^\/etc\/shadow F 6 100600 - [0-9a-f]+ 0 0 -$/m);
  } finally {
    rmSync(secret);
  }
});

test('the CLI: create to a file, compare, exit statuses', async () => {
  const m1 = join(dir, 'm1');
  const m2 = join(dir, 'm2');
  assert.equal((await run(process.execPath, [CLI, 'bart', 'create', '-R', tree, '-o', m1, '--index'])).exitCode, 0);
  assert.ok(readFileSync(`${m1}.idx`, 'utf8').startsWith('# sysprime bart index 2'));
  writeFileSync(join(tree, 'etc', 'ssh', 'sshd_config'), 'PermitRootLogin yes\n');
  await run(process.execPath, [CLI, 'bart', 'create', '-R', tree, '-o', m2, '--previous', m1]);
  const same = await run(process.execPath, [CLI, 'bart', 'compare', m1, m1], { allowFailure: true });
  assert.equal(same.exitCode, 0);
  assert.equal(same.stdout, '');
  const diff = await run(process.execPath, [CLI, 'bart', 'compare', '-p', '-i', 'dirmtime,mtime', m1, m2], { allowFailure: true });
  assert.equal(diff.exitCode, 1);
  assert.match(diff.stdout, /^\/etc\/ssh\/sshd_config size 19 20 contents [0-9a-f]{16} [0-9a-f]{16} \n$/);
  const fatal = await run(process.execPath, [CLI, 'bart', 'compare', m1, join(dir, 'missing')], { allowFailure: true });
  assert.equal(fatal.exitCode, 2);
  // A device given as a manifest or rules file is refused, not read to its end (or forever: /dev/zero).
  for (const args of [['compare', m1, '/dev/zero'], ['compare', '/dev/zero', m1], ['create', '-R', tree, '-r', '/dev/zero']]) {
    const dev = await run('timeout', ['20', process.execPath, CLI, 'bart', ...args], { allowFailure: true });
    assert.equal(dev.exitCode, 2, `${args.join(' ')}: ${dev.stderr}`);
    assert.match(dev.stderr, /^sysprime: \/dev\/zero is a device; a (manifest|rules file) is read from a file, a pipe or standard input\n/);
  }
  const badRules = await run(process.execPath, [CLI, 'bart', 'create', '-R', tree, '-r', '-'], { allowFailure: true, input: '/etc\nCHECK nonsense\n' });
  assert.equal(badRules.exitCode, 2);
  assert.match(badRules.stderr, /line 2: unknown attribute 'nonsense'/);
});

test('-o onto a device node, a FIFO or a socket is refused before the walk, one line, nothing written; a link at the name is refused, never followed', async () => {
  const out = mkdtempSync(join(dir, 'out-'));
  // A loop device stands for /dev/sdX: a manifest written there would overwrite the disk.
  const backing = join(out, 'disk.img');
  writeFileSync(backing, Buffer.alloc(1 << 20, 0x5a));
  const disk = (await run('losetup', ['--find', '--show', backing])).stdout.trim();
  const server = createServer();
  const sock = join(out, 'sock');
  try {
    const dev = join(out, 'null');
    await run('mknod', ['-m', '666', dev, 'c', '1', '3']);
    const fifo = join(out, 'fifo');
    await run('mkfifo', [fifo]);
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    for (const [name, kind] of [
      [disk, 'a block device'],
      [dev, 'a character device'],
      [fifo, 'a FIFO'],
      [sock, 'a socket'],
    ] as const) {
      for (const extra of [[], ['--index']]) {
        const r = await run(process.execPath, [CLI, 'bart', 'create', '-R', tree, '-o', name, ...extra], { allowFailure: true });
        assert.equal(r.exitCode, 2, `${name}: ${r.stderr}`);
        assert.equal(r.stdout, '');
        assert.ok(r.stderr.startsWith(`sysprime: ${name} is ${kind}; -o writes a regular file only\n`), r.stderr);
        assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('sysprime:')).length, 1, r.stderr);
      }
    }
    assert.ok(lstatSync(dev).isCharacterDevice() && lstatSync(fifo).isFIFO() && lstatSync(sock).isSocket(), 'each is still what it was');
    assert.ok(readFileSync(backing).equals(Buffer.alloc(1 << 20, 0x5a)), 'nothing written to the disk');
    // An index name that is not a regular file refuses the manifest too, before anything is written.
    await run('mkfifo', [join(out, 'beside.idx')]);
    const idx = await run(process.execPath, [CLI, 'bart', 'create', '-R', tree, '-o', join(out, 'beside'), '--index'], { allowFailure: true });
    assert.equal(idx.exitCode, 2, idx.stderr);
    assert.match(idx.stderr, /beside\.idx is a FIFO/);
    assert.ok(!existsSync(join(out, 'beside')), 'no manifest written either');
    for (const n of ['null', 'fifo', 'beside.idx']) rmSync(join(out, n));
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(sock, { force: true });
    await run('losetup', ['-d', disk]);
    rmSync(backing);
  }

  // A manifest names what only root may see, and root writing through a link planted at the name
  // replaces whatever it points to: refused, as drift -o refuses it (one writer for both).
  writeFileSync(join(out, 'target'), 'old\n');
  symlinkSync('target', join(out, 'link'));
  const linked = await run(process.execPath, [CLI, 'bart', 'create', '-R', tree, '-o', join(out, 'link')], { allowFailure: true });
  assert.equal(linked.exitCode, 2, linked.stderr);
  assert.match(linked.stderr, /link is a symbolic link; a report is not written through one/);
  assert.ok(lstatSync(join(out, 'link')).isSymbolicLink(), 'the link is still a link');
  assert.equal(readFileSync(join(out, 'target'), 'utf8'), 'old\n', 'nothing written through it');
  // Nor at the index's name.
  symlinkSync('target', join(out, 'plain.idx'));
  const index = await run(process.execPath, [CLI, 'bart', 'create', '-R', tree, '-o', join(out, 'plain'), '--index'], { allowFailure: true });
  assert.equal(index.exitCode, 2, index.stderr);
  assert.equal(readFileSync(join(out, 'target'), 'utf8'), 'old\n');
  assert.ok(!existsSync(join(out, 'plain')), 'refused before anything is written: no manifest either');
  assert.equal((await run(process.execPath, [CLI, 'bart', 'create', '-R', tree, '-o', join(out, 'plain')])).exitCode, 0);
  assert.equal(statSync(join(out, 'plain')).mode & 0o777, 0o600, 'a new manifest is 0600');
  assert.deepEqual(readdirSync(out).sort(), ['link', 'plain', 'plain.idx', 'target'], 'no temporary file is left');
});

test('incremental create equals a full walk after changes', async () => {
  const first = await createManifest({ root: tree, hash: 'sha256' });
  const prev = applyIndex(parseManifest(formatManifest(first.manifest)), formatIndex(first.manifest));
  // Same size and mtime but new contents: only ctime gives it away.
  const p = join(tree, 'etc', 'passwd');
  const st = statSync(p);
  writeFileSync(p, 'ROOT:x:0:0::/root:/bin/sh\n');
  utimesSync(p, st.atime, st.mtime);
  writeFileSync(join(tree, 'etc', 'added'), 'new');
  rmSync(join(tree, 'etc', 'ssh', 'sshd_config'));
  writeFileSync(join(tree, 'big'), Buffer.alloc(3 << 20, 8));
  const incremental = await createManifest({ root: tree, hash: 'sha256', previous: prev });
  const full = await createManifest({ root: tree, hash: 'sha256' });
  assert.equal(body(incremental.manifest), body(full.manifest));
  assert.ok(incremental.reused > 0, 'unchanged files were not hashed again');
  assert.equal(incremental.hashed, 4, 'passwd, its hard link, added, big');
  const diffs = compareManifests(first.manifest, full.manifest, undefined, { ignore: ['dirmtime', 'size'] });
  assert.deepEqual(diffs.map((d) => [d.path, d.kind]), [
    ['/big', 'modify'],
    ['/etc/added', 'add'],
    ['/etc/passwd', 'modify'],
    ['/etc/passwd-hardlink', 'modify'],
    ['/etc/ssh/sshd_config', 'delete'],
  ]);
});
