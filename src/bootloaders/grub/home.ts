/**
 * Where GRUB's own directory (grub.cfg, grubenv, sysprime.cfg, its modules)
 * lives, and moving it where every environment can share it.
 *
 * On a Debian or Ubuntu install with its root on Btrfs or ZFS and no separate
 * /boot, GRUB's directory is `/boot/grub` inside the root the installer made
 * (`@rootfs`, `@`, `rpool/ROOT/debian`), and the small `grub.cfg` that
 * grub-install writes beside the signed GRUB on the ESP (the "stub") points
 * GRUB there: `set prefix=($root)'/@rootfs/boot/grub'`. Two things then break
 * boot environments:
 *
 * - every environment has its own copy of /boot/grub, and GRUB reads only
 *   the adopted root's: a menu written from another environment is never
 *   seen, and deleting the adopted root (as an admin does once sysprime's
 *   environments boot) leaves GRUB with no configuration at all;
 * - GRUB cannot write Btrfs or ZFS (its drivers are read-only), so
 *   `save_env` fails there: a one-shot (`next_entry`) is never cleared and
 *   boot counting cannot count.
 *
 * So, as Fedora kept it for years on UEFI, GRUB's directory moves to the
 * ESP (`<esp>/grub`): FAT, which GRUB writes, outside every environment, and
 * mounted at /boot/grub in each environment (a bind line in its fstab) so
 * update-grub and grub-install keep working from any of them and agree with
 * what GRUB reads. The stub is rewritten to find the ESP by its filesystem
 * UUID, exactly as grub-install writes it when /boot/grub is on the ESP, so
 * a later grub-install from an environment writes the same thing again.
 *
 * A separate /boot on ext2/3/4 needs no move: GRUB writes it and every
 * environment mounts the same one. Without a stub (a GRUB image with its
 * directory built in) nothing moves: the admin is told to run grub-install
 * once /boot/grub is on the ESP.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { SysprimeError, errnoOf, messageOf } from '../../errors.js';
import { log } from '../../log.js';
import { ConfinedRoot, isHandle, lstatIn, readFileIn } from '../../os/confined.js';
import { fsyncPath, overwriteInPlace, replaceFile } from '../../os/durable.js';
import { mountAt, parseMountinfo, type MountinfoEntry } from '../../os/mounts.js';
import { run as defaultRun } from '../../process/run.js';
import type { Runner } from '../types.js';
import { faultPoint } from '../../process/fault.js';

/** statfs magic numbers of the filesystems GRUB's save_env can write (it writes the file's blocks in place). */
const GRUB_WRITABLE: ReadonlyMap<number, string> = new Map([
  [0xef53, 'ext2/3/4'],
  [0x4d44, 'vfat'],
]);
const NAMED: ReadonlyMap<number, string> = new Map([
  [0x9123683e, 'Btrfs'],
  [0x2fc12fc1, 'ZFS'],
  [0x65735546, 'FUSE'],
  [0x58465342, 'XFS'],
]);

/** Whether GRUB can write grubenv in a directory, and what it is on, in words. */
export interface GrubenvJudgement {
  writable: boolean;
  /** `ext2/3/4`, `Btrfs`, `ext2/3/4 on LVM (lvm)` ... */
  fs: string;
  /** Set when the filesystem is one GRUB writes but the device below it is not: the abstractions in the way. */
  through?: string[];
  /** A directory a test stands in for one GRUB writes (SYSPRIME_GRUB_WRITABLE): nothing more is asked of it. */
  standIn?: boolean;
}

/** The filesystem type of `dir` in words, and whether GRUB can write grubenv there judged by that type alone. */
export function grubWritable(dir: string): GrubenvJudgement {
  let type: number;
  try {
    type = statfsSync(dir).type;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return { writable: false, fs: 'missing' };
    throw err;
  }
  const known = GRUB_WRITABLE.get(type);
  if (known !== undefined) return { writable: true, fs: known };
  // A test can stand a plain directory in for the ESP: SYSPRIME_GRUB_WRITABLE lists such directories.
  const forTests = (process.env['SYSPRIME_GRUB_WRITABLE'] ?? '').split(':').filter((d) => d !== '');
  if (forTests.some((d) => dir === d || dir.startsWith(`${d}/`))) return { writable: true, fs: 'a directory standing in for one GRUB writes', standIn: true };
  return { writable: false, fs: NAMED.get(type) ?? `type 0x${type.toString(16)}` };
}

