/**
 * The incremental create that copies unchanged lines from a saved manifest
 * (saved.ts, incremental.ts, find-walk.ts), on a real tree in a fresh temp
 * directory: its result must be the full walk's, byte for byte, whatever
 * changed, and an index it cannot trust must send it back to a full walk.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync, writeSync, linkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../src/process/run.js';
import { createManifestText, type CreateTextOptions, type CreateTextResult } from '../../../src/bart/saved.js';
import { RECORD, R_WALK, decodeIndex } from '../../../src/bart/index-file.js';
import { createManifest } from '../../../src/bart/create.js';
import { formatManifestBytes } from '../../../src/bart/format.js';
import { parseRules } from '../../../src/bart/rules.js';

let dir = '';
let tree = '';
let n = 0;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sysprime-bart-incr-'));
  chmodSync(dir, 0o755);
  tree = join(dir, 'tree');
  mkdirSync(join(tree, 'etc', 'ssh'), { recursive: true });
  mkdirSync(join(tree, 'var', 'cache', 'deep'), { recursive: true });
  mkdirSync(join(tree, 'src', 'CVS'), { recursive: true });
  mkdirSync(join(tree, 'dev'));
  writeFileSync(join(tree, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  writeFileSync(join(tree, 'etc', 'hosts'), '127.0.0.1 localhost\n');
  writeFileSync(join(tree, 'etc', 'ssh', 'sshd_config'), 'PermitRootLogin no\n');
  writeFileSync(join(tree, 'etc', 'name with spaces\tand tab'), 'x');
  writeFileSync(Buffer.from(join(tree, 'etc', 'bad-\xff-utf8'), 'latin1'), 'bytes');
  writeFileSync(join(tree, 'etc', 'glob*?[x]\\'), 'g');
  writeFileSync(join(tree, 'var', 'cache', 'deep', 'junk'), 'junk');
  writeFileSync(join(tree, 'src', 'main.c'), 'int main;');
  writeFileSync(join(tree, 'src', 'main.o'), 'obj');
  writeFileSync(join(tree, 'src', 'CVS', 'Root'), 'cvs');
  linkSync(join(tree, 'etc', 'passwd'), join(tree, 'etc', 'passwd-hardlink'));
  symlinkSync('../etc/passwd', join(tree, 'etc', 'link'));
  await run('mkfifo', [join(tree, 'dev', 'fifo')]);
  await run('mknod', [join(tree, 'dev', 'null'), 'c', '1', '3']);
  await run('mknod', [join(tree, 'dev', 'loop9'), 'b', '7', '9']);
  const fd = openSync(join(tree, 'big'), 'w');
  writeSync(fd, 'tail', 3 << 20);
  closeSync(fd);
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** The manifest text without its date line (the only line two runs may differ in). */
function body(r: CreateTextResult): string {
  return bodyOf(r.text);
}

function bodyOf(text: Buffer): string {
  return text.toString('latin1').split('\n').filter((l) => !/^! [A-Z][a-z]+day, /.test(l)).join('\n');
}

/** A create saved as the command saves it: FILE and FILE.idx. */
async function save(opts: CreateTextOptions): Promise<{ file: string; result: CreateTextResult; warnings: string[] }> {
  const file = join(dir, `m${n++}`);
  const warnings: string[] = [];
  const result = await createManifestText({ root: tree, index: true, onWarning: (w) => warnings.push(w), ...opts });
  writeFileSync(file, result.text);
  writeFileSync(`${file}.idx`, result.index!);
  return { file, result, warnings };
}

/**
 * The copied manifest equals a full walk of the same tree by the thread walk
 * (create.ts, another walker), and its index the index of a full create.
 */
async function assertSameAsFull(copied: CreateTextResult, opts: CreateTextOptions): Promise<void> {
  const { previousFile: _p, index: _i, ...createOpts } = opts;
  const walked = await createManifest({ root: tree, ...createOpts });
  assert.equal(body(copied), bodyOf(formatManifestBytes(walked.manifest)));
  const full = await createManifestText({ root: tree, index: true, ...opts });
  assert.equal(full.mode, 'walked');
  assert.equal(body(copied), body(full));
  const a = await decodeIndex(copied.index!, 'copied', copied.text);
  const b = await decodeIndex(full.index!, 'full', full.text);
  assert.equal(a.options, b.options);
  // A fallback made by the thread walk knows no find order (-1); every other number must agree.
  const walkOf = (r: Float64Array) => [...r].map((v, i) => (i % RECORD === R_WALK && (copied.mode === 'walked' || v === -1) ? 0 : v));
  assert.deepEqual(walkOf(a.records), walkOf(b.records));
}

