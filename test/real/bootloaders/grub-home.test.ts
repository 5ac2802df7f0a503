/**
 * GRUB's directory moved out of the adopted root onto the ESP (home.ts): the
 * plan, the copy and the stubs, and the fstab line each environment gets.
 * The "ESP" is a scratch directory (vfat cannot be mounted here), given to
 * the plan as a vfat mount in the mount table it is handed, and GRUB's
 * old directory sits on tmpfs, which GRUB cannot write either; the VM suite's
 * GRUB machine does the same on a real ESP and a real Btrfs root.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { espHome, findStubs, homeFstabLine, moveHome, parseStub, planHome, renderStub } from '../../../src/bootloaders/grub/home.js';
import { createGrub } from '../../../src/bootloaders/grub/index.js';
import { ensureFstabLines } from '../../../src/environments/boot-home.js';
import { isSysprimeError } from '../../../src/errors.js';
import { run } from '../../../src/process/run.js';
import { parseMountinfo, type MountinfoEntry } from '../../../src/os/mounts.js';
import type { Runner } from '../../../src/bootloaders/types.js';

const scratch = mkdtempSync(join(tmpdir(), 'sysprime-grub-home-'));
const shm = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/sysprime-grub-home-') : null;
after(() => {
  rmSync(scratch, { recursive: true, force: true });
  if (shm) rmSync(shm, { recursive: true, force: true });
});
let n = 0;

/** What grub-install writes beside the signed GRUB on a Debian install with its root in @rootfs. */
const DEBIAN_STUB = "search.fs_uuid 0c5b6b47-2f37-4a4e-9d4e-2ab1c3d4e5f6 root hd0,gpt2 \nset prefix=($root)'/@rootfs/boot/grub'\nconfigfile $prefix/grub.cfg\n";
const ESP_UUID = 'B0A7-5EC0';
const ROOT_UUID = '0c5b6b47-2f37-4a4e-9d4e-2ab1c3d4e5f6';
/**
 * findmnt answers for the stand-in ESP as it would for a FAT one, and for
 * GRUB's old directory as for the Btrfs root the stub names; everything
 * else runs for real.
 */
const withEspUuid: Runner = (async (cmd: string, args: readonly string[], o?: object) =>
  cmd === 'findmnt' ? { stdout: `${args.some((a) => a.includes('/efi')) ? ESP_UUID : ROOT_UUID}\n`, stderr: '', exitCode: 0 } : run(cmd, args as string[], o as never)) as unknown as Runner;

/** The mount table as the kernel shows the ESP, FAT, mounted at `esp` (here a scratch directory stands in for it). */
const vfatAt = (esp: string): MountinfoEntry[] => parseMountinfo(`40 27 259:1 / ${esp} rw,relatime shared:20 - vfat /dev/nvme0n1p1 rw,fmask=0077,dmask=0077\n`);

function machine() {
  const dir = join(scratch, String(n++));
  const esp = join(dir, 'efi');
  mkdirSync(join(esp, 'EFI', 'debian'), { recursive: true });
  mkdirSync(join(esp, 'EFI', 'BOOT'), { recursive: true });
  writeFileSync(join(esp, 'EFI', 'debian', 'grub.cfg'), DEBIAN_STUB);
  writeFileSync(join(esp, 'EFI', 'BOOT', 'grub.cfg'), DEBIAN_STUB);
  writeFileSync(join(esp, 'EFI', 'debian', 'grubx64.efi'), 'signed GRUB');
  const grubDir = join(shm!, String(n), 'boot', 'grub');
  mkdirSync(join(grubDir, 'x86_64-efi'), { recursive: true });
  writeFileSync(join(grubDir, 'grub.cfg'), '### BEGIN /etc/grub.d/00_header ###\nload_env\n');
  writeFileSync(join(grubDir, 'grubenv'), '# GRUB Environment Block\n'.padEnd(1024, '#'));
  writeFileSync(join(grubDir, 'x86_64-efi', 'btrfs.mod'), 'module');
  return { dir, esp, grubDir };
}