/** GRUB's names of the abstractions below a filesystem (its module names), in words. */
const ABSTRACTIONS: ReadonlyMap<string, string> = new Map([
  ['lvm', 'LVM'],
  ['diskfilter', 'a device-mapper or RAID volume'],
  ['cryptodisk', 'an encrypted device'],
  ['luks', 'LUKS'],
  ['luks2', 'LUKS2'],
  ['geli', 'GELI'],
  ['mdraid09', 'mdraid'],
  ['mdraid09_be', 'mdraid'],
  ['mdraid1x', 'mdraid'],
  ['raid5rec', 'RAID 5'],
  ['raid6rec', 'RAID 6'],
  ['ldm', 'Windows dynamic disks'],
]);

/**
 * What `grub-probe --target=abstraction` printed, applied to a judgement by
 * filesystem type. It prints the modules GRUB needs between the disk and the
 * filesystem (`lvm`, `diskfilter mdraid1x`, `cryptodisk luks2 ...`), nothing
 * (or `none`) for a plain partition. GRUB writes a disk only through a plain
 * partition: diskfilter (LVM, mdraid) and cryptodisk have no write at boot,
 * so save_env fails on any of them (Ubuntu's 00_header disables recordfail
 * on the same test). Pure.
 */
export function withAbstraction(byType: GrubenvJudgement, probed: string): GrubenvJudgement {
  const through = probed.split(/\s+/).filter((w) => w !== '' && w !== 'none');
  if (!byType.writable || through.length === 0) return byType;
  const words = [...new Set(through.map((w) => ABSTRACTIONS.get(w)).filter((w): w is string => w !== undefined))];
  return { writable: false, fs: `${byType.fs} on ${words.length > 0 ? words.join(', ') : 'a device'} (${through.join(' ')})`, through };
}

/**
 * Whether GRUB can write grubenv in `dir`: by its filesystem type (statfs),
 * then, for a type GRUB writes, by the device below it (grub-probe). Without
 * an answer from grub-probe (not installed, or it cannot tell), the type
 * alone decides, with a warning: GRUB may still fail to write there.
 */
export async function judgeGrubenv(dir: string, run: Runner, byType: GrubenvJudgement = grubWritable(dir)): Promise<GrubenvJudgement> {
  if (!byType.writable || byType.standIn === true) return byType;
  const unsure = (why: string): GrubenvJudgement => {
    log.warn(`cannot tell whether GRUB can write grubenv through the device below ${dir}: ${why}; judged by its filesystem (${byType.fs}) alone, which is wrong if that device is LVM, mdraid or encrypted (then one-shot and boot counting fail at boot)`);
    return byType;
  };
  let probe: Awaited<ReturnType<Runner>>;
  try {
    probe = await run('grub-probe', ['--target=abstraction', dir], { allowFailure: true, timeout: 60_000 });
  } catch (err) {
    return unsure(err instanceof SysprimeError && err.code === 'COMMAND_MISSING' ? 'grub-probe is not installed (package grub-common)' : `grub-probe failed: ${messageOf(err)}`);
  }
  if (probe.exitCode !== 0) return unsure(`grub-probe --target=abstraction failed: ${probe.stderr.trim().split('\n')[0] || `exit status ${probe.exitCode}`}`);
  return withAbstraction(byType, probe.stdout);
}

/** The stub grub-install writes beside GRUB's EFI image: where GRUB finds its directory. */
export interface GrubStub {
  /** Absolute path of the stub (`<esp>/EFI/debian/grub.cfg`). */
  path: string;
  text: string;
  /** The filesystem UUID GRUB searches for, if the stub searches by UUID. */
  uuid: string | null;
  /** GRUB's directory on that filesystem (`/@rootfs/boot/grub`, `/grub`). */
  prefix: string | null;
}

