import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nativeArchitecture, packageChanges, packageKey, packageState, parseDeb822, parseDpkgStatus } from '../../../src/updaters/apt/dpkg-status.js';

const STATUS = `Package: dpkg
Essential: yes
Status: install ok installed
Priority: required
Architecture: amd64
Version: 1.21.22
Description: Debian package management system
 This package provides the low-level infrastructure for handling the
 installation and removal of Debian software packages.
 .
 More text.

Package: sysprime-demo
Status: hold ok installed
Architecture: all
Version: 1
Conffiles:
 /etc/sysprime-demo.conf 0123456789abcdef0123456789abcdef

Package: libc6
Status: install ok installed
Architecture: i386
Version: 2.36-9+deb12u10

Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u10

Package: nano
Status: deinstall ok config-files
Architecture: amd64
Version: 7.2-1
Conffiles:
 /etc/nanorc 1234 obsolete

Package: vim-tiny
Status: purge ok not-installed
Architecture: amd64

Package: half
Status: install reinstreq half-installed
Architecture: amd64
Version: 3

Package: unpacked-only
Status: install ok unpacked
Architecture: amd64
Version: 4
`;

test('deb822 paragraphs: continuation lines join the field, blank lines separate', () => {
  const stanzas = parseDeb822(STATUS);
  assert.equal(stanzas.length, 8);
  const dpkg = stanzas[0];
  assert.equal(dpkg?.get('Package'), 'dpkg');
  assert.match(dpkg?.get('Description') ?? '', /^Debian package management system\nThis package provides/);
  assert.equal(stanzas[1]?.get('Conffiles'), '\n/etc/sysprime-demo.conf 0123456789abcdef0123456789abcdef');
  assert.deepEqual(parseDeb822('\n\n'), []);
  assert.equal(parseDeb822('Package: a\r\n\r\nPackage: b\n').length, 2);
});

test('dpkg status: want, flag and state come from the Status field', () => {
  const pkgs = parseDpkgStatus(STATUS);
  const demo = pkgs.find((p) => p.name === 'sysprime-demo');
  assert.deepEqual(demo, { name: 'sysprime-demo', architecture: 'all', version: '1', want: 'hold', flag: 'ok', state: 'installed' });
  assert.equal(pkgs.find((p) => p.name === 'vim-tiny')?.version, '');
  assert.equal(pkgs.find((p) => p.name === 'vim-tiny')?.want, 'purge');
});

test('the native architecture is dpkg\'s own; foreign packages are qualified', () => {
  assert.equal(nativeArchitecture(parseDpkgStatus(STATUS)), 'amd64');
  assert.equal(nativeArchitecture(parseDpkgStatus('Package: a\nStatus: install ok installed\nArchitecture: arm64\nVersion: 1\n')), 'arm64');
  assert.equal(packageKey('libc6', 'i386', 'amd64'), 'libc6:i386');
  assert.equal(packageKey('libc6', 'amd64', 'amd64'), 'libc6');
  assert.equal(packageKey('tzdata', 'all', 'amd64'), 'tzdata');
  assert.equal(packageKey('x', undefined, 'amd64'), 'x');
});

test('package state: only fully installed packages count; holds, leftovers and auto marks', () => {
  const extended = 'Package: libc6\nArchitecture: amd64\nAuto-Installed: 1\n\nPackage: dpkg\nArchitecture: amd64\nAuto-Installed: 0\n\nPackage: libc6\nArchitecture: i386\nAuto-Installed: 1\n';
  const s = packageState(STATUS, extended);
  assert.equal(s.native, 'amd64');
  assert.deepEqual([...s.installed].sort(), [
    ['dpkg', '1.21.22'],
    ['libc6', '2.36-9+deb12u10'],
    ['libc6:i386', '2.36-9+deb12u10'],
    ['sysprime-demo', '1'],
  ]);
  assert.deepEqual([...s.held], ['sysprime-demo']);
  assert.deepEqual([...s.configFiles], ['nano']);
  assert.deepEqual([...s.auto].sort(), ['libc6', 'libc6:i386']);
  assert.equal(packageState('').installed.size, 0);
});

test('changes between two states: upgrades, new and removed packages, sorted', () => {
  const before = new Map([
    ['b', '1'],
    ['a', '1'],
    ['same', '5'],
    ['gone', '2'],
  ]);
  const after = new Map([
    ['a', '2'],
    ['b', '1'],
    ['same', '5'],
    ['new', '1.0'],
  ]);
  assert.deepEqual(packageChanges(before, after), [
    { name: 'a', from: '1', to: '2' },
    { name: 'gone', from: '2', to: null },
    { name: 'new', from: null, to: '1.0' },
  ]);
  assert.deepEqual(packageChanges(before, before), []);
});
