import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accountKindOf, mergeAccounts } from '../../../src/reintegrate/accounts.js';

const base = 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n';

test('admin\'s user kept, update\'s system user appended, order preserved', () => {
  const ours = base + 'alice:x:1000:1000:Alice:/home/alice:/bin/bash\n';
  const theirs = base + '_chrony:x:998:998::/var/lib/chrony:/usr/sbin/nologin\n';
  const r = mergeAccounts({ kind: 'passwd', base, ours, theirs });
  assert.equal(r.content, ours + '_chrony:x:998:998::/var/lib/chrony:/usr/sbin/nologin\n');
  assert.deepEqual(r.notes, []);
});

test('an entry only the update changed takes the update\'s line; one the admin changed keeps the admin\'s', () => {
  const ours = base.replace('/bin/bash', '/bin/zsh');
  const theirs = base.replace('/usr/sbin:/usr/sbin/nologin', '/usr/sbin:/bin/false');
  const r = mergeAccounts({ kind: 'passwd', base, ours, theirs });
  assert.equal(r.content, 'root:x:0:0:root:/root:/bin/zsh\ndaemon:x:1:1::/usr/sbin:/bin/false\n');
});

test('a user deleted by the admin stays deleted', () => {
  const ours = 'root:x:0:0:root:/root:/bin/bash\n';
  const r = mergeAccounts({ kind: 'passwd', base, ours, theirs: base });
  assert.equal(r.content, ours);
});

test('uid clash: reported as a conflict, the admin\'s entry unchanged', () => {
  const ours = base + 'alice:x:998:998::/home/alice:/bin/bash\n';
  const theirs = base + '_svc:x:998:998::/nonexistent:/usr/sbin/nologin\n';
  const r = mergeAccounts({ kind: 'passwd', base, ours, theirs });
  assert.ok(r.content.includes('alice:x:998:998::/home/alice:/bin/bash\n'));
  assert.equal(r.notes.filter((n) => n.kind === 'conflict').length, 1);
  assert.match(r.notes[0]!.message, /uid 998 is both alice \(admin\) and _svc \(update\)/);
});

test('group members united three ways', () => {
  const b = 'sudo:x:27:bob\naudio:x:29:carol,dave\n';
  const o = 'sudo:x:27:bob,alice\naudio:x:29:carol,dave\n';
  const t = 'sudo:x:27:bob,pkguser\naudio:x:29:carol\n';
  const r = mergeAccounts({ kind: 'group', base: b, ours: o, theirs: t });
  assert.equal(r.content, 'sudo:x:27:bob,alice,pkguser\naudio:x:29:carol\n');
});

test('shadow follows passwd', () => {
  const sb = 'root:*:1::::::\ndaemon:*:1::::::\n';
  const so = sb + 'alice:$6$hash:19000:0:99999:7:::\n';
  const st = sb + '_chrony:!:19500::::::\n';
  const r = mergeAccounts({ kind: 'shadow', base: sb, ours: so, theirs: st, accounts: ['root', 'daemon', 'alice', '_chrony'] });
  assert.equal(r.content, so + '_chrony:!:19500::::::\n');
  const r2 = mergeAccounts({ kind: 'shadow', base: sb, ours: so, theirs: st, accounts: ['root', 'alice'] });
  assert.equal(r2.content, 'root:*:1::::::\nalice:$6$hash:19000:0:99999:7:::\n');
});

test('subuid keeps several ranges per name', () => {
  const r = mergeAccounts({ kind: 'subuid', base: '', ours: 'alice:100000:65536\nalice:200000:65536\n', theirs: '_svc:300000:65536\n' });
  assert.equal(r.content, 'alice:100000:65536\nalice:200000:65536\n_svc:300000:65536\n');
});

test('which paths are account databases', () => {
  assert.equal(accountKindOf('/etc/passwd'), 'passwd');
  assert.equal(accountKindOf('/etc/gshadow-'), 'gshadow');
  assert.equal(accountKindOf('/etc/passwd.bak'), undefined);
});