/** The UUID and prefix of a stub's text; null when it is not a stub (no `configfile $prefix/grub.cfg`). */
export function parseStub(text: string): { uuid: string | null; prefix: string | null } | null {
  if (!/^\s*configfile\s+\$\{?prefix\}?\/grub\.cfg\s*$/m.test(text)) return null;
  const uuid = /^\s*search(?:\.fs_uuid\s+(\S+)\s+root\b|\s+.*--fs-uuid\s+--set=root\s+(\S+))/m.exec(text);
  const prefix = /^\s*set\s+prefix=\(\$\{?root\}?\)(?:'([^']*)'|"([^"]*)"|(\S+))\s*$/m.exec(text);
  return {
    uuid: uuid === null ? null : (uuid[1] ?? uuid[2] ?? null),
    prefix: prefix === null ? null : (prefix[1] ?? prefix[2] ?? prefix[3] ?? null),
  };
}

/** Every stub on the ESP: `EFI/<id>/grub.cfg` (the vendor directory and the removable path's). */
export function findStubs(esp: string): GrubStub[] {
  const efi = ['EFI', 'efi'].map((d) => join(esp, d)).find((d) => existsSync(d));
  if (efi === undefined) return [];
  const out: GrubStub[] = [];
  for (const dir of readdirSync(efi).sort()) {
    const path = join(efi, dir, 'grub.cfg');
    let text: string;
    try {
      text = readFileSync(path, 'latin1');
    } catch {
      continue;
    }
    const parsed = parseStub(text);
    if (parsed !== null) out.push({ path, text, ...parsed });
  }
  return out;
}

/** The stub for GRUB's directory on the ESP, as grub-install writes it when /boot/grub is there. */
export function renderStub(espUuid: string): string {
  // GRUB names a FAT volume's serial in lower case (grub-probe --target=fs_uuid): write it as GRUB reads it.
  const uuid = /^[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}$/.test(espUuid) ? espUuid.toLowerCase() : espUuid;
  return [`search.fs_uuid ${uuid} root`, `set prefix=($root)'/grub'`, 'configfile $prefix/grub.cfg', ''].join('\n');
}

/** GRUB's directory on the ESP, when a stub points there and it holds a grub.cfg. */
export function espHome(esp: string | null): string | null {
  if (esp === null) return null;
  const dir = join(esp, 'grub');
  if (!existsSync(join(dir, 'grub.cfg'))) return null;
  return findStubs(esp).some((s) => s.prefix === '/grub') ? dir : null;
}

/**
 * A filesystem's UUID as a move mark records it and a stub searches for it,
 * in lower case: findmnt's, else grub-probe's (findmnt knows none for a ZFS
 * dataset; grub-probe names the pool's GUID, as grub-install writes it in
 * the stub); '' when neither knows. The mark's writer (planHome) and its
 * readers (this root's directory, espHomeOf) ask the same way, so they agree.
 */
export async function fsUuidOf(path: string, run: Runner): Promise<string> {
  const byMount = (await run('findmnt', ['-n', '-o', 'UUID', '--target', path], { allowFailure: true })).stdout.trim();
  if (byMount !== '') return byMount.toLowerCase();
  try {
    const probe = await run('grub-probe', ['--target=fs_uuid', path], { allowFailure: true, timeout: 60_000 });
    return probe.exitCode === 0 ? probe.stdout.trim().toLowerCase() : '';
  } catch (err) {
    if (err instanceof SysprimeError && err.code === 'COMMAND_MISSING') return '';
    throw err;
  }
}

/** Whether a move mark was written for the root filesystem `rootUuid`; '' (a root whose UUID is unknown) is recorded as none. */
export function markNamesRoot(mark: { rootUuid: string | null }, rootUuid: string): boolean {
  return mark.rootUuid === (rootUuid === '' ? null : rootUuid.toLowerCase());
}

