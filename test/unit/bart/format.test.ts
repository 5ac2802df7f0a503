import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeName, encodeName } from '../../../src/bart/escape.js';
import { formatEntry, formatHeader, formatIndexChunks, formatManifest, formatManifestBytes, formatManifestChunks, makeHeader, solarisDate, sortEntries } from '../../../src/bart/format.js';
import { applyIndex, parseManifest } from '../../../src/bart/parse.js';
import { formatIndex } from '../../../src/bart/format.js';
import { isSysprimeError } from '../../../src/errors.js';
import type { Manifest, ManifestEntry } from '../../../src/bart/types.js';

const bytes = (...b: number[]) => String.fromCharCode(...b);

test('names escape the BART way and round-trip', () => {
  assert.equal(encodeName('/etc/a b'), '/etc/a\\040b');
  assert.equal(encodeName('/x\ty\nz'), '/x\\011y\\012z');
  assert.equal(encodeName('/g*?[x]\\'), '/g\\052\\077\\133x]\\134');
  assert.equal(encodeName('/-rf --help'), '/-rf\\040--help');
  assert.equal(encodeName('/plain.name_1-2'), '/plain.name_1-2');
  const odd = [
    '/a b\tc\nd',
    '/back\\slash',
    '/glob*?[]',
    '/-leading-dash',
    '/' + bytes(0xff, 0xfe, 0x80, 0x01, 0x7f), // not UTF-8
    '/' + Buffer.from('é日本', 'utf8').toString('latin1'),
    '/\\040literal-backslash-040',
  ];
  for (const p of odd) {
    const enc = encodeName(p);
    assert.match(enc, /^[\x21-\x7e]+$/, `encoded ${JSON.stringify(enc)} is plain ASCII without spaces`);
    assert.equal(decodeName(enc), p);
  }
});

test('decodeName reads the man page style \\c escapes too', () => {
  assert.equal(decodeName('/a\\ b'), '/a b');
  assert.equal(decodeName('/x\\*'), '/x*');
});