test('a stub is read as grub-install writes it, and the ESP stub is its own kind', () => {
  assert.deepEqual(parseStub(DEBIAN_STUB), { uuid: '0c5b6b47-2f37-4a4e-9d4e-2ab1c3d4e5f6', prefix: '/@rootfs/boot/grub' });
  assert.deepEqual(parseStub(renderStub(ESP_UUID)), { uuid: ESP_UUID.toLowerCase(), prefix: '/grub' }, 'a FAT serial as GRUB spells it');
  assert.deepEqual(parseStub("search --no-floppy --fs-uuid --set=root 1234\nset prefix=($root)/boot/grub\nconfigfile ${prefix}/grub.cfg\n"), { uuid: '1234', prefix: '/boot/grub' });
  assert.equal(parseStub('menuentry x {\n}\n'), null, 'a full grub.cfg is not a stub');
});

test('adoption moves GRUB\'s directory from the root onto the ESP and points every stub there', async (t) => {
  if (shm === null) return t.skip('no /dev/shm');
  const m = machine();
  const plan = await planHome({ grubDir: m.grubDir, esp: m.esp, run: withEspUuid, mounts: vfatAt(m.esp) });
  assert.equal(plan.kind, 'move');
  if (plan.kind !== 'move') return;
  assert.equal(plan.to, join(m.esp, 'grub'));
  assert.equal(plan.fstabLine, `${m.esp}/grub /boot/grub none bind,nofail,x-systemd.requires-mounts-for=${m.esp} 0 0`);
  assert.equal(plan.stubs.length, 2);
  assert.equal(espHome(m.esp), null, 'nothing is written by the plan');

  const done = moveHome(plan);
  assert.equal(done.length, 3, done.join('\n'));
  assert.equal(readFileSync(join(m.esp, 'grub', 'x86_64-efi', 'btrfs.mod'), 'utf8'), 'module');
  assert.equal(readFileSync(join(m.esp, 'grub', 'grub.cfg'), 'utf8'), readFileSync(join(m.grubDir, 'grub.cfg'), 'utf8'));
  for (const s of findStubs(m.esp)) {
    assert.equal(s.text, renderStub(ESP_UUID));
    assert.equal(readFileSync(`${s.path}.before-sysprime`, 'utf8'), DEBIAN_STUB, 'the installer\'s stub is kept beside it');
  }
  assert.equal(readFileSync(join(m.grubDir, 'grub.cfg'), 'utf8').length > 0, true, 'the old directory is left as it was');
  assert.equal(espHome(m.esp), join(m.esp, 'grub'));
  assert.deepEqual(moveHome(plan), [], 'a second run finds it done');

  // From now on sysprime writes where GRUB reads, whatever [grub] dir says.
  const grub = await createGrub({ grubDir: m.grubDir, esp: m.esp, run: withEspUuid });
  assert.equal(grub.describe(), `GRUB menu ${join(m.esp, 'grub', 'sysprime.cfg')}`);
  const again = await planHome({ grubDir: m.grubDir, esp: m.esp, run: withEspUuid, mounts: vfatAt(m.esp) });
  assert.equal(again.kind, 'fine');
  assert.equal(again.kind === 'fine' ? again.fstabLine : null, homeFstabLine(m.esp), 'environments still need the line (a run after a crash adds it)');
});

