/**
 * GRUB: a generated menu file beside grub.cfg, sourced at boot by the
 * shipped `/etc/grub.d/42_sysprime`, so `update-grub` stays in charge of
 * grub.cfg and sysprime never edits it. Default, one-shot and boot counting
 * are grubenv variables (`saved_entry`, `next_entry`, and greenboot's, see
 * menu.ts), written with `grub-editenv` as `grub-set-default` and
 * `grub-reboot` do, so grub-common is the only package needed.
 *
 * GRUB's directory is the one GRUB reads: on the ESP once adoption moved it
 * there (home.ts), else `/boot/grub`. One-shot and counting need GRUB to
 * write grubenv at boot, which it can only on ext2/3/4 or FAT on a plain
 * partition (not on LVM, mdraid or an encrypted device): elsewhere they are
 * refused or skipped, loudly.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SysprimeError, errnoOf } from '../../errors.js';
import { run as defaultRun } from '../../process/run.js';
import type { BootDrift, BootEntry, BootHome, BootEnvironment, BootState, Bootloader, Counting, InspectedEntry, Runner, SyncOptions, SyncResult } from '../types.js';
import { ENTRY_PREFIX, computeEntries, noKernelDrift } from '../entries.js';
import { findKernel } from '../kernels.js';
import { fsyncPath, removeStaleTemps, renameInto, writeTemp } from '../../os/durable.js';
import { lstatIn, withDirIn } from '../../os/confined.js';
import { faultPoint } from '../../process/fault.js';
import { menuBlocks, menuTitle, parseGrubenv, renderGrubMenu } from './menu.js';
import { espHomeOf, grubWritable, judgeGrubenv, moveHome, planHome, type GrubenvJudgement } from './home.js';

export interface GrubOptions {
  /** GRUB's own directory, holding grub.cfg, grubenv and sysprime.cfg (/boot/grub); the ESP's instead when GRUB reads it there. */
  grubDir?: string;
  /** The EFI system partition's mount point, if there is one. */
  esp?: string | null;
  /** Where update-grub looks for scripts; the include script must be there. */
  grubD?: string;
  /** The running kernel's command line (GRUB puts BOOT_IMAGE there). */
  cmdlineFile?: string;
  run?: Runner;
}

const INCLUDE_SCRIPT = '42_sysprime';
/** The unit that ends GRUB's boot counting once a boot is good (share/systemd). */
const BOOT_COMPLETE_UNIT = 'sysprime-boot-complete.service';

/** Whether a unit is enabled for multi-user.target in an environment's tree (read without following its links). */
function unitEnabled(tree: string, unit: string): boolean {
  return withDirIn(tree, '/etc/systemd/system/multi-user.target.wants', { create: false }, (d) => lstatIn(d, unit) !== undefined) ?? false;
}
/** The line 42_sysprime puts in grub.cfg (share/grub/42_sysprime). */
const INCLUDE_MARK = '### sysprime boot environments ###';

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw err;
  }
}

/** The environment a kernel was loaded from, by GRUB's `BOOT_IMAGE=/ROOT/<name>/...` or `/ROOT/<name>@/...`. */
export function bootedFromCmdline(cmdline: string): string | null {
  const image = /(?:^|\s)BOOT_IMAGE=(\S+)/.exec(cmdline)?.[1];
  // `/ROOT/<name>@/boot/...` (the kernel in the root), `/BOOT/<name>@/...` (in its boot dataset, the guides' bpool).
  return image === undefined ? null : (/\/(?:ROOT|BOOT)\/([^/@]+)(?:@|\/)/.exec(image)?.[1] ?? null);
}

const idOf = (name: string): string => `${ENTRY_PREFIX}${name}`;
const nameOf = (id: string): string => id.slice(ENTRY_PREFIX.length);