test('header: md5 as Solaris 10 writes it, 1.1 with a Hash line (as Solaris 11 writes it) otherwise', () => {
  const date = new Date(2003, 11, 4, 16, 17, 39);
  assert.equal(solarisDate(date), 'Thursday, December 04, 2003 (16:17:39)');
  const md5 = formatHeader(makeHeader('md5', '/', date));
  assert.equal(
    md5,
    '! Version 1.0\n! Thursday, December 04, 2003 (16:17:39)\n# Format:\n#fname D size mode acl dirmtime uid gid\n#fname P size mode acl mtime uid gid\n#fname S size mode acl mtime uid gid\n#fname F size mode acl mtime uid gid contents\n#fname L size mode acl lnmtime uid gid dest\n#fname B size mode acl mtime uid gid devnode\n#fname C size mode acl mtime uid gid devnode\n',
  );
  assert.match(formatHeader(makeHeader('sha256', '/', date)), /^! Version 1\.1\n! Hash SHA256\n! Thursday/);
  assert.match(formatHeader(makeHeader('xxh64', '/mnt/x', date)), /^! Version 1\.1\n! Hash XXH64\n! .*\n! ROOT \/mnt\/x\n# Format:/);
});

test('entry lines follow bart_manifest(4) field order per type', () => {
  const base = { size: 10, mode: 0o100644, acl: '-', mtime: 0x3c165878, uid: 0, gid: 3 };
  assert.equal(formatEntry({ ...base, path: '/etc/.login', type: 'F', contents: 'abc' }), '/etc/.login F 10 100644 - 3c165878 0 3 abc');
  assert.equal(formatEntry({ ...base, path: '/d', type: 'D', mode: 0o40755 }), '/d D 10 40755 - 3c165878 0 3');
  assert.equal(formatEntry({ ...base, path: '/l', type: 'L', mode: 0o120777, dest: 'to a' }), '/l L 10 120777 - 3c165878 0 3 to\\040a');
  assert.equal(formatEntry({ ...base, path: '/l', type: 'L', mode: 0o120777, dest: '' }), '/l L 10 120777 - 3c165878 0 3 \\000');
  assert.equal(formatEntry({ ...base, path: '/dev/null', type: 'C', mode: 0o20666, devnode: 0x103 }), '/dev/null C 10 20666 - 3c165878 0 3 103');
  assert.equal(formatEntry({ ...base, path: '/p', type: 'P', mode: 0o10644 }), '/p P 10 10644 - 3c165878 0 3');
  assert.equal(
    formatEntry({ ...base, path: '/x', type: 'F', contents: '-', xattrs: { 'user.b': '0x01', 'user.a b': '#ff' } }),
    '/x F 10 100644 - 3c165878 0 3 - x:user.a\\040b=#ff x:user.b=0x01',
  );
});

test('parses the Solaris man page example', () => {
  const text = `! Version 1.0
! Mon Feb 11 10:55:30 2002
# Format:
#fname D size mode acl dirmtime uid gid
#fname P size mode acl mtime uid gid
#fname S size mode acl mtime uid gid
#fname F size mode acl mtime uid gid contents
#fname L size mode acl lnmtime uid gid dest
#fname B size mode acl mtime uid gid devnode
#fname C size mode acl mtime uid gid devnode
/etc D 3584 40755 user::rwx,group::r-x,mask::r-x,other::r-x, 3c6803d7 0 3
/etc/.login F 524 100644 user::rw-,group::r--,mask::r--,other::r-- 3c165878 0 3 27b53d5c3e844af3306f1f12b330b318
/etc/.pwd.lock F 0 100600 user::rw-,group::---,mask::---,other::--- 3c166121 0 0 d41d8cd98f00b204e9800998ecf8427e
/etc/.syslog_door L 20 120777 user::rw-,group::r--,mask::rwx,other::r-- 3c6803d5 0 0 /var/run/syslog_door
/etc/autopush L 16 120777 user::r-x,group::r-x,mask::r-x,other::r-x 3c165863 0 0 ../sbin/autopush
/etc/cron.d/FIFO P 0 10600 user::rw-,group::---,mask::---,other::--- 3c6803d5 0 0
/devices/pseudo/mm@0:null C 0 20666 user::rw-,group::rw-,mask::rw-,other::rw- 3c6803d5 0 3 2c00000002
`;
  const m = parseManifest(text, 'example');
  assert.equal(m.header.version, '1.0');
  assert.equal(m.header.hash, 'md5');
  assert.equal(m.header.date, 'Mon Feb 11 10:55:30 2002');
  assert.equal(m.entries.length, 7);
  const login = m.entries[1]!;
  assert.deepEqual(
    { path: login.path, type: login.type, size: login.size, mode: login.mode, mtime: login.mtime, uid: login.uid, gid: login.gid, contents: login.contents },
    { path: '/etc/.login', type: 'F', size: 524, mode: 0o100644, mtime: 0x3c165878, uid: 0, gid: 3, contents: '27b53d5c3e844af3306f1f12b330b318' },
  );
  assert.equal(m.entries[3]!.dest, '/var/run/syslog_door');
  assert.equal(m.entries[6]!.devnode, 0x2c00000002);
  assert.equal(m.entries[5]!.type, 'P');
});

test('parses a Solaris 11 header', () => {
  const m = parseManifest('! Version 1.1\n! HASH SHA256\n! Saturday, September 07, 2013 (22:22:27)\n/ D 1024 40755 - 3ebc418e 0 0\n');
  assert.equal(m.header.hash, 'sha256');
  assert.equal(m.header.date, 'Saturday, September 07, 2013 (22:22:27)');
});

test('parse errors name the line', () => {
  const bad = (text: string, re: RegExp) =>
    assert.throws(
      () => parseManifest(text, 'm.txt'),
      (err) => isSysprimeError(err, 'MANIFEST') && re.test(err.message),
    );
  bad('! Version 1.1\n! HASH XXH64\n/a F 1 100644 - 0 0 0\n', /m\.txt, line 3: file entry without contents/);
  bad('! Version 1.1\n! HASH XXH64\n/a Q 1 100644 - 0 0 0 x\n', /line 3: unknown file type 'Q'/);
  bad('! Version 1.1\n! HASH XXH64\n\n/a F 1 1009 - 0 0 0 x\n', /line 4: mode '1009'/);
  bad('! Version 1.1\n! HASH NOPE\n', /line 2: unknown hash/);
  bad('/a D 1 40755 - 0 0\n', /line 1: expected at least 8 fields/);
  bad('/a D 1 40755 - 0 0 0\n', /no '! Version' line/);
});

test('format and parse round-trip, with odd names, xattrs and the side index', () => {
  const e = (path: string, extra: Partial<ManifestEntry> = {}): ManifestEntry => ({ path, type: 'F', size: 1, mode: 0o100644, acl: '-', mtime: 5, uid: 1, gid: 2, contents: 'aa', stat: { dev: 1, ino: 2, mtimeMs: 5000.25, ctimeMs: 6000.5 }, ...extra });
  const entries = sortEntries([
    e('/z'),
    e('/a b'),
    e('/a-b'),
    e('/a/b'),
    e('/' + bytes(0xff, 0x0a)),
    e('/acl', { acl: 'user::rw-,user:1000:r--,group::r--,mask::r--,other::r--' }),
    e('/x', { xattrs: { 'user.k': '0x76' } }),
    e('/l', { type: 'L', dest: '../a b', contents: undefined }),
    // Either side of the length up to which text is copied in a loop, not by Buffer#write.
    e('/' + 'n'.repeat(63)),
    e('/' + 'n'.repeat(64)),
    e('/' + 'o'.repeat(200) + bytes(0xe9)),
  ]);
  const m: Manifest = { header: { ...makeHeader('xxh64', '/'), xattrs: true }, entries };
  const text = formatManifest(m);
  const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('!') && !l.startsWith('#'));
  assert.deepEqual([...lines].sort(), lines, 'lines are in C order');
  const back = parseManifest(Buffer.from(text, 'latin1'));
  applyIndex(back, formatIndex(m));
  assert.equal(back.header.xattrs, true);
  assert.deepEqual(back.entries, m.entries.map((x) => JSON.parse(JSON.stringify(x)) as ManifestEntry));
});