/**
 * GRUB's directory on the ESP when GRUB reads it there and it is this
 * installation's: espHome, unless its move mark names another root
 * filesystem than the one holding GRUB's own directory (its parent, `/boot`). A reinstall on the same ESP may point one stub
 * into its new root and leave another pointing at `<esp>/grub`, where the
 * earlier install's menu is: that directory is never written to, and
 * planHome is asked about the root's own directory instead (and says why it
 * leaves GRUB there). A directory without a mark is grub-install's own
 * (`--boot-directory` on the ESP) and is used as GRUB reads it.
 */
export async function espHomeOf(esp: string | null, grubDir: string, run: Runner): Promise<string | null> {
  const dir = espHome(esp);
  if (dir === null) return null;
  const mark = readMovedMark(dir);
  // The filesystem that held GRUB's directory before the move is the one its parent is on (`/boot`
  // inside the root): `grubDir` itself is the ESP's directory, bound over it, once moved.
  return mark === null || markNamesRoot(mark, await fsUuidOf(dirname(grubDir), run)) ? dir : null;
}

/** The fstab line that mounts GRUB's directory on the ESP at /boot/grub in every environment. */
export function homeFstabLine(esp: string): string {
  // nofail: without the ESP the environment still boots (with its own stale /boot/grub) instead of stopping in emergency mode.
  return `${join(esp, 'grub')} /boot/grub none bind,nofail,x-systemd.requires-mounts-for=${esp} 0 0`;
}

/**
 * Left in GRUB's directory on the ESP by the move: it is sysprime's copy, not
 * another system's. It names where the directory came from and the root
 * filesystem (its UUID) it was moved from: an ESP outlives installs, and a
 * directory moved there for an earlier install holds that install's menu.
 */
const MOVED_MARK = '.sysprime-moved-from';

