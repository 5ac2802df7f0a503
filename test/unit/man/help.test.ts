/**
 * What a person at the terminal gets: `--help` of every verb ends with
 * examples, and a mistyped verb or option is a usage error (exit 2) that
 * names the closest real one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Command } from 'commander';
import { buildProgram } from '../../../src/cli/main.js';
import { sysprime } from '../../fixtures/cli.js';

/** Hidden verbs (boot-hook) are run by units, not typed: no help for people. */
const hidden = (c: Command) => (c as unknown as { _hidden: boolean })._hidden;

function verbs(cmd: Command, prefix: string[] = []): string[][] {
  return cmd.commands.filter((c) => !hidden(c)).flatMap((c) => {
    const path = [...prefix, c.name()];
    return c.commands.length > 0 ? [path, ...verbs(c, path)] : [path];
  });
}

const all = verbs(await buildProgram());

test('sysprime --help lists every verb and exits 0', async () => {
  const r = await sysprime(['--help']);
  assert.equal(r.code, 0, r.stderr);
  for (const [verb] of all) assert.match(r.stdout, new RegExp(`^  ${verb!}\\b`, 'm'), `${verb!} is not in sysprime --help`);
});

for (const path of all) {
  test(`sysprime ${path.join(' ')} --help shows examples`, async () => {
    const r = await sysprime([...path, '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Usage: sysprime /m);
    assert.match(r.stdout, /^Examples?:\n {2}sysprime /m, `sysprime ${path.join(' ')} --help has no examples`);
  });
}

test('sysprime shell --help gives examples that work in the chroot, and says a bootloader install does not', async () => {
  const r = await sysprime(['shell', '--help']);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /^ {2}sysprime .*(grub-install|bootctl install|grub-efi|shim)/m, 'no example installs a bootloader: the ESP and the EFI variables are not inside');
  assert.match(r.stdout, /Installing a bootloader does not work inside/);
  assert.match(r.stdout, /^ {2}sysprime shell --network gen-4 -- apt-get install --reinstall openssh-server/m);
});

test('a mistyped verb suggests the right one, exit 2', async () => {
  const r = await sysprime(['stgae']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command 'stgae'/);
  assert.match(r.stderr, /Did you mean stage\?/);
});

test('a mistyped bart subcommand suggests the right one, exit 2', async () => {
  const r = await sysprime(['bart', 'compre', 'a', 'b']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Did you mean compare\?/);
});

test('a mistyped option suggests the right one, exit 2', async () => {
  const r = await sysprime(['drift', '--fromat', 'html']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown option '--fromat'/);
  assert.match(r.stderr, /Did you mean --format\?/);
});

test('sysprime drift --help says what --verify cannot see: runs deleted from the end of the history', async () => {
  const r = await sysprime(['drift', '--help']);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /prove the baseline/);
  assert.match(r.stdout.replace(/\s+/g, ' '), /runs deleted from the end are not/);
});