/** The files a menu entry loads, as paths inside the environment (`/boot/...`); a boot dataset's root is the environment's /boot. */
export function loadedFiles(block: string): string[] {
  const out: string[] = [];
  for (const line of block.split('\n')) {
    const m = /^\s*(?:linux|initrd)\s+'?([^'\s]+)/.exec(line);
    if (!m) continue;
    const inBoot = /^\/BOOT\/[^/@]+@(\/.*)$/.exec(m[1]!);
    if (inBoot) {
      out.push(`/boot${inBoot[1]!}`);
      continue;
    }
    const at = m[1]!.lastIndexOf('/boot/');
    if (at >= 0) out.push(m[1]!.slice(at));
  }
  return out;
}

/** Why an entry on disk differs from the one a sync writes: its kernel is gone, or something else changed. */
function entryDrift(entry: BootEntry, oldBlock: string, tree: string | undefined): BootDrift {
  const gone = tree === undefined ? [] : loadedFiles(oldBlock).filter((f) => !existsSync(join(tree, f)));
  if (gone.length > 0) return { kind: 'kernel-missing', name: entry.name, what: `the GRUB entry of "${entry.name}" loads ${gone.join(' and ')}, which the environment no longer has` };
  return { kind: 'entry-stale', name: entry.name, what: `the GRUB entry of "${entry.name}" differs from what sysprime writes (kernel ${entry.kernel.version}, arguments or title)` };
}