/** What a move mark says; `rootUuid` is null in a mark that does not name it. */
export function readMovedMark(dir: string): { from: string; rootUuid: string | null } | null {
  let text: string;
  try {
    text = readFileSync(join(dir, MOVED_MARK), 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw err;
  }
  const lines = text.split('\n');
  const root = lines.find((l) => l.startsWith('root-uuid '));
  return { from: lines[0]!.trim(), rootUuid: root === undefined ? null : root.slice('root-uuid '.length).trim().toLowerCase() || null };
}

function movedMarkText(from: string, rootUuid: string): string {
  // Neither findmnt nor grub-probe may know the root's UUID (fsUuidOf): then the mark cannot name it, and reads as one that does not.
  return rootUuid === '' ? `${from}\n` : `${from}\nroot-uuid ${rootUuid.toLowerCase()}\n`;
}

export type HomePlan =
  /** GRUB can write its directory and every environment sees the same one (through `fstabLine` when it is the ESP's). */
  | { kind: 'fine'; dir: string; why: string; fstabLine?: string }
  /** Copy `from` to `<esp>/grub`, rewrite the stubs; environments get `fstabLine`. */
  | { kind: 'move'; from: string; to: string; esp: string; espUuid: string; rootUuid: string; stubs: GrubStub[]; fstabLine: string }
  /** Nothing can be moved: GRUB keeps reading the adopted root's directory. */
  | { kind: 'stay'; dir: string; warning: string };

export interface HomeOptions {
  /** GRUB's directory as the running system sees it (`/boot/grub`). */
  grubDir: string;
  esp: string | null;
  run?: Runner;
  /** The mount table to find the ESP in; the running system's (espMountTable) when absent. */
  mounts?: readonly MountinfoEntry[];
}

/**
 * The running system's mount table, for the ESP check. Tests cannot mount
 * vfat: each directory in SYSPRIME_ESP_STANDIN is listed as a vfat mount,
 * standing in for the ESP mounted there.
 */
function espMountTable(): MountinfoEntry[] {
  const table = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  const standIns = (process.env['SYSPRIME_ESP_STANDIN'] ?? '').split(':').filter((d) => d !== '');
  const standIn = (dir: string): MountinfoEntry => ({ id: -1, parent: -1, dev: '0:0', root: '/', mountPoint: dir, options: 'rw', propagation: [], fsType: 'vfat', source: 'SYSPRIME_ESP_STANDIN', superOptions: [] });
  return [...table, ...standIns.map(standIn)];
}

/**
 * Why `esp` cannot take GRUB's directory, or null when it is the mount point
 * of a FAT filesystem. `[boot] esp`, or the first usual place holding an
 * `EFI` directory (findEsp), may be a plain directory of the root (an
 * `EFI` left by an installer or a copy): GRUB's directory moved there would
 * be inside the root again, on a filesystem GRUB cannot write, and the stub
 * rewritten to a UUID that is not the ESP's. Links in `esp` itself are
 * resolved first, as the kernel's table names mount points by their real
 * paths.
 */
function espMountProblem(esp: string, mounts: readonly MountinfoEntry[]): string | null {
  let path = normalize(esp).replace(/(.)\/$/, '$1');
  try {
    path = realpathSync(path);
  } catch {
    // Not there: no mount is found at it either.
  }
  const at = mountAt(mounts, path);
  if (at === undefined) return `${esp} is not a mount point (a directory of the filesystem below it, not the EFI system partition)`;
  if (at.fsType !== 'vfat') return `${esp} is a mount of ${at.fsType} (${at.source}), not of the FAT (vfat) EFI system partition`;
  return null;
}

/** Decide what adoption does with GRUB's directory; reads only. */
export async function planHome(opts: HomeOptions): Promise<HomePlan> {
  const { grubDir, esp } = opts;
  const onEsp = espHome(esp);
  const run = opts.run ?? defaultRun;
  const uuidOf = async (path: string) => (await run('findmnt', ['-n', '-o', 'UUID', '--target', path], { allowFailure: true })).stdout.trim();
  const espUuid = async (at: string) => {
    const uuid = await uuidOf(at);
    if (uuid === '') throw new SysprimeError('NOT_FOUND', `cannot find the filesystem UUID of the ESP at ${at}`, { hint: 'check `findmnt --target ' + at + '` and `blkid`' });
    return uuid;
  };
  const mark = esp === null ? null : readMovedMark(join(esp, 'grub'));
  // GRUB's directory as the running system sees it is in a root filesystem (not the ESP's, bind-mounted at /boot/grub).
  // Its UUID is asked as espHomeOf asks its parent's: the mark written here is read back there.
  const dirUuid = await fsUuidOf(grubDir, run);
  const inRoot = esp !== null && dirUuid !== (await uuidOf(esp)).toLowerCase();
  if (mark !== null && inRoot && !markNamesRoot(mark, dirUuid)) {
    // The ESP outlived an install: the directory there was moved for another root (or by a sysprime that did not record
    // which), and holds that root's menu. Pointing this root's stubs at it would boot the other system's kernels.
    const fs = await judgeGrubenv(grubDir, run);
    const other = mark.rootUuid === null ? 'a root filesystem it does not name' : `the root filesystem ${mark.rootUuid}`;
    const why = `${join(esp!, 'grub')} holds the GRUB directory sysprime moved there for another installation (from ${other}; this root is ${dirUuid || 'a filesystem whose UUID neither findmnt nor grub-probe knows'}), which it will not use or replace: move it aside and run \`sysprime init\` again`;
    if (fs.writable) return { kind: 'fine', dir: grubDir, why: `GRUB's directory ${grubDir} is on ${fs.fs}; ${why}` };
    return { kind: 'stay', dir: grubDir, warning: `GRUB's directory ${grubDir} is on ${fs.fs}, which GRUB cannot write (no one-shot boot, no boot counting); ${why}` };
  }
  if (onEsp !== null) {
    // A stub that points GRUB into this root although the directory was moved: a move a crash cut short between two
    // stubs, or a grub-install run since while the ESP's directory was not mounted at /boot/grub.
    const rootUuid = inRoot && dirUuid !== '' ? dirUuid : mark?.rootUuid ?? null;
    const unfinished = mark === null ? [] : findStubs(esp!).filter((s) => s.prefix !== '/grub' && (rootUuid !== null ? s.uuid?.toLowerCase() === rootUuid : existsSync(`${s.path}.before-sysprime`)));
    if (unfinished.length === 0 || mark === null) return { kind: 'fine', dir: onEsp, why: `GRUB's directory is on the ESP (${onEsp})`, fstabLine: homeFstabLine(esp!) };
    return { kind: 'move', from: mark.from || grubDir, to: onEsp, esp: esp!, espUuid: await espUuid(esp!), rootUuid: rootUuid ?? unfinished[0]!.uuid ?? '', stubs: unfinished, fstabLine: homeFstabLine(esp!) };
  }
  const fs = await judgeGrubenv(grubDir, run);
  if (fs.writable) return { kind: 'fine', dir: grubDir, why: `GRUB's directory ${grubDir} is on ${fs.fs}, which GRUB writes and every environment mounts` };
  const risk =
    fs.through === undefined
      ? `GRUB's directory ${grubDir} is on ${fs.fs} inside the root being adopted: GRUB cannot write there (no one-shot boot, no boot counting), and deleting that root leaves GRUB without its configuration`
      : `GRUB's directory ${grubDir} is on ${fs.fs}: GRUB cannot write there through that device (no one-shot boot, no boot counting)`;
  if (esp === null) return { kind: 'stay', dir: grubDir, warning: `${risk}; no EFI system partition was found to move it to` };
  const notEsp = espMountProblem(esp, opts.mounts ?? espMountTable());
  if (notEsp !== null) return { kind: 'stay', dir: grubDir, warning: `${risk}; ${notEsp}, so GRUB's directory is not moved there: mount the ESP there, or set [boot] esp to where it is mounted, and run \`sysprime init\` again` };
  // Only the stubs that point GRUB into this root's filesystem: another system's GRUB on the same ESP is left alone.
  const rootUuid = dirUuid;
  const all = findStubs(esp);
  const stubs = all.filter((s) => rootUuid !== '' && s.uuid?.toLowerCase() === rootUuid);
  const others = all.filter((s) => !stubs.includes(s)).map((s) => s.path);
  const to = join(esp, 'grub');
  if (existsSync(to) && !existsSync(join(to, MOVED_MARK))) {
    return { kind: 'stay', dir: grubDir, warning: `${risk}; ${to} already holds a GRUB directory sysprime did not put there (another system's, or an earlier install's), which it will not replace: move it aside and run \`sysprime init\` again` };
  }
  if (stubs.length === 0) {
    return { kind: 'stay', dir: grubDir, warning: `${risk}; GRUB's EFI image on ${esp} has its directory built in (no grub.cfg beside it), so sysprime cannot point it elsewhere: run \`grub-install --boot-directory=${esp}\` and mount ${join(esp, 'grub')} at /boot/grub` };
  }
  const uuid = await espUuid(esp);
  if (others.length > 0) log.warn(`GRUB stubs on the ESP that point into another filesystem are left as they are: ${others.join(', ')}`);
  return { kind: 'move', from: grubDir, to, esp, espUuid: uuid, rootUuid, stubs, fstabLine: homeFstabLine(esp) };
}

/**
 * Carry out a move: GRUB's directory copied to the ESP under a temporary
 * name and renamed into place, then each stub rewritten in place (its old
 * text kept beside it as `grub.cfg.before-sysprime` first). Every step leaves a bootable
 * machine: until a stub is rewritten GRUB reads the old directory, after it
 * the copy, which holds the same grub.cfg. Run again after a crash, it
 * finishes the job.
 */
export function moveHome(plan: Extract<HomePlan, { kind: 'move' }>): string[] {
  const done: string[] = [];
  if (!existsSync(join(plan.to, MOVED_MARK))) {
    if (existsSync(plan.to)) throw new SysprimeError('REFUSED', `${plan.to} already holds a GRUB directory sysprime did not put there`, { hint: 'move it aside and run `sysprime init` again' });
    const tmp = `${plan.to}.sysprime-new`;
    rmSync(tmp, { recursive: true, force: true });
    try {
      copyTree(plan.from, tmp);
      replaceFile(join(tmp, MOVED_MARK), movedMarkText(plan.from, plan.rootUuid));
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      throw new SysprimeError(errnoOf(err) === 'ENOSPC' ? 'NO_SPACE' : 'IO', `cannot copy GRUB's directory ${plan.from} to ${plan.to}: ${messageOf(err)}`, {
        hint: `free space on the ESP or remove what ${plan.from} holds that FAT cannot (links), then run \`sysprime init\` again`,
        cause: err,
      });
    }
    renameSync(tmp, plan.to);
    fsyncPath(plan.esp);
    done.push(`copied GRUB's directory ${plan.from} to ${plan.to}`);
  }
  const stub = renderStub(plan.espUuid);
  // Read again: a run after a crash may find some stubs already rewritten.
  const pending = plan.stubs.map((s) => ({ s, text: readFileSync(s.path, 'latin1'), keep: `${s.path}.before-sysprime` })).filter((p) => p.text !== stub);
  // Every old text is durable beside its stub before any stub is touched: whatever a crash leaves can be put back.
  // A kept text that differs is stale (an earlier install's, or the text before a grub-install run since): every
  // pending stub points GRUB into this root (planHome), so its text now is the one to keep.
  // No modes: FAT has none to set (vfat refuses a chmod that its mount options do not allow).
  for (const p of pending) if (!existsSync(p.keep) || readFileSync(p.keep, 'latin1') !== p.text) replaceFile(p.keep, Buffer.from(p.text, 'latin1'));
  for (const p of pending) {
    faultPoint('boot:grub', 'stub');
    // In place, as grub-install writes it, not renamed over it: on FAT a rename can leave no stub at all (overwriteInPlace).
    overwriteInPlace(p.s.path, stub);
    done.push(`${relative(plan.esp, p.s.path)} on the ESP points GRUB at ${plan.to} (was ${p.s.prefix ?? 'unknown'}; the old text is in ${relative(plan.esp, p.keep)})`);
  }
  return done;
}

/**
 * Copy a directory tree onto the ESP, each file fsynced. Contents only: FAT
 * holds no owners, modes or links, and vfat refuses the chmod that a copy
 * keeping modes makes; a link (or any other special file) in GRUB's
 * directory is an error, never silently dropped.
 *
 * GRUB's old directory is inside the root being adopted, whose content is
 * not trusted: it is read through the confined reader (src/os/confined.ts),
 * each directory and file opened below the one before without following a
 * link, so a link put in place of a name between its lstat and its read is
 * refused, never followed out of the tree.
 */
function copyTree(from: string, to: string): void {
  const root = ConfinedRoot.open(from);
  try {
    copyDirectory(root, [], from, Buffer.from(to));
  } finally {
    root.close();
  }
}

/** One directory of copyTree: `comps` below the root, copied to `to` (names kept as the bytes they are). */
function copyDirectory(root: ConfinedRoot, comps: readonly string[], from: string, to: Buffer): void {
  const shown = (name?: string) => join(from, ...comps, ...(name === undefined ? [] : [name]));
  const notFat = (name?: string) => new Error(`${shown(name)} is not a regular file or directory (a link is not followed), which FAT cannot hold`);
  const dir = root.openDir(comps);
  if (!isHandle(dir)) throw dir === undefined ? new Error(`${shown()} is gone`) : notFat();
  try {
    mkdirSync(to);
    // Names as bytes (latin1), as the confined reader takes them.
    for (const name of readdirSync(dir.self, { encoding: 'latin1' })) {
      const dest = Buffer.concat([to, Buffer.from('/'), Buffer.from(name, 'latin1')]);
      const st = lstatIn(dir, name);
      if (st?.isDirectory()) copyDirectory(root, [...comps, name], from, dest);
      else if (st?.isFile()) {
        const content = readFileIn(dir, name);
        // Replaced by a link or something else since the lstat: refused like one found there.
        if (content === undefined) throw notFat(name);
        writeFileSync(dest, content, { flag: 'wx' });
        fsyncPath(dest);
      } else throw notFat(name);
    }
  } finally {
    dir.close();
  }
  fsyncPath(to);
}