test('a manifest and its index written in chunks are the bytes written whole, each chunk ending a line', () => {
  // Enough lines for several chunks of a MiB, with names that need escaping and a stat index with fractions.
  const entries = sortEntries(
    Array.from({ length: 40_000 }, (_, i): ManifestEntry => ({
      path: `/usr/share/pkg ${i % 97}/file-${i}`,
      type: 'F',
      size: i * 13,
      mode: 0o100644,
      acl: '-',
      mtime: 1_700_000_000 + i,
      uid: 0,
      gid: i % 3,
      contents: (i * 7919).toString(16).padStart(16, '0'),
      ...(i % 5 === 0 ? {} : { stat: { dev: 45, ino: 256 + i, mtimeMs: 1_700_000_000_123.4567 + i, ctimeMs: 1_700_000_000_987.25 + i } }),
    })),
  );
  const m: Manifest = { header: makeHeader('xxh64', '/'), entries };
  const chunks = [...formatManifestChunks(m)];
  assert.ok(chunks.length >= 3, `${chunks.length} chunks`);
  for (const c of chunks) assert.equal(c[c.length - 1], 0x0a, 'every chunk ends a line');
  assert.ok(Buffer.concat(chunks).equals(formatManifestBytes(m)));
  assert.equal(Buffer.concat(chunks).toString('latin1'), formatManifest(m));

  const index = [...formatIndexChunks(m)];
  assert.ok(index.length >= 2, `${index.length} index chunks`);
  const text = Buffer.concat(index).toString('latin1');
  const lines = text.split('\n');
  assert.equal(lines[0], `# sysprime bart index 1 ${entries.length}`);
  assert.equal(lines[1], entries[0]!.stat === undefined ? '-' : `${entries[0]!.stat.dev} ${entries[0]!.stat.ino} ${entries[0]!.stat.mtimeMs} ${entries[0]!.stat.ctimeMs}`);
  const back = applyIndex(parseManifest(Buffer.concat(chunks)), text);
  assert.deepEqual(back.entries, entries);
  // Read from bytes the index is parsed in pieces of 512 KiB: the same stat on every entry, wherever a piece ends.
  const bytes = Buffer.concat(index);
  assert.ok(bytes.length > 2 * (512 << 10), `${bytes.length} bytes of index`);
  assert.deepEqual(applyIndex(parseManifest(Buffer.concat(chunks)), bytes).entries, entries);
  // Cut short, with or without its last newline (then its last line is an empty one, as split('\n') reads it).
  const failsAt = (line: number, what: string) => (err: unknown) => isSysprimeError(err, 'MANIFEST') && err.message.includes(`line ${line}: ${what}`);
  const body = bytes.subarray(0, bytes.lastIndexOf(0x0a, bytes.length - 2) + 1);
  assert.throws(() => applyIndex(parseManifest(Buffer.concat(chunks)), body), failsAt(entries.length + 1, "malformed index line ''"));
  assert.throws(() => applyIndex(parseManifest(Buffer.concat(chunks)), body.subarray(0, body.length - 1)), failsAt(entries.length + 1, 'index ends early'));
  for (const cut of [body, body.subarray(0, body.length - 1)]) {
    assert.throws(() => applyIndex(parseManifest(Buffer.concat(chunks)), cut), (a: unknown) => {
      let b: unknown;
      try {
        applyIndex(parseManifest(Buffer.concat(chunks)), cut.toString('latin1'));
      } catch (err) {
        b = err;
      }
      return a instanceof Error && b instanceof Error && a.message === b.message;
    }, 'the same error from bytes as from the string');
  }
  // Parsed with the manifest, every entry made with its stat index: the same entries, and the same refusals.
  const manifestBytes = Buffer.concat(chunks);
  assert.deepEqual(parseManifest(manifestBytes, 'm', { data: bytes, source: 'i' }).entries, entries);
  assert.deepEqual(parseManifest(manifestBytes.toString('latin1'), 'm', { data: bytes.toString('latin1'), source: 'i' }).entries, entries);
  assert.throws(() => parseManifest(manifestBytes, 'm', { data: body, source: 'i' }), failsAt(entries.length + 1, "malformed index line ''"));
  assert.throws(() => parseManifest(manifestBytes, 'm', { data: body.subarray(0, body.length - 1), source: 'i' }), failsAt(entries.length + 1, 'index ends early'));
  const fewer = Buffer.from(`# sysprime bart index 1 ${entries.length - 1}\n${bytes.toString('latin1').split('\n').slice(1, -2).join('\n')}\n`, 'latin1');
  assert.throws(() => parseManifest(manifestBytes, 'm', { data: fewer, source: 'i' }), failsAt(1, `index lists ${entries.length - 1} entries, the manifest ${entries.length}`));
  assert.throws(() => applyIndex(parseManifest(manifestBytes), fewer), failsAt(1, `index lists ${entries.length - 1} entries, the manifest ${entries.length}`));
  assert.throws(() => parseManifest(manifestBytes, 'm', { data: Buffer.from('not an index\n'), source: 'i' }), failsAt(1, 'not a sysprime bart index'));
  // With lines to spare, or no newline at its end.
  assert.deepEqual(applyIndex(parseManifest(Buffer.concat(chunks)), bytes.subarray(0, bytes.length - 1)).entries, entries);
  assert.deepEqual(applyIndex(parseManifest(Buffer.concat(chunks)), Buffer.concat([bytes, Buffer.from('junk\n')])).entries, entries);

  // Reused, every chunk is the same memory, and copied as it comes the text is the same.
  for (const [reused, fresh] of [
    [formatManifestChunks(m, { reuse: true }), chunks],
    [formatIndexChunks(m, { reuse: true }), index],
  ] as const) {
    const copies: Buffer[] = [];
    const memory = new Set<ArrayBufferLike>();
    for (const c of reused) {
      copies.push(Buffer.from(c));
      memory.add(c.buffer);
    }
    assert.equal(memory.size, 1, 'one buffer for every chunk');
    assert.equal(copies.length, fresh.length);
    assert.ok(Buffer.concat(copies).equals(Buffer.concat(fresh)));
  }
});