test('nothing changed: every line is copied, and the result is the full walk', async () => {
  const first = await save({ hash: 'sha256' });
  assert.equal(first.result.mode, 'walked');
  const again = await save({ hash: 'sha256', previousFile: first.file });
  assert.equal(again.result.mode, 'copied');
  assert.deepEqual(again.warnings, []);
  assert.equal(again.result.hashed, 0);
  assert.equal(again.result.status, 0);
  await assertSameAsFull(again.result, { hash: 'sha256' });
  assert.match(again.result.text.toString('latin1'), /^\/etc\/bad-\\377-utf8 F /m);
});

test('edits, additions, deletions and a renamed directory are all seen', async () => {
  const first = await save({});
  // Same size and mtime, new contents: only ctime says so.
  const p = join(tree, 'etc', 'passwd');
  const st = statSync(p);
  writeFileSync(p, 'ROOT:x:0:0::/root:/bin/sh\n');
  utimesSync(p, st.atime, st.mtime);
  writeFileSync(join(tree, 'etc', 'added'), 'new');
  writeFileSync(join(tree, 'aaa-first'), 'sorts before everything');
  writeFileSync(join(tree, 'zzz-last'), 'sorts after everything');
  rmSync(join(tree, 'etc', 'hosts'));
  renameSync(join(tree, 'etc', 'ssh'), join(tree, 'etc', 'ssh2'));
  const fd = openSync(join(tree, 'big'), 'r+');
  writeSync(fd, 'TAIL', 3 << 20);
  closeSync(fd);
  const again = await save({ previousFile: first.file });
  assert.equal(again.result.mode, 'copied');
  assert.equal(again.result.hashed, 7, 'passwd and its hard link, added, aaa-first, zzz-last, big, and ssh2/sshd_config under its new name');
  await assertSameAsFull(again.result, {});
  const text = again.result.text.toString('latin1');
  assert.doesNotMatch(text, /^\/etc\/hosts /m);
  assert.match(text, /^\/etc\/ssh2\/sshd_config F /m);
  // And a copy of the copy is the full walk too.
  const third = await save({ previousFile: again.file });
  assert.equal(third.result.mode, 'copied');
  assert.equal(third.result.hashed, 0);
  await assertSameAsFull(third.result, {});
});

test('chmod, setfacl and setfattr on a file whose contents did not change are seen (ctime)', async () => {
  const rules = parseRules('/\nCHECK xattr\n');
  const first = await save({ rules });
  const line = (r: CreateTextResult, path: string) => r.text.toString('latin1').split('\n').find((l) => l.startsWith(path + ' '));
  const p = join(tree, 'etc', 'ssh2', 'sshd_config');
  const before = line(first.result, '/etc/ssh2/sshd_config');

  chmodSync(p, 0o640);
  let again = await save({ rules, previousFile: first.file });
  assert.equal(again.result.mode, 'copied');
  assert.match(line(again.result, '/etc/ssh2/sshd_config')!, / F 19 100640 - /);
  await assertSameAsFull(again.result, { rules });

  await run('setfacl', ['-m', 'u:1234:r', p]);
  const afterAcl = await save({ rules, previousFile: again.file });
  assert.match(line(afterAcl.result, '/etc/ssh2/sshd_config')!, / user::rw-,user:1234:r--,group::r--,mask::r--,other::--- /);
  await assertSameAsFull(afterAcl.result, { rules });

  await run('setfattr', ['-n', 'user.note', '-v', 'hello', p]);
  again = await save({ rules, previousFile: afterAcl.file });
  assert.match(line(again.result, '/etc/ssh2/sshd_config')!, / x:user\.note=0x68656c6c6f$/);
  await assertSameAsFull(again.result, { rules });
  assert.notEqual(line(again.result, '/etc/ssh2/sshd_config'), before);
});

