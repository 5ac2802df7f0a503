// `btrfs receive --dump` output captured from btrfs-progs v6.2 (Linux 6.x, loop-file Btrfs):
// a read-only snapshot `tmp` of an environment against its pristine parent, after
// edits, deletions, renames (of a directory too), chmod, chown, xattrs, an ACL,
// symlinks, hard links, special files, and names with spaces, tabs, newlines,
// backslashes and bytes that are not UTF-8.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSendDump, unescapeDumpPath } from '../../../src/backends/btrfs/send-dump.js';
import type { PathChange } from '../../../src/backends/types.js';
import { isSysprimeError } from '../../../src/errors.js';

const DUMP = String.raw`snapshot        ./tmp                           uuid=3c100f4e-a2d5-924f-8dd0-817acc4ef817 transid=9 parent_uuid=ca2ad61a-c2c6-7545-b97a-8390d8ab94f4 parent_transid=7
rmdir           ./tmp/etc/sub
rename          ./tmp/dir                       dest=./tmp/dir\ 3
link            ./tmp/etc/a-link                dest=etc/a
update_extent   ./tmp/etc/a                     offset=0 len=5
utimes          ./tmp/etc/a                     atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:42:47+0000
unlink          ./tmp/etc/b
update_extent   ./tmp/etc/hard                  offset=0 len=5
utimes          ./tmp/etc/hard                  atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:42:47+0000
update_extent   ./tmp/dir\ 3/deep/f             offset=0 len=7
utimes          ./tmp/dir\ 3/deep/f             atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:43:18+0000 ctime=2026-11-22T03:43:18+0000
unlink          ./tmp/etc/link
set_xattr       ./tmp/etc/chm                   name=system.posix_acl_access data=${'\x02'} len=44
chmod           ./tmp/etc/chm                   mode=640
utimes          ./tmp/etc/chm                   atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:43:18+0000
set_xattr       ./tmp/etc/own                   name=user.sp ace data=hello world len=11
chown           ./tmp/etc/own                   gid=2 uid=1
utimes          ./tmp/etc/own                   atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:43:18+0000
remove_xattr    ./tmp/etc/xat                   name=user.k
set_xattr       ./tmp/etc/xat                   name=user.n data=z len=1
set_xattr       ./tmp/etc/xat                   name=user.bin data=A
B len=6
utimes          ./tmp/etc/xat                   atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:43:18+0000
truncate        ./tmp/etc/tr                    size=0
utimes          ./tmp/etc/tr                    atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:42:47+0000
unlink          ./tmp/etc/fifo
link            ./tmp/usr/lib/q2                dest=usr/lib/q
unlink          ./tmp/usr/lib/q
utimes          ./tmp/usr/lib/q2                atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:42:47+0000
mkfile          ./tmp/o276-8-0
rename          ./tmp/o276-8-0                  dest=./tmp/etc/new
update_extent   ./tmp/etc/new                   offset=0 len=4
chown           ./tmp/etc/new                   gid=0 uid=0
chmod           ./tmp/etc/new                   mode=644
utimes          ./tmp/etc/new                   atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:42:47+0000
symlink         ./tmp/o277-8-0                  dest=other
rename          ./tmp/o277-8-0                  dest=./tmp/etc/link
chown           ./tmp/etc/link                  gid=0 uid=0
utimes          ./tmp/etc/link                  atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:42:47+0000
mkfile          ./tmp/o278-8-0
rename          ./tmp/o278-8-0                  dest=./tmp/etc/new\nline
update_extent   ./tmp/etc/new\nline             offset=0 len=1
chown           ./tmp/etc/new\nline             gid=0 uid=0
chmod           ./tmp/etc/new\nline             mode=644
utimes          ./tmp/etc/new\nline             atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:42:47+0000
mkfile          ./tmp/o279-8-0
rename          ./tmp/o279-8-0                  dest=./tmp/etc/bad\377\376name
update_extent   ./tmp/etc/bad\377\376name       offset=0 len=2
chown           ./tmp/etc/bad\377\376name       gid=0 uid=0
chmod           ./tmp/etc/bad\377\376name       mode=644
utimes          ./tmp/etc/bad\377\376name       atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:42:47+0000
mkfile          ./tmp/o280-8-0
rename          ./tmp/o280-8-0                  dest=./tmp/etc/new\ space
update_extent   ./tmp/etc/new\ space            offset=0 len=3
chown           ./tmp/etc/new\ space            gid=0 uid=0
chmod           ./tmp/etc/new\ space            mode=644
utimes          ./tmp/etc/new\ space            atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:42:47+0000
mkfifo          ./tmp/o281-8-0
rename          ./tmp/o281-8-0                  dest=./tmp/etc/fifo2
chown           ./tmp/etc/fifo2                 gid=0 uid=0
chmod           ./tmp/etc/fifo2                 mode=644
utimes          ./tmp/etc/fifo2                 atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:42:47+0000
mknod           ./tmp/o282-8-0                  mode=20644 dev=0x103
rename          ./tmp/o282-8-0                  dest=./tmp/etc/chr
chown           ./tmp/etc/chr                   gid=0 uid=0
chmod           ./tmp/etc/chr                   mode=644
utimes          ./tmp/etc/chr                   atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:42:47+0000
mksock          ./tmp/o283-8-0
rename          ./tmp/o283-8-0                  dest=./tmp/etc/sock
chown           ./tmp/etc/sock                  gid=0 uid=0
chmod           ./tmp/etc/sock                  mode=755
utimes          ./tmp/etc/sock                  atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:42:47+0000
mkdir           ./tmp/o284-8-0
rename          ./tmp/o284-8-0                  dest=./tmp/etc/newdir
chown           ./tmp/etc/newdir                gid=0 uid=0
chmod           ./tmp/etc/newdir                mode=755
mkfile          ./tmp/o285-8-0
rename          ./tmp/o285-8-0                  dest=./tmp/etc/newdir/z
update_extent   ./tmp/etc/newdir/z              offset=0 len=2
chown           ./tmp/etc/newdir/z              gid=0 uid=0
chmod           ./tmp/etc/newdir/z              mode=644
utimes          ./tmp/etc/newdir/z              atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:42:47+0000
mkfile          ./tmp/o286-8-0
rename          ./tmp/o286-8-0                  dest=./tmp/usr/lib/big2
update_extent   ./tmp/usr/lib/big2              offset=0 len=4
chown           ./tmp/usr/lib/big2              gid=0 uid=0
chmod           ./tmp/usr/lib/big2              mode=644
utimes          ./tmp/usr/lib/big2              atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:42:47+0000
mkfile          ./tmp/o287-8-0
rename          ./tmp/o287-8-0                  dest=./tmp/etc/tab\there
update_extent   ./tmp/etc/tab\there             offset=0 len=6
chown           ./tmp/etc/tab\there             gid=0 uid=0
chmod           ./tmp/etc/tab\there             mode=644
utimes          ./tmp/etc/tab\there             atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:42:47+0000
mkfile          ./tmp/o288-8-0
rename          ./tmp/o288-8-0                  dest=./tmp/etc/back\\slash
update_extent   ./tmp/etc/back\\slash           offset=0 len=3
chown           ./tmp/etc/back\\slash           gid=0 uid=0
chmod           ./tmp/etc/back\\slash           mode=644
utimes          ./tmp/etc/back\\slash           atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:42:47+0000
mkfile          ./tmp/o289-8-0
rename          ./tmp/o289-8-0                  dest=./tmp/etc/eq=x
update_extent   ./tmp/etc/eq=x                  offset=0 len=3
chown           ./tmp/etc/eq=x                  gid=0 uid=0
chmod           ./tmp/etc/eq=x                  mode=644
utimes          ./tmp/etc/eq=x                  atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:42:47+0000
mkfile          ./tmp/o290-9-0
rename          ./tmp/o290-9-0                  dest=./tmp/etc/sp\ ec\nial
link            ./tmp/etc/ln\ k\001             dest=etc/sp\ ec\nial
update_extent   ./tmp/etc/sp\ ec\nial           offset=0 len=1
chown           ./tmp/etc/sp\ ec\nial           gid=0 uid=0
chmod           ./tmp/etc/sp\ ec\nial           mode=644
utimes          ./tmp/etc/sp\ ec\nial           atime=2026-11-22T03:43:18+0000 mtime=2026-11-22T03:43:18+0000 ctime=2026-11-22T03:43:18+0000
symlink         ./tmp/o291-9-0                  dest=tar\ get\nnl
rename          ./tmp/o291-9-0                  dest=./tmp/etc/nlsym
chown           ./tmp/etc/nlsym                 gid=0 uid=0
utimes          ./tmp/etc/nlsym                 atime=2026-11-22T03:43:18+0000 mtime=2026-11-22T03:43:18+0000 ctime=2026-11-22T03:43:18+0000
mkfile          ./tmp/o292-9-0
rename          ./tmp/o292-9-0                  dest=./tmp/usr/lib/cl\ one
update_extent   ./tmp/usr/lib/cl\ one           offset=0 len=4
chown           ./tmp/usr/lib/cl\ one           gid=0 uid=0
chmod           ./tmp/usr/lib/cl\ one           mode=644
utimes          ./tmp/usr/lib/cl\ one           atime=2026-11-22T03:43:18+0000 mtime=2026-11-22T03:43:18+0000 ctime=2026-11-22T03:43:18+0000
utimes          ./tmp/usr/lib                   atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:43:18+0000 ctime=2026-11-22T03:43:18+0000
utimes          ./tmp/etc                       atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:43:18+0000 ctime=2026-11-22T03:43:18+0000
utimes          ./tmp/etc/newdir                atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:42:47+0000
utimes          ./tmp/dir\ 3                    atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:42:47+0000 ctime=2026-11-22T03:43:18+0000
utimes          ./tmp/                          atime=2026-11-22T03:42:47+0000 mtime=2026-11-22T03:43:18+0000 ctime=2026-11-22T03:43:18+0000
`;