test('each stub is overwritten in place, as grub-install writes it, after its old text is kept durably beside it', async (t) => {
  if (shm === null) return t.skip('no /dev/shm');
  const m = machine();
  const plan = await planHome({ grubDir: m.grubDir, esp: m.esp, run: withEspUuid, mounts: vfatAt(m.esp) });
  if (plan.kind !== 'move') return assert.fail('expected a move');
  const stub = join(m.esp, 'EFI', 'debian', 'grub.cfg');
  const inode = statSync(stub).ino;
  // Killed between the backup and the overwrite (SIGKILL, as a power cut): the backup is whole, the stub untouched.
  const home = new URL('../../../src/bootloaders/grub/home.js', import.meta.url).href;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', `import { moveHome } from '${home}'; moveHome(JSON.parse(process.argv[1]));`, JSON.stringify(plan)], {
    env: { ...process.env, SYSPRIME_FAULT_INJECT: 'kill:boot:grub:stub' },
    encoding: 'utf8',
  });
  assert.equal(child.signal, 'SIGKILL', child.stderr);
  for (const s of plan.stubs) {
    assert.equal(readFileSync(`${s.path}.before-sysprime`, 'utf8'), DEBIAN_STUB, 'every old text is kept before any stub is touched');
    assert.equal(readFileSync(s.path, 'utf8'), DEBIAN_STUB);
  }
  // The run after the crash finishes: the same file (inode) holds the new text, nothing else is left beside it.
  moveHome(plan);
  assert.equal(readFileSync(stub, 'utf8'), renderStub(ESP_UUID));
  assert.equal(statSync(stub).ino, inode, 'overwritten in place, not replaced by a renamed file');
  assert.equal(readFileSync(`${stub}.before-sysprime`, 'utf8'), DEBIAN_STUB);
  assert.deepEqual(readdirSync(join(m.esp, 'EFI', 'debian')).sort(), ['grub.cfg', 'grub.cfg.before-sysprime', 'grubx64.efi']);
  const removable = join(m.esp, 'EFI', 'BOOT', 'grub.cfg');
  assert.equal(readFileSync(removable, 'utf8'), renderStub(ESP_UUID));

  // A crash between two stubs (one rewritten, GRUB may read the ESP's directory already): init run again finishes the other.
  writeFileSync(stub, DEBIAN_STUB);
  const rest = await planHome({ grubDir: m.grubDir, esp: m.esp, run: withEspUuid, mounts: vfatAt(m.esp) });
  if (rest.kind !== 'move') return assert.fail(`expected the move to be finished, not ${rest.kind}`);
  assert.deepEqual(rest.stubs.map((s) => s.path), [stub]);
  assert.equal(rest.from, m.grubDir);
  assert.equal(moveHome(rest).length, 1);
  assert.equal(readFileSync(stub, 'utf8'), renderStub(ESP_UUID));
  assert.equal((await planHome({ grubDir: m.grubDir, esp: m.esp, run: withEspUuid, mounts: vfatAt(m.esp) })).kind, 'fine');
});

test('another system\'s GRUB on the same ESP is left alone: its stub, and a GRUB directory already at <esp>/grub', async (t) => {
  if (shm === null) return t.skip('no /dev/shm');
  const m = machine();
  mkdirSync(join(m.esp, 'EFI', 'ubuntu'));
  const ubuntu = "search.fs_uuid 11111111-2222-3333-4444-555555555555 root \nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n";
  writeFileSync(join(m.esp, 'EFI', 'ubuntu', 'grub.cfg'), ubuntu);
  const plan = await planHome({ grubDir: m.grubDir, esp: m.esp, run: withEspUuid, mounts: vfatAt(m.esp) });
  if (plan.kind !== 'move') return assert.fail('expected a move');
  assert.deepEqual(plan.stubs.map((s) => s.path).sort(), [join(m.esp, 'EFI', 'BOOT', 'grub.cfg'), join(m.esp, 'EFI', 'debian', 'grub.cfg')]);
  moveHome(plan);
  assert.equal(readFileSync(join(m.esp, 'EFI', 'ubuntu', 'grub.cfg'), 'utf8'), ubuntu, 'another system\'s stub is not rewritten');

  const n2 = machine();
  mkdirSync(join(n2.esp, 'grub'));
  writeFileSync(join(n2.esp, 'grub', 'grub.cfg'), 'an earlier install\'s menu\n');
  const stay = await planHome({ grubDir: n2.grubDir, esp: n2.esp, run: withEspUuid, mounts: vfatAt(n2.esp) });
  assert.equal(stay.kind, 'stay');
  assert.match(stay.kind === 'stay' ? stay.warning : '', /already holds a GRUB directory sysprime did not put there/);
  assert.equal(readFileSync(join(n2.esp, 'grub', 'grub.cfg'), 'utf8'), 'an earlier install\'s menu\n');
  assert.equal(readFileSync(join(n2.esp, 'EFI', 'debian', 'grub.cfg'), 'utf8'), DEBIAN_STUB);
});