test('rules that prune and patterns that filter give the full walk', async () => {
  // Three starting points; one subtree left out whole (pruned in find), patterns filtered here.
  const rules = parseRules('/etc\n/src !*.o !CVS/\n/var\nIGNORE dirmtime\n/var/cache\nIGNORE all\n');
  const first = await save({ rules });
  assert.doesNotMatch(first.result.text.toString('latin1'), /^\/var\/cache\/deep/m);
  writeFileSync(join(tree, 'src', 'more.c'), 'x');
  writeFileSync(join(tree, 'src', 'more.o'), 'x');
  writeFileSync(join(tree, 'var', 'cache', 'deep', 'more'), 'x');
  const again = await save({ rules, previousFile: first.file });
  assert.equal(again.result.mode, 'copied');
  await assertSameAsFull(again.result, { rules });
  const text = again.result.text.toString('latin1');
  assert.match(text, /^\/src\/more\.c F /m);
  assert.doesNotMatch(text, /^\/src\/more\.o /m);
  assert.doesNotMatch(text, /^\/src\/CVS/m);
  assert.doesNotMatch(text, /^\/var\/cache\/deep/m);
  assert.doesNotMatch(text, /^\/dev/m);
  // A root below the top: paths are relative to it.
  const sub = await save({ root: join(tree, 'etc') });
  const subAgain = await save({ root: join(tree, 'etc'), previousFile: sub.file });
  assert.equal(subAgain.result.mode, 'copied');
  await assertSameAsFull(subAgain.result, { root: join(tree, 'etc') });
});

test('an index it cannot trust means a full walk with a warning, never a wrong manifest', async () => {
  const first = await save({});
  writeFileSync(join(tree, 'etc', 'passwd'), 'changed after the first manifest\n');
  const idx = readFileSync(`${first.file}.idx`);
  const cases: [string, () => void, RegExp][] = [
    ['truncated', () => writeFileSync(`${first.file}.idx`, idx.subarray(0, idx.length - 13)), /truncated/],
    ['foreign', () => writeFileSync(`${first.file}.idx`, 'not an index at all\n'), /not a version 2 index/],
    ['version 1', () => writeFileSync(`${first.file}.idx`, '# sysprime bart index 1 0\n'), /not a version 2 index/],
    ['missing', () => rmSync(`${first.file}.idx`), /does not exist/],
    [
      'manifest edited',
      () => {
        writeFileSync(`${first.file}.idx`, idx);
        writeFileSync(first.file, readFileSync(first.file, 'latin1').replace(/^(\/etc\/passwd F .* )[0-9a-f]{16}$/m, '$10000000000000000'), 'latin1');
      },
      /another manifest/,
    ],
  ];
  for (const [what, spoil, why] of cases) {
    spoil();
    const again = await save({ previousFile: first.file });
    assert.equal(again.result.mode, 'walked', what);
    assert.ok(again.warnings.some((w) => why.test(w) && /walking the whole tree/.test(w)), `${what}: ${again.warnings.join('; ')}`);
    await assertSameAsFull(again.result, {});
  }
  // Made with other options: copied lines would say something else.
  const sha = await save({ hash: 'sha256' });
  const other = await save({ previousFile: sha.file });
  assert.equal(other.result.mode, 'walked');
  assert.ok(other.warnings.some((w) => /other rules or options/.test(w)));
  await assertSameAsFull(other.result, {});
  const noAcl = await save({ acl: false, previousFile: (await save({})).file });
  assert.equal(noAcl.result.mode, 'walked');
});

test('an entry that could not be read is read again next time', async () => {
  const secret = join(tree, 'etc', 'secret');
  writeFileSync(secret, 'secret');
  chmodSync(secret, 0o600);
  const file = join(dir, `m${n++}`);
  // As nobody, the secret cannot be read: its line has contents '-' and its index entry says so.
  const script = `
    import { writeFileSync } from 'node:fs';
    import { createManifestText } from ${JSON.stringify(new URL('../../../src/bart/saved.js', import.meta.url).href)};
    const r = await createManifestText({ root: process.argv[2], index: true, acl: false });
    writeFileSync(process.argv[3], r.text);
    writeFileSync(process.argv[3] + '.idx', r.index);
    process.stdout.write(r.mode + ' ' + r.status);
  `;
  chmodSync(dir, 0o777);
  try {
    const scriptFile = join(dir, 'as-nobody.mjs');
    writeFileSync(scriptFile, script);
    const first = await run('runuser', ['-u', 'nobody', '--', process.execPath, scriptFile, tree, file], { allowFailure: true });
    assert.equal(first.stdout, 'walked 1', first.stderr);
    assert.match(readFileSync(file, 'latin1'), /^\/etc\/secret F 6 100600 - [0-9a-f]+ 0 0 -$/m);
    const again = await createManifestText({ root: tree, index: true, acl: false, previousFile: file });
    assert.equal(again.mode, 'copied');
    assert.equal(again.hashed, 2, 'only the files nobody could not read: secret and ssh2/sshd_config (0640 since the chmod test)');
    assert.match(again.text.toString('latin1'), /^\/etc\/secret F 6 100600 - [0-9a-f]+ 0 0 [0-9a-f]{16}$/m);
  } finally {
    chmodSync(dir, 0o755);
    rmSync(secret);
  }
});