export async function createGrub(opts: GrubOptions = {}): Promise<Bootloader> {
  const esp = opts.esp ?? null;
  const runner = opts.run ?? defaultRun;
  // GRUB reads the ESP's directory once a stub points there (adoption moved it), whatever the configuration says;
  // unless the move mark there names another root (an earlier install's directory on a reused ESP), judged first.
  const grubDir = (await espHomeOf(esp, opts.grubDir ?? '/boot/grub', runner)) ?? opts.grubDir ?? '/boot/grub';
  // GRUB writes grubenv at boot (clearing a one-shot, counting tries) only on a filesystem it can write:
  // its type is known at once (the capabilities), the device below it (LVM, mdraid, LUKS) from grub-probe, asked once when needed.
  const envFs = grubWritable(grubDir);
  let judged: Promise<GrubenvJudgement> | undefined;
  const envJudgement = (): Promise<GrubenvJudgement> => (judged ??= judgeGrubenv(grubDir, runner, envFs));
  const cannotWrite = (j: GrubenvJudgement) => `GRUB cannot write grubenv on ${j.fs} (${grubDir})`;
  const menuPath = join(grubDir, 'sysprime.cfg');
  const envPath = join(grubDir, 'grubenv');
  const grubD = opts.grubD ?? '/etc/grub.d';

  const readEnv = (): Map<string, string> => parseGrubenv(readText(envPath) ?? '');
  const editenv = (args: string[]) => runner('grub-editenv', [envPath, ...args]);
  const setSaved = (name: string) => editenv(['set', `saved_entry=${idOf(name)}`]);

  function menuEntries(): Map<string, string> {
    return menuBlocks(readText(menuPath) ?? '');
  }

  const loader: Bootloader = {
    name: 'grub',
    // By the filesystem's type: where the device below it turns out not to be writable, setOneShot refuses and sync does not count.
    capabilities: { oneShot: envFs.writable, counting: envFs.writable, ownsEntries: true },

    describe: () => `GRUB menu ${menuPath}`,

    async planHome(): Promise<BootHome | null> {
      const plan = await planHome({ grubDir, esp, run: runner });
      // Counting needs the unit that marks a boot good: without it a staged environment would fall back after booting fine.
      const units = [BOOT_COMPLETE_UNIT];
      if (plan.kind === 'fine') return { what: plan.why, fstabLines: plan.fstabLine === undefined ? [] : [plan.fstabLine], units, warnings: [], apply: async () => [] };
      if (plan.kind === 'stay') return { what: `GRUB's directory stays at ${plan.dir}`, fstabLines: [], units, warnings: [plan.warning], apply: async () => [] };
      return {
        what: `GRUB's directory moves from ${plan.from} to ${plan.to} on the ESP, mounted at /boot/grub in every environment`,
        fstabLines: [plan.fstabLine],
        units,
        warnings: [],
        apply: async () => {
          const done = moveHome(plan);
          // The running root too reads and writes GRUB's files where GRUB reads them from now on (update-grub, grub-install).
          if ((await runner('findmnt', ['-n', '-o', 'SOURCE', '--mountpoint', plan.from], { allowFailure: true })).stdout.trim() === '') {
            await runner('mount', ['--bind', plan.to, plan.from]);
            done.push(`${plan.to} is mounted at ${plan.from} until the reboot (every environment mounts it from its fstab)`);
          }
          return done;
        },
      };
    },

    async probe() {
      if (!existsSync(grubDir)) {
        throw new SysprimeError('NOT_FOUND', `${grubDir} does not exist: GRUB is not installed there`, { hint: 'set [boot] loader to the bootloader this machine uses' });
      }
      if (!existsSync(join(grubD, INCLUDE_SCRIPT))) {
        throw new SysprimeError('NOT_FOUND', `${join(grubD, INCLUDE_SCRIPT)} is missing, so grub.cfg will not show sysprime's entries`, {
          hint: `link /usr/share/sysprime/grub/${INCLUDE_SCRIPT} into ${grubD} (it must be executable) and run update-grub`,
        });
      }
    },

    async sync(envs: readonly BootEnvironment[], sopts: SyncOptions): Promise<SyncResult> {
      const { entries, warnings, withoutKernel } = computeEntries(envs, findKernel);
      const current = readText(menuPath) ?? '';
      const before = menuBlocks(current);
      const text = renderGrubMenu(entries);
      const after = menuBlocks(text);
      const trees = new Map(envs.map((e) => [e.name, e.tree]));
      const result: SyncResult = { loader: 'grub', added: [], updated: [], kept: [], removed: [], warnings, drift: noKernelDrift(withoutKernel) };
      for (const e of entries) {
        const block = after.get(e.id)!;
        const old = before.get(e.id);
        if (old === undefined) {
          result.added.push(e.name);
          result.drift.push({ kind: 'entry-missing', name: e.name, what: `"${e.name}" has no entry in ${menuPath}` });
        } else if (old === block) result.kept.push(e.name);
        else {
          result.updated.push(e.name);
          result.drift.push(entryDrift(e, old, trees.get(e.name)));
        }
      }
      for (const id of before.keys()) {
        if (after.has(id)) continue;
        const name = nameOf(id);
        result.removed.push(name);
        result.drift.push(
          withoutKernel.includes(name)
            ? { kind: 'kernel-missing', name, what: `the GRUB entry of "${name}" loads a kernel the environment no longer has, and it has no other` }
            : { kind: 'entry-orphaned', name, what: `${menuPath} has an entry ${id} for "${name}", which does not exist` },
        );
      }
      if (current !== text && result.drift.every((d) => d.kind === 'no-kernel')) {
        result.drift.push({ kind: 'entry-stale', name: null, what: `${menuPath} differs from what sysprime writes (its boot counting block)` });
      }
      const env = readEnv();
      const hasDefault = entries.some((e) => e.name === sopts.defaultName);
      if (hasDefault && env.get('saved_entry') !== idOf(sopts.defaultName)) {
        const saved = env.get('saved_entry');
        result.drift.push({ kind: 'default', name: sopts.defaultName, what: `GRUB's saved default is ${saved === undefined ? 'not set' : saved}, not ${idOf(sopts.defaultName)}` });
      }
      const next = env.get('next_entry');
      if (next?.startsWith(ENTRY_PREFIX) && !after.has(next)) {
        result.drift.push({ kind: 'default', name: nameOf(next), what: `GRUB's one-shot entry ${next} is not in the menu` });
      }
      if (sopts.dryRun) return result;

      if (current !== text) {
        removeStaleTemps(grubDir);
        const tmp = writeTemp(menuPath, text);
        // The old menu stays whole until this rename; GRUB reads either file entirely.
        faultPoint('boot:grub', 'menu');
        renameInto(tmp, menuPath);
        fsyncPath(dirname(menuPath));
      }
      faultPoint('boot:grub', 'grubenv');
      if (next?.startsWith(ENTRY_PREFIX) && !after.has(next)) await editenv(['unset', 'next_entry']);

      const staged = sopts.staged;
      // Counting starts once, when the staged entry first appears; a later sync never restarts it.
      const stagedTree = staged === undefined ? undefined : trees.get(staged.name);
      const startsCounting = staged !== undefined && staged.tries > 0 && result.added.includes(staged.name);
      const envNow = startsCounting ? await envJudgement() : envFs;
      if (staged && startsCounting && !envNow.writable) {
        warnings.push(`${cannotWrite(envNow)}, so "${staged.name}" boots without counting: try it with \`sysprime activate --once\` after moving GRUB's directory to the ESP (docs/boot.md)`);
      } else if (staged && staged.tries > 0 && result.added.includes(staged.name) && stagedTree !== undefined && !unitEnabled(stagedTree, BOOT_COMPLETE_UNIT)) {
        warnings.push(`${BOOT_COMPLETE_UNIT} is not enabled in "${staged.name}", so nothing would mark a good boot and GRUB would fall back after ${staged.tries} boots: "${staged.name}" boots without counting (\`systemctl enable ${BOOT_COMPLETE_UNIT}\`, then stage again)`);
      } else if (staged && staged.tries > 0 && result.added.includes(staged.name)) {
        const fallback = sopts.fallbackName ?? (env.get('saved_entry')?.startsWith(ENTRY_PREFIX) ? nameOf(env.get('saved_entry')!) : undefined);
        if (fallback === undefined || fallback === staged.name) {
          warnings.push(`no fallback environment is known, so "${staged.name}" boots without counting`);
        } else {
          await editenv(['set', `boot_counter=${staged.tries}`, 'boot_success=0', `sysprime_counting=${idOf(staged.name)}`, `sysprime_tries=${staged.tries}`, `sysprime_fallback=${idOf(fallback)}`]);
        }
      }
      // A trial whose entry is gone (destroyed, renamed) ends: GRUB must not fall back to or count a missing entry.
      // A failure is forgotten with its entry, or when the same name is staged anew.
      const failed = env.get('sysprime_failed');
      if (failed !== undefined && (!after.has(failed) || (staged !== undefined && result.added.includes(staged.name) && failed === idOf(staged.name)))) {
        await editenv(['unset', 'sysprime_failed', 'sysprime_failed_tries']);
      }
      const counting = env.get('sysprime_counting');
      if (counting !== undefined && (!after.has(counting) || !after.has(env.get('sysprime_fallback') ?? ''))) {
        await editenv(['unset', 'boot_counter', 'sysprime_counting', 'sysprime_tries', 'sysprime_fallback']);
      }
      if (hasDefault && env.get('saved_entry') !== idOf(sopts.defaultName)) await setSaved(sopts.defaultName);
      return result;
    },

    async setDefault(name: string) {
      if (!menuEntries().has(idOf(name))) {
        throw new SysprimeError('NOT_FOUND', `environment "${name}" has no entry in ${menuPath}`, { hint: 'see `sysprime doctor`' });
      }
      await setSaved(name);
      // The admin chose an environment that failed before: that choice ends the record of its failure.
      if (readEnv().get('sysprime_failed') === idOf(name)) await editenv(['unset', 'sysprime_failed', 'sysprime_failed_tries']);
    },

    async setOneShot(name: string) {
      if (!menuEntries().has(idOf(name))) {
        throw new SysprimeError('NOT_FOUND', `environment "${name}" has no entry in ${menuPath}`, { hint: 'see `sysprime doctor`' });
      }
      const envNow = await envJudgement();
      if (!envNow.writable) {
        // GRUB would boot it and fail to clear next_entry: the one-shot would become every boot's.
        throw new SysprimeError('REFUSED', `cannot boot "${name}" once: ${cannotWrite(envNow)}, so it could not clear the one-shot and would boot it every time`, {
          hint: 'adopting the machine with `sysprime init` moves GRUB\'s directory to the ESP; or choose the entry in GRUB\'s menu at boot',
        });
      }
      await editenv(['set', `next_entry=${idOf(name)}`]);
    },

    async inspect(): Promise<BootState> {
      const env = readEnv();
      const warnings: string[] = [];
      const cfg = readText(join(grubDir, 'grub.cfg'));
      if (cfg !== null && !cfg.includes(INCLUDE_MARK)) warnings.push(`${join(grubDir, 'grub.cfg')} does not include sysprime's menu: run update-grub (with ${join(grubD, INCLUDE_SCRIPT)} installed)`);
      const envNow = await envJudgement();
      if (!envNow.writable) warnings.push(`${cannotWrite(envNow)}: no one-shot boot and no boot counting`);
      const countingId = env.get('sysprime_counting');
      const counter = Number(env.get('boot_counter'));
      const tries = Number(env.get('sysprime_tries'));
      const entries: InspectedEntry[] = [...menuEntries()].map(([id, block]) => {
        let counting: Counting = { state: 'blessed' };
        if (id === env.get('sysprime_failed')) counting = { state: 'bad', done: Number(env.get('sysprime_failed_tries')) || 0 };
        if (id === countingId && Number.isInteger(counter)) {
          const done = Number.isInteger(tries) ? Math.max(0, tries - Math.max(counter, 0)) : 0;
          counting = counter <= 0 ? { state: 'bad', done } : { state: 'counting', left: counter, done };
        }
        return {
          name: nameOf(id),
          ref: id,
          title: menuTitle(block),
          // Read from the lines below the title: the admin's description is in the title and may hold any words.
          generation: Number(/^\t# sysprime generation (\d+)$/m.exec(block)?.[1] ?? NaN) || null,
          kernelVersion: /^\techo .*\(Linux ([^)]+)\) \.\.\.'?$/m.exec(block)?.[1] ?? null,
          counting,
        };
      });
      const saved = env.get('saved_entry');
      const next = env.get('next_entry');
      const fellBack = countingId !== undefined && counter === 0 ? env.get('sysprime_fallback') : undefined;
      const effective = fellBack ?? saved;
      return {
        loader: 'grub',
        entries,
        defaultName: effective?.startsWith(ENTRY_PREFIX) ? nameOf(effective) : null,
        oneShotName: next?.startsWith(ENTRY_PREFIX) ? nameOf(next) : null,
        warnings,
      };
    },

    async bootComplete() {
      const env = readEnv();
      const counting = env.get('sysprime_counting');
      if (counting === undefined) return [];
      const done: string[] = [];
      if (env.get('boot_counter') === '-1' && env.get('sysprime_fallback')) {
        // The staged entry used up its tries and this boot is the fallback: keep booting it.
        const fallback = env.get('sysprime_fallback')!;
        // The failure is remembered (GRUB's counters go below), so status and doctor can still name it.
        await editenv(['set', `saved_entry=${fallback}`, `sysprime_failed=${counting}`, `sysprime_failed_tries=${env.get('sysprime_tries') ?? ''}`]);
        done.push(`"${nameOf(counting)}" failed to boot ${env.get('sysprime_tries') ?? 'all its'} times; "${nameOf(fallback)}" is the default again`);
      } else {
        const booted = bootedFromCmdline(readText(opts.cmdlineFile ?? '/proc/cmdline') ?? '');
        if (booted !== nameOf(counting)) {
          // The admin picked another entry by hand: this boot says nothing about the staged one.
          return [`"${nameOf(counting)}" is still on trial (${env.get('boot_counter') ?? '?'} tries left); this boot was ${booted === null ? 'another entry' : `"${booted}"`}`];
        }
        done.push(`"${nameOf(counting)}" booted; boot counting ends`);
      }
      await editenv(['unset', 'boot_counter', 'sysprime_counting', 'sysprime_tries', 'sysprime_fallback']);
      await editenv(['set', 'boot_success=1']);
      return done;
    },
  };
  return loader;
}