test('an ESP reused by a new install: the GRUB directory moved there for the earlier one is never used, and its stale backups never replace the new stubs', async (t) => {
  if (shm === null) return t.skip('no /dev/shm');
  const m = machine();
  const first = await planHome({ grubDir: m.grubDir, esp: m.esp, run: withEspUuid, mounts: vfatAt(m.esp) });
  if (first.kind !== 'move') return assert.fail('expected a move');
  moveHome(first);
  assert.match(readFileSync(join(m.esp, 'grub', '.sysprime-moved-from'), 'utf8'), new RegExp(`^root-uuid ${ROOT_UUID}$`, 'm'), 'the mark names the root it was moved from');

  // Reinstalled on the same ESP: a new root filesystem, grub-install points both stubs into it again.
  const NEW_UUID = '9e9e9e9e-1111-4222-8333-444455556666';
  const newStub = DEBIAN_STUB.replace(ROOT_UUID, NEW_UUID);
  for (const s of findStubs(m.esp)) writeFileSync(s.path, newStub);
  const reinstalled: Runner = (async (cmd: string, args: readonly string[], o?: object) =>
    cmd === 'findmnt' ? { stdout: `${args.some((a) => a.includes('/efi')) ? ESP_UUID : NEW_UUID}\n`, stderr: '', exitCode: 0 } : run(cmd, args as string[], o as never)) as unknown as Runner;
  const oldMenu = readFileSync(join(m.esp, 'grub', 'grub.cfg'), 'utf8');
  const plan = await planHome({ grubDir: m.grubDir, esp: m.esp, run: reinstalled, mounts: vfatAt(m.esp) });
  assert.equal(plan.kind, 'stay', 'the earlier install\'s directory is not taken for this one\'s');
  assert.match(plan.kind === 'stay' ? plan.warning : '', new RegExp(`holds the GRUB directory sysprime moved there for another installation \\(from the root filesystem ${ROOT_UUID}; this root is ${NEW_UUID}\\).*move it aside`));
  for (const s of findStubs(m.esp)) assert.equal(s.text, newStub, 'the new install\'s stubs are left pointing into its root');
  assert.equal(readFileSync(join(m.esp, 'grub', 'grub.cfg'), 'utf8'), oldMenu);

  // A mark from a sysprime that did not record the root: it cannot be told apart from another install's, so it is not used.
  writeFileSync(join(m.esp, 'grub', '.sysprime-moved-from'), '/boot/grub\n');
  const unnamed = await planHome({ grubDir: m.grubDir, esp: m.esp, run: reinstalled, mounts: vfatAt(m.esp) });
  assert.equal(unnamed.kind, 'stay');
  assert.match(unnamed.kind === 'stay' ? unnamed.warning : '', /from a root filesystem it does not name/);

  // Once the admin moves it aside, init moves this install's directory, keeping the new stubs' text (not the stale backups).
  rmSync(join(m.esp, 'grub'), { recursive: true });
  const fresh = await planHome({ grubDir: m.grubDir, esp: m.esp, run: reinstalled, mounts: vfatAt(m.esp) });
  if (fresh.kind !== 'move') return assert.fail(`expected a move, not ${fresh.kind}`);
  moveHome(fresh);
  for (const s of findStubs(m.esp)) {
    assert.equal(s.text, renderStub(ESP_UUID));
    assert.equal(readFileSync(`${s.path}.before-sysprime`, 'utf8'), newStub, 'the backup is the text the stub had, not an earlier install\'s');
  }
});