const byKind = (changes: PathChange[], kind: PathChange['kind']): string[] =>
  changes.filter((c) => c.kind === kind).map((c) => (c.kind === 'renamed' ? `${c.path} -> ${c.to}` : c.path));

test('escapes are undone as print_path_escaped writes them', () => {
  assert.equal(unescapeDumpPath(String.raw`./a\ b\nc\td\\e\377\376f\001`), './a b\nc\td\\e\xff\xfef\x01');
  assert.equal(unescapeDumpPath(String.raw`\a\b\e\f\r\v`), '\x07\b\x1b\f\r\v');
  assert.equal(unescapeDumpPath('plain=name'), 'plain=name');
  assert.throws(() => unescapeDumpPath(String.raw`bad\q`), (e) => isSysprimeError(e, 'BACKEND'));
  assert.throws(() => unescapeDumpPath(String.raw`short\37`), (e) => isSysprimeError(e, 'BACKEND'));
});

test('a captured dump gives every changed path, relative to the subvolume', () => {
  const changes = parseSendDump(DUMP);
  assert.deepEqual(byKind(changes, 'removed'), ['/etc/sub', '/etc/b', '/etc/link', '/etc/fifo', '/usr/lib/q']);
  const renamed = byKind(changes, 'renamed');
  assert.ok(renamed.includes('/dir -> /dir 3'));
  assert.ok(renamed.includes('/o278-8-0 -> /etc/new\nline'));
  assert.ok(renamed.includes('/o279-8-0 -> /etc/bad\xff\xfename'));
  assert.ok(renamed.includes('/o287-8-0 -> /etc/tab\there'));
  assert.ok(renamed.includes('/o288-8-0 -> /etc/back\\slash'));
  assert.ok(renamed.includes('/o290-9-0 -> /etc/sp ec\nial'));
  const created = byKind(changes, 'created');
  for (const p of ['/etc/a-link', '/usr/lib/q2', '/o276-8-0', '/o277-8-0', '/o281-8-0', '/o282-8-0', '/o283-8-0', '/o284-8-0', '/etc/ln k\x01', '/o291-9-0']) {
    assert.ok(created.includes(p), `${JSON.stringify(p)} created`);
  }
  const modified = new Set(byKind(changes, 'modified'));
  for (const p of ['/etc/a', '/etc/hard', '/dir 3/deep/f', '/etc/chm', '/etc/own', '/etc/xat', '/etc/tr', '/etc/new space', '/etc/newdir/z', '/usr/lib/cl one', '/', '/etc', '/dir 3']) {
    assert.ok(modified.has(p), `${JSON.stringify(p)} modified`);
  }
  // link's dest (relative to the subvolume, no ./tmp prefix) is the inode's other name.
  assert.ok(modified.has('/etc/a'));
  assert.ok(modified.has('/etc/sp ec\nial'));
  // The set_xattr value with a newline did not turn its second line into a command.
  assert.ok(!changes.some((c) => c.path.startsWith('B')));
});

