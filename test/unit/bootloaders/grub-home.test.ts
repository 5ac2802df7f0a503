import { test } from 'node:test';
import assert from 'node:assert/strict';
// Whether GRUB can write grubenv: the filesystem's type, then the device below it (grub-probe), decided without a machine.
import { judgeGrubenv, withAbstraction, type GrubenvJudgement } from '../../../src/bootloaders/grub/home.js';
import type { Runner } from '../../../src/bootloaders/types.js';
import { SysprimeError } from '../../../src/errors.js';

const EXT4: GrubenvJudgement = { writable: true, fs: 'ext2/3/4' };
const FAT: GrubenvJudgement = { writable: true, fs: 'vfat' };

/** A runner that answers grub-probe as given, and records what it was asked. */
function probing(answer: { stdout?: string; stderr?: string; exitCode?: number } | Error) {
  const asked: string[][] = [];
  const run = (async (cmd: string, args: readonly string[]) => {
    asked.push([cmd, ...args]);
    if (answer instanceof Error) throw answer;
    return { command: cmd, stdout: answer.stdout ?? '', stderr: answer.stderr ?? '', exitCode: answer.exitCode ?? 0 };
  }) as unknown as Runner;
  return { run, asked };
}

/** What the call wrote on stderr (log.warn). */
async function said<T>(fn: () => Promise<T>): Promise<{ value: T; stderr: string }> {
  const write = process.stderr.write;
  let text = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    text += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { value: await fn(), stderr: text };
  } finally {
    process.stderr.write = write;
  }
}

test('a plain partition (grub-probe prints nothing, or none) leaves the judgement by type as it is', () => {
  assert.deepEqual(withAbstraction(EXT4, ''), EXT4);
  assert.deepEqual(withAbstraction(EXT4, '\n'), EXT4);
  assert.deepEqual(withAbstraction(FAT, 'none\n'), FAT);
});

test('LVM, mdraid and LUKS below a filesystem GRUB writes: GRUB cannot write through them', () => {
  const lvm = withAbstraction(EXT4, 'lvm\n');
  assert.equal(lvm.writable, false);
  assert.equal(lvm.fs, 'ext2/3/4 on LVM (lvm)');
  assert.deepEqual(lvm.through, ['lvm']);
  const md = withAbstraction(FAT, 'diskfilter mdraid1x\n');
  assert.equal(md.writable, false);
  assert.match(md.fs, /^vfat on .*mdraid \(diskfilter mdraid1x\)$/);
  const luks = withAbstraction(EXT4, 'cryptodisk luks2 gcry_rijndael gcry_sha256\n');
  assert.equal(luks.writable, false);
  assert.match(luks.fs, /LUKS2/);
  assert.equal(withAbstraction(EXT4, 'something_new\n').writable, false, 'an abstraction sysprime does not know is not taken for a plain partition');
});

test('a filesystem GRUB cannot write stays so, whatever is below it', () => {
  const btrfs: GrubenvJudgement = { writable: false, fs: 'Btrfs' };
  assert.deepEqual(withAbstraction(btrfs, 'lvm\n'), btrfs);
});

test('grub-probe is asked about the directory only when the type alone would allow writing', async () => {
  const lvm = probing({ stdout: 'lvm\n' });
  const j = await judgeGrubenv('/boot/grub', lvm.run, EXT4);
  assert.equal(j.writable, false);
  assert.deepEqual(lvm.asked, [['grub-probe', '--target=abstraction', '/boot/grub']]);
  const plain = probing({ stdout: '' });
  assert.deepEqual(await judgeGrubenv('/boot/efi/grub', plain.run, FAT), FAT);
  const never = probing({ stdout: 'lvm\n' });
  await judgeGrubenv('/boot/grub', never.run, { writable: false, fs: 'ZFS' });
  await judgeGrubenv('/scratch/esp/grub', never.run, { writable: true, fs: 'a directory standing in for one GRUB writes', standIn: true });
  assert.deepEqual(never.asked, [], 'not for ZFS, not for a test\'s stand-in');
});

test('without an answer from grub-probe the type decides, and a warning says so; nothing throws', async () => {
  const missing = probing(new SysprimeError('COMMAND_MISSING', 'grub-probe is not installed or not on PATH'));
  const a = await said(() => judgeGrubenv('/boot/grub', missing.run, EXT4));
  assert.deepEqual(a.value, EXT4);
  assert.match(a.stderr, /^warning: cannot tell whether GRUB can write grubenv through the device below \/boot\/grub: grub-probe is not installed .*judged by its filesystem \(ext2\/3\/4\) alone/m);
  const failing = probing({ exitCode: 1, stderr: "grub-probe: error: failed to get canonical path of `/dev/root'.\n" });
  const b = await said(() => judgeGrubenv('/boot/grub', failing.run, EXT4));
  assert.deepEqual(b.value, EXT4);
  assert.match(b.stderr, /grub-probe --target=abstraction failed: grub-probe: error: failed to get canonical path/);
  assert.equal(b.stderr.trim().split('\n').length, 1, 'one line');
  const timeout = probing(new SysprimeError('TIMEOUT', 'grub-probe did not finish within 60 s and was stopped'));
  assert.deepEqual((await said(() => judgeGrubenv('/boot/grub', timeout.run, EXT4))).value, EXT4);
});