test('a reinstall that rewrote one stub and left another pointing at <esp>/grub: the earlier install\'s directory is judged by its mark before it is taken for GRUB\'s, on Btrfs and ZFS roots', async (t) => {
  if (shm === null) return t.skip('no /dev/shm');
  const NEW_UUID = '9e9e9e9e-1111-4222-8333-444455556666';
  /** A runner for the reinstalled machine: `/`'s UUID from findmnt (Btrfs), from grub-probe (ZFS: findmnt has none), or from neither. */
  const rootAnswering = (how: 'findmnt' | 'grub-probe' | 'neither', uuid: string): Runner =>
    (async (cmd: string, args: readonly string[], o?: object) => {
      if (cmd === 'findmnt') return { stdout: args.some((a) => a.includes('/efi')) ? `${ESP_UUID}\n` : how === 'findmnt' ? `${uuid}\n` : '\n', stderr: '', exitCode: 0 };
      if (cmd === 'grub-probe' && args[0] === '--target=fs_uuid') return how === 'grub-probe' ? { stdout: `${uuid}\n`, stderr: '', exitCode: 0 } : { stdout: '', stderr: 'grub-probe: error: unknown filesystem.\n', exitCode: 1 };
      return run(cmd, args as string[], o as never);
    }) as unknown as Runner;
  for (const [how, uuid] of [['findmnt', NEW_UUID], ['grub-probe', '5a6f2b3c4d5e6f70'], ['neither', '']] as const) {
    const m = machine();
    const first = await planHome({ grubDir: m.grubDir, esp: m.esp, run: withEspUuid, mounts: vfatAt(m.esp) });
    if (first.kind !== 'move') return assert.fail('expected a move');
    moveHome(first);
    // grub-install of the new install rewrote its vendor stub only; the removable path's still points at <esp>/grub.
    writeFileSync(join(m.esp, 'EFI', 'debian', 'grub.cfg'), DEBIAN_STUB.replace(ROOT_UUID, uuid || NEW_UUID));
    assert.equal(espHome(m.esp), join(m.esp, 'grub'), 'a stub still points GRUB at the ESP');
    const oldMenu = readFileSync(join(m.esp, 'grub', 'grub.cfg'), 'utf8');
    const runner = rootAnswering(how, uuid);
    const grub = await createGrub({ grubDir: m.grubDir, esp: m.esp, run: runner });
    assert.equal(grub.describe(), `GRUB menu ${join(m.grubDir, 'sysprime.cfg')}`, `${how}: the earlier install's directory is not taken for this one's`);
    const home = await grub.planHome!();
    assert.match(home?.warnings.join('\n') ?? '', /holds the GRUB directory sysprime moved there for another installation \(from the root filesystem 0c5b6b47.*move it aside/, how);
    assert.deepEqual(home?.fstabLines, [], `${how}: environments are not pointed at the earlier install's directory`);
    await grub.sync([], { defaultName: 'x' });
    assert.ok(!existsSync(join(m.esp, 'grub', 'sysprime.cfg')), `${how}: no menu is written into the earlier install's directory`);
    assert.ok(existsSync(join(m.grubDir, 'sysprime.cfg')));
    assert.equal(readFileSync(join(m.esp, 'grub', 'grub.cfg'), 'utf8'), oldMenu);
    // A mark that names no root is this root's when neither tool knows `/`'s UUID (it was written so), another's otherwise.
    writeFileSync(join(m.esp, 'grub', '.sysprime-moved-from'), '/boot/grub\n');
    const unnamed = await createGrub({ grubDir: m.grubDir, esp: m.esp, run: runner });
    assert.equal(unnamed.describe(), `GRUB menu ${join(how === 'neither' ? join(m.esp, 'grub') : m.grubDir, 'sysprime.cfg')}`, how);
  }
});

test('a stub pointed back into the root by a grub-install since the move is pointed at the ESP again, its backup refreshed', async (t) => {
  if (shm === null) return t.skip('no /dev/shm');
  const m = machine();
  const plan = await planHome({ grubDir: m.grubDir, esp: m.esp, run: withEspUuid, mounts: vfatAt(m.esp) });
  if (plan.kind !== 'move') return assert.fail('expected a move');
  moveHome(plan);
  // grub-install run while the ESP's directory was not mounted at /boot/grub: the stub points into the root again,
  // with another text than the one kept at the move.
  const stub = join(m.esp, 'EFI', 'debian', 'grub.cfg');
  const again = DEBIAN_STUB.replace('root hd0,gpt2 ', 'root hd1,gpt2 ');
  writeFileSync(stub, again);
  const rest = await planHome({ grubDir: m.grubDir, esp: m.esp, run: withEspUuid, mounts: vfatAt(m.esp) });
  if (rest.kind !== 'move') return assert.fail(`expected the stub to be pointed at the ESP again, not ${rest.kind}`);
  assert.deepEqual(rest.stubs.map((s) => s.path), [stub]);
  moveHome(rest);
  assert.equal(readFileSync(stub, 'utf8'), renderStub(ESP_UUID));
  assert.equal(readFileSync(`${stub}.before-sysprime`, 'utf8'), again, 'the backup holds the text the stub had just before');
});

test('without a stub or an ESP, GRUB\'s directory stays and the admin is told why that is a risk', async (t) => {
  if (shm === null) return t.skip('no /dev/shm');
  const m = machine();
  rmSync(join(m.esp, 'EFI', 'debian', 'grub.cfg'));
  rmSync(join(m.esp, 'EFI', 'BOOT', 'grub.cfg'));
  const plan = await planHome({ grubDir: m.grubDir, esp: m.esp, run: withEspUuid, mounts: vfatAt(m.esp) });
  assert.equal(plan.kind, 'stay');
  assert.match(plan.kind === 'stay' ? plan.warning : '', /cannot write there .* directory built in .*grub-install/);
  const none = await planHome({ grubDir: m.grubDir, esp: null, run: withEspUuid });
  assert.match(none.kind === 'stay' ? none.warning : '', /no EFI system partition/);
  // A directory GRUB writes (ext4 /tmp here; a separate /boot on a machine) needs nothing.
  const ext = join(m.dir, 'boot-grub');
  mkdirSync(ext);
  if ((await run('stat', ['-f', '-c', '%T', ext])).stdout.trim() === 'ext2/ext3') assert.equal((await planHome({ grubDir: ext, esp: m.esp, run: withEspUuid, mounts: vfatAt(m.esp) })).kind, 'fine');
});

test('a plain directory with EFI/ inside the root, or a mount of another filesystem, does not take GRUB\'s directory: it stays, and one line says why', async (t) => {
  if (shm === null) return t.skip('no /dev/shm');
  const m = machine();
  // The installer's root (here GRUB's old directory's parent tree) holding an EFI/ of its own, not the ESP's mount.
  const inRoot = join(m.grubDir, '..', 'efi');
  mkdirSync(join(inRoot, 'EFI', 'debian'), { recursive: true });
  writeFileSync(join(inRoot, 'EFI', 'debian', 'grub.cfg'), DEBIAN_STUB);
  // The running system's own mount table: nothing is mounted there.
  const plain = await planHome({ grubDir: m.grubDir, esp: inRoot, run: withEspUuid });
  assert.equal(plain.kind, 'stay');
  const warning = plain.kind === 'stay' ? plain.warning : '';
  assert.match(warning, /^GRUB's directory .* cannot write there .*; .*\/boot\/efi is not a mount point \(a directory of the filesystem below it, not the EFI system partition\), so GRUB's directory is not moved there: mount the ESP there, or set \[boot\] esp/);
  assert.equal(warning.split('\n').length, 1, 'one line');
  const ext4 = parseMountinfo(`41 27 254:3 / ${m.esp} rw,relatime - ext4 /dev/vda3 rw\n`);
  const other = await planHome({ grubDir: m.grubDir, esp: m.esp, run: withEspUuid, mounts: ext4 });
  assert.match(other.kind === 'stay' ? other.warning : '', /is a mount of ext4 \(\/dev\/vda3\), not of the FAT \(vfat\) EFI system partition/);
  // Through the bootloader, as init asks it: a warning, no fstab line, nothing to apply.
  const home = await (await createGrub({ grubDir: m.grubDir, esp: inRoot, run: withEspUuid })).planHome!();
  assert.deepEqual(home?.fstabLines, []);
  assert.match(home?.warnings.join('\n') ?? '', /not a mount point/);
  assert.deepEqual(await home!.apply(), []);
  assert.ok(!existsSync(join(inRoot, 'grub')) && !existsSync(join(m.esp, 'grub')), 'nothing is copied');
  assert.equal(readFileSync(join(inRoot, 'EFI', 'debian', 'grub.cfg'), 'utf8'), DEBIAN_STUB, 'no stub is rewritten');
});

test('a copy that fails (a full ESP, a name that cannot be made) fails loudly and leaves every stub as it was', async (t) => {
  if (shm === null) return t.skip('no /dev/shm');
  const m = machine();
  const plan = await planHome({ grubDir: m.grubDir, esp: m.esp, run: withEspUuid, mounts: vfatAt(m.esp) });
  if (plan.kind !== 'move') return assert.fail('expected a move');
  const bad = { ...plan, to: join(m.esp, 'EFI', 'debian', 'grubx64.efi', 'grub') };
  assert.throws(() => moveHome(bad), (e: unknown) => isSysprimeError(e, 'IO') && /cannot copy GRUB's directory/.test((e as Error).message));
  assert.equal(readFileSync(join(m.esp, 'EFI', 'debian', 'grub.cfg'), 'utf8'), DEBIAN_STUB, 'no stub points at a copy that failed');
  assert.equal(espHome(m.esp), null);
  // A link in GRUB's directory: FAT cannot hold it, and it is not silently left out.
  symlinkSync('/etc/passwd', join(m.grubDir, 'link'));
  assert.throws(() => moveHome(plan), (e: unknown) => isSysprimeError(e, 'IO') && /link.*not a regular file/.test((e as Error).message));
  assert.ok(!existsSync(plan.to) && !existsSync(`${plan.to}.sysprime-new`), 'nothing is left on the ESP');
  assert.equal(readFileSync(join(m.esp, 'EFI', 'debian', 'grub.cfg'), 'utf8'), DEBIAN_STUB);
});

test('GRUB\'s old directory is read through handles, never by a path below it, so a link put in place of a name is never followed', async (t) => {
  if (shm === null) return t.skip('no /dev/shm');
  const m = machine();
  mkdirSync(join(m.grubDir, 'fonts'));
  writeFileSync(join(m.grubDir, 'fonts', 'unicode.pf2'), 'font');
  const plan = await planHome({ grubDir: m.grubDir, esp: m.esp, run: withEspUuid, mounts: vfatAt(m.esp) });
  if (plan.kind !== 'move') return assert.fail('expected a move');
  // Every path node:fs opens or reads by name while the directory is copied (the live bindings home.ts imported follow the spy).
  const fs = createRequire(import.meta.url)('node:fs') as { openSync: (...a: unknown[]) => number; readFileSync: (...a: unknown[]) => unknown };
  const { openSync: open, readFileSync: read } = fs;
  const named: string[] = [];
  fs.openSync = (p: unknown, ...rest: unknown[]) => (named.push(String(p)), open(p, ...rest));
  fs.readFileSync = (p: unknown, ...rest: unknown[]) => (typeof p === 'number' ? undefined : named.push(String(p)), read(p, ...rest));
  syncBuiltinESMExports();
  try {
    moveHome(plan);
  } finally {
    fs.openSync = open;
    fs.readFileSync = read;
    syncBuiltinESMExports();
  }
  assert.deepEqual(named.filter((p) => p.startsWith(`${m.grubDir}/`)), [], 'nothing below the old directory is opened by its path');
  assert.ok(named.some((p) => /^\/proc\/self\/fd\/\d+\/unicode\.pf2$/.test(p)), 'each file is opened below its directory\'s handle');
  assert.equal(readFileSync(join(m.esp, 'grub', 'fonts', 'unicode.pf2'), 'utf8'), 'font');

  // A directory of it that is a link (to anything outside) is refused like a linked file, and nothing is left on the ESP.
  const n2 = machine();
  mkdirSync(join(n2.dir, 'outside'), { recursive: true });
  writeFileSync(join(n2.dir, 'outside', 'secret'), 'not GRUB\'s\n');
  symlinkSync(join(n2.dir, 'outside'), join(n2.grubDir, 'themes'));
  const plan2 = await planHome({ grubDir: n2.grubDir, esp: n2.esp, run: withEspUuid, mounts: vfatAt(n2.esp) });
  if (plan2.kind !== 'move') return assert.fail('expected a move');
  assert.throws(() => moveHome(plan2), (e: unknown) => isSysprimeError(e, 'IO') && /themes is not a regular file or directory \(a link is not followed\)/.test((e as Error).message));
  assert.ok(!existsSync(plan2.to) && !existsSync(`${plan2.to}.sysprime-new`));
  assert.equal(readFileSync(join(n2.esp, 'EFI', 'debian', 'grub.cfg'), 'utf8'), DEBIAN_STUB);
});

test('the fstab line is added to an environment once, an admin\'s own line for /boot/grub is kept, and a linked fstab is refused', () => {
  const tree = join(scratch, `tree-${n++}`);
  mkdirSync(join(tree, 'etc'), { recursive: true });
  const line = '/boot/efi/grub /boot/grub none bind,x-systemd.requires-mounts-for=/boot/efi 0 0';
  writeFileSync(join(tree, 'etc', 'fstab'), 'UUID=abc / btrfs defaults 0 0\nUUID=1234-ABCD /boot/efi vfat umask=0077 0 1');
  assert.deepEqual(ensureFstabLines(tree, 'test', [line]), [line]);
  const text = readFileSync(join(tree, 'etc', 'fstab'), 'utf8');
  assert.match(text, /^UUID=1234-ABCD \/boot\/efi vfat umask=0077 0 1\n# Mounted in every boot environment \(added by sysprime init\)\n\/boot\/efi\/grub \/boot\/grub none bind/m);
  assert.deepEqual(ensureFstabLines(tree, 'test', [line]), [], 'added once');
  writeFileSync(join(tree, 'etc', 'fstab'), 'UUID=abc / btrfs defaults 0 0\nUUID=def /boot/grub ext4 defaults 0 2\n');
  assert.deepEqual(ensureFstabLines(tree, 'test', [line]), []);
  assert.doesNotMatch(readFileSync(join(tree, 'etc', 'fstab'), 'utf8'), /bind/);
  rmSync(join(tree, 'etc', 'fstab'));
  symlinkSync('/etc/fstab', join(tree, 'etc', 'fstab'));
  assert.throws(() => ensureFstabLines(tree, 'test', [line]), (e: unknown) => isSysprimeError(e, 'REFUSED'));
});