test('subvol streams, write and clone', () => {
  const dump = [
    'subvol          ./small-ro                      uuid=3fea01d7-121f-6843-bece-d1323d567630 transid=10',
    'chmod           ./small-ro/                     mode=755',
    'mkfile          ./small-ro/o257-10-0',
    'rename          ./small-ro/o257-10-0            dest=./small-ro/f',
    'write           ./small-ro/f                    offset=0 len=2',
    'clone           ./small-ro/copy                 offset=0 len=4096 from=./small-ro/f clone_offset=0',
    'truncate        ./small-ro/f                    size=0',
    'mkdir           ./small-ro/o258-10-0',
    'rmdir           ./small-ro/gone',
    '',
  ].join('\n');
  assert.deepEqual(parseSendDump(dump), [
    { kind: 'modified', path: '/' },
    { kind: 'created', path: '/o257-10-0' },
    { kind: 'renamed', path: '/o257-10-0', to: '/f' },
    { kind: 'modified', path: '/f' },
    { kind: 'modified', path: '/copy' },
    { kind: 'modified', path: '/f' },
    { kind: 'created', path: '/o258-10-0' },
    { kind: 'removed', path: '/gone' },
  ]);
});

test('a long path is followed by one space only', () => {
  const long = 'a'.repeat(40);
  const dump = `snapshot        ./s    uuid=u transid=1 parent_uuid=p parent_transid=1\nchmod           ./s/${long} mode=600\n`;
  assert.deepEqual(parseSendDump(dump), [{ kind: 'modified', path: `/${long}` }]);
});

test('an empty stream lists nothing', () => {
  assert.deepEqual(parseSendDump('snapshot        ./s                             uuid=u transid=1 parent_uuid=p parent_transid=1\n'), []);
  assert.deepEqual(parseSendDump(''), []);
});

test('what it does not know is an error, never a guess', () => {
  const head = 'snapshot        ./s                             uuid=u transid=1 parent_uuid=p parent_transid=1\n';
  for (const bad of [
    'frobnicate      ./s/x\n',
    'chmod           ./other/x                       mode=600\n',
    'rename          ./s/x\n',
    'set_xattr       ./s/x                           name=user.a data=never ends\n',
    head.trim() + '\n',
  ]) {
    assert.throws(() => parseSendDump(head + bad), (e) => isSysprimeError(e, 'BACKEND'), bad);
  }
  assert.throws(() => parseSendDump('chmod           ./s/x                           mode=600\n'), (e) => isSysprimeError(e, 'BACKEND'));
});
