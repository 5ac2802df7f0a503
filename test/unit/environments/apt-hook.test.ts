import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chrootSkip, descriptionFor, insideSysprimeChroot, withoutCredentials, nameFor, packageOperation, parseHookInput } from '../../../src/environments/apt-hook.js';
import { checkDescription, MAX_DESCRIPTION } from '../../../src/environments/annotations.js';
import { nameProblem } from '../../../src/names.js';
import { rootIsInits } from '../../../src/process/ancestors.js';

/** What apt writes to a version 2 Pre-Install-Pkgs hook: its configuration, an empty line, one line per package. */
const V2 = (lines: string[]) => ['VERSION 2', 'APT::Architecture=amd64', 'Dir=/', 'DPkg::Pre-Install-Pkgs::=/usr/bin/sysprime apt-hook || true', '', ...lines, ''].join('\n');

test('the hook input: versions 1, 2 and 3; an empty list is nothing to do', () => {
  assert.deepEqual(parseHookInput(V2(['hello - < 1.0 /var/cache/apt/archives/hello_1.0_all.deb', 'old 2.0 > - **REMOVE**', 'lib 1 = 1 **CONFIGURE**'])), {
    version: 2,
    actions: [
      { package: 'hello', action: '/var/cache/apt/archives/hello_1.0_all.deb' },
      { package: 'old', action: '**REMOVE**' },
      { package: 'lib', action: '**CONFIGURE**' },
    ],
  });
  assert.deepEqual(parseHookInput(V2([])), { version: 2, actions: [] });
  assert.deepEqual(parseHookInput('VERSION 3\nDir=/\n\nhello - - none < 1.0 all same /x/hello_1.0_all.deb\n').actions, [{ package: 'hello', action: '/x/hello_1.0_all.deb' }]);
  assert.deepEqual(parseHookInput('/var/cache/apt/archives/hello_1.0_all.deb\n').actions, [{ package: 'hello', action: '/var/cache/apt/archives/hello_1.0_all.deb' }]);
  assert.deepEqual(parseHookInput('').actions, []);
  // A configuration with no end (a cut-off write) lists nothing: no line of it is read as a package.
  assert.deepEqual(parseHookInput('VERSION 2\nDir=/\nAPT::X=a b c').actions, []);
});

test('the operation: the package front end above the hook, past the shell apt runs it with', () => {
  const sh = { pid: 10, comm: 'sh', argv: ['sh', '-c', '/usr/bin/sysprime apt-hook || true'] };
  const apt = { pid: 9, comm: 'apt-get', argv: ['apt-get', 'install', '-y', './hello.deb'] };
  const bash = { pid: 8, comm: 'bash', argv: ['-bash'] };
  assert.deepEqual(packageOperation([sh, apt, bash]), ['apt-get', 'install', '-y', './hello.deb']);
  const uu = { pid: 7, comm: 'unattended-upgr', argv: ['/usr/bin/python3', '/usr/bin/unattended-upgrade'] };
  assert.deepEqual(packageOperation([sh, uu]), uu.argv);
  // An unknown front end: the nearest process that is not a shell.
  assert.deepEqual(packageOperation([sh, { pid: 6, comm: 'my-installer', argv: ['my-installer', 'go'] }, bash]), ['my-installer', 'go']);
  assert.equal(packageOperation([sh]), null);
  assert.equal(packageOperation([]), null);
});

test('named after what ran and when, described by the program, its verb and its packages', () => {
  const at = new Date(2026, 11, 5, 15, 10, 2);
  assert.equal(nameFor(['apt-get', 'install', '-y', './hello.deb'], at), 'apt-get-install-20261205-151002');
  assert.equal(nameFor(['apt', '-o', 'Debug::x=1', 'full-upgrade'], at), 'apt-full-upgrade-20261205-151002');
  assert.equal(nameFor(['/usr/bin/python3', '/usr/bin/unattended-upgrade'], at), 'unattended-upgrade-20261205-151002');
  assert.equal(nameFor(null, at), 'apt-20261205-151002');
  for (const argv of [['/weird/prög ram!', 'x'], ['-', 'install'], ['a'.repeat(100)], ['...']]) {
    const name = nameFor(argv, at);
    assert.equal(nameProblem(name), null, `${name}: ${nameProblem(name)}`);
  }
  assert.equal(nameFor(['apt-get', '-t', 'bookworm-backports', 'install', 'x'], at), 'apt-get-install-20261205-151002');
  assert.equal(descriptionFor(['apt-get', 'install', '-y', './hello.deb']), 'apt-get install ./hello.deb');
  assert.equal(descriptionFor(['/usr/bin/python3', '/usr/bin/unattended-upgrade', '-d']), 'unattended-upgrade');
  assert.equal(descriptionFor(['/usr/bin/apt', '--', 'install', '-weird']), 'apt install -weird');
  assert.equal(descriptionFor(null), 'before a package operation');
  // Whatever the command line holds, the description is one printable line sysprime keeps as it is.
  const long = descriptionFor(['apt', 'install', 'a\nb\x1b[31m', ...Array.from({ length: 60 }, (_, i) => `pkg${i}`)]);
  assert.equal(checkDescription(long), long);
  assert.equal([...long].length, MAX_DESCRIPTION);
  assert.match(long, /^apt install a b \[31m pkg0 .*…$/);
});

test('no option value and no password reaches the description, which anyone may read', () => {
  const argv = ['apt-get', '-o', 'Acquire::http::Proxy=http://user:pw@proxy:3128', '-yo', 'Acquire::https::Proxy=http://user:pw@proxy', '--option=Dpkg::Options::=--force-confold',
    '-c', '/root/secret.conf', '--target-release', 'bookworm', 'install', 'x', 'https://alice:s3cret@repo.example/p_1_all.deb'];
  const d = descriptionFor(argv);
  assert.equal(d, 'apt-get install x https://repo.example/p_1_all.deb');
  assert.doesNotMatch(`${d} ${nameFor(argv, new Date())}`, /pw|s3cret|alice|secret|Proxy|bookworm/);
  assert.equal(withoutCredentials('ftp://u@host/x'), 'ftp://host/x');
  assert.equal(withoutCredentials('./local_1.0_all.deb'), './local_1.0_all.deb');
  assert.equal(withoutCredentials('user@host'), 'user@host');
});

test('inside a chroot sysprime entered (staging, shell), the hook stands aside', () => {
  assert.equal(insideSysprimeChroot({ SYSPRIME_CHROOT: '1' }), true);
  assert.equal(insideSysprimeChroot({}), false);
});

test('inside any chroot, its variable gone or never set, the hook stands aside and says so', () => {
  assert.equal(chrootSkip({}, true), null);
  assert.equal(chrootSkip({}, null), null);
  assert.equal(chrootSkip({ SYSPRIME_CHROOT: '1' }, false), '');
  assert.match(chrootSkip({}, false) ?? '', /^inside a chroot .*: no environment before this package operation$/);
  // The tests run outside any chroot: this process's root is init's, or /proc cannot tell.
  assert.notEqual(rootIsInits(), false);
});
