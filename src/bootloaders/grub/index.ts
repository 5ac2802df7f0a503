/**
 * GRUB: a generated menu file beside grub.cfg, sourced at boot by the
 * shipped `/etc/grub.d/42_sysprime`, so `update-grub` stays in charge of
 * grub.cfg and sysprime never edits it. Default and one-shot go through
 * GRUB's own tools (`grub-set-default`, `grub-reboot`), boot counting
 * through grubenv variables (see menu.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SysprimeError, errnoOf } from '../../errors.js';
import { run as defaultRun } from '../../process/run.js';
import type { BootEnvironment, BootState, Bootloader, Counting, InspectedEntry, Runner, SyncOptions, SyncResult } from '../types.js';
import { ENTRY_PREFIX, computeEntries } from '../entries.js';
import { findKernel } from '../kernels.js';
import { replaceFile } from '../durable.js';
import { menuBlocks, parseGrubenv, renderGrubMenu } from './menu.js';

export interface GrubOptions {
  /** The directory holding `grub/` (`grub-install --boot-directory`); /boot by default. */
  bootDirectory?: string;
  /** /etc/default/grub, read to tell whether GRUB_DEFAULT=saved. */
  defaultsFile?: string;
  /** Where update-grub looks for scripts; the include script must be there. */
  grubD?: string;
  /** The running kernel's command line (GRUB puts BOOT_IMAGE there). */
  cmdlineFile?: string;
  run?: Runner;
}

export const INCLUDE_SCRIPT = '42_sysprime';

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw err;
  }
}

/** GRUB_DEFAULT from /etc/default/grub (a shell file; only the plain assignment form is understood). */
export function grubDefaultSetting(text: string): string | null {
  let value: string | null = null;
  for (const line of text.split('\n')) {
    const m = /^\s*GRUB_DEFAULT=(["']?)(.*?)\1\s*(#.*)?$/.exec(line);
    if (m) value = m[2]!;
  }
  return value;
}

/** The environment a kernel was loaded from, by GRUB's `BOOT_IMAGE=/ROOT/<name>/...` or `/ROOT/<name>@/...`. */
export function bootedFromCmdline(cmdline: string): string | null {
  const image = /(?:^|\s)BOOT_IMAGE=(\S+)/.exec(cmdline)?.[1];
  return image === undefined ? null : (/\/ROOT\/([^/@]+)(?:@|\/)/.exec(image)?.[1] ?? null);
}

const idOf = (name: string): string => `${ENTRY_PREFIX}${name}`;
const nameOf = (id: string): string => id.slice(ENTRY_PREFIX.length);

export function createGrub(opts: GrubOptions = {}): Bootloader {
  const bootDir = opts.bootDirectory ?? '/boot';
  const grubDir = join(bootDir, 'grub');
  const menuPath = join(grubDir, 'sysprime.cfg');
  const envPath = join(grubDir, 'grubenv');
  const defaultsFile = opts.defaultsFile ?? '/etc/default/grub';
  const grubD = opts.grubD ?? '/etc/grub.d';
  const runner = opts.run ?? defaultRun;

  const readEnv = (): Map<string, string> => parseGrubenv(readText(envPath) ?? '');
  const savedDefaultProblem = (): string | null => {
    const text = readText(defaultsFile);
    const value = text === null ? null : grubDefaultSetting(text);
    return value === 'saved' ? null : `GRUB_DEFAULT is ${value === null ? 'not set' : `"${value}"`} in ${defaultsFile}, so GRUB ignores the saved default`;
  };
  const editenv = (args: string[]) => runner('grub-editenv', [envPath, ...args]);

  function menuEntries(): Map<string, string> {
    return menuBlocks(readText(menuPath) ?? '');
  }

  const loader: Bootloader = {
    name: 'grub',
    capabilities: { oneShot: true, counting: true, ownsEntries: true },

    describe: () => `GRUB menu ${menuPath}`,

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
      const { entries, warnings } = computeEntries(envs, findKernel);
      const before = menuEntries();
      const text = renderGrubMenu(entries);
      const after = menuBlocks(text);
      const result: SyncResult = { loader: 'grub', added: [], updated: [], kept: [], removed: [], warnings };
      for (const [id, block] of after) {
        const old = before.get(id);
        (old === undefined ? result.added : old === block ? result.kept : result.updated).push(nameOf(id));
      }
      for (const id of before.keys()) if (!after.has(id)) result.removed.push(nameOf(id));
      if ((readText(menuPath) ?? '') !== text) replaceFile(menuPath, text);

      const env = readEnv();
      const staged = sopts.staged;
      // Counting starts once, when the staged entry first appears; a later sync never restarts it.
      if (staged && staged.tries > 0 && result.added.includes(staged.name)) {
        const fallback = sopts.fallbackName ?? (env.get('saved_entry')?.startsWith(ENTRY_PREFIX) ? nameOf(env.get('saved_entry')!) : undefined);
        if (fallback === undefined || fallback === staged.name) {
          warnings.push(`no fallback environment is known, so "${staged.name}" boots without counting`);
        } else {
          await editenv(['set', `boot_counter=${staged.tries}`, 'boot_success=0', `sysprime_counting=${idOf(staged.name)}`, `sysprime_tries=${staged.tries}`, `sysprime_fallback=${idOf(fallback)}`]);
        }
      }
      if (entries.some((e) => e.name === sopts.defaultName) && env.get('saved_entry') !== idOf(sopts.defaultName)) {
        const problem = savedDefaultProblem();
        if (problem) warnings.push(`${problem}; set GRUB_DEFAULT=saved and run update-grub for "${sopts.defaultName}" to boot by default`);
        await runner('grub-set-default', [`--boot-directory=${bootDir}`, idOf(sopts.defaultName)]);
      }
      return result;
    },

    async setDefault(name: string) {
      if (!menuEntries().has(idOf(name))) {
        throw new SysprimeError('NOT_FOUND', `environment "${name}" has no entry in ${menuPath}`, { hint: 'see `sysprime doctor`' });
      }
      const problem = savedDefaultProblem();
      if (problem) {
        throw new SysprimeError('REFUSED', `cannot make "${name}" GRUB's default: ${problem}`, {
          hint: `set GRUB_DEFAULT=saved in ${defaultsFile} and run update-grub`,
        });
      }
      await runner('grub-set-default', [`--boot-directory=${bootDir}`, idOf(name)]);
    },

    async setOneShot(name: string) {
      if (!menuEntries().has(idOf(name))) {
        throw new SysprimeError('NOT_FOUND', `environment "${name}" has no entry in ${menuPath}`, { hint: 'see `sysprime doctor`' });
      }
      await runner('grub-reboot', [`--boot-directory=${bootDir}`, idOf(name)]);
    },

    async inspect(): Promise<BootState> {
      const env = readEnv();
      const warnings: string[] = [];
      const problem = savedDefaultProblem();
      if (problem) warnings.push(problem);
      const countingId = env.get('sysprime_counting');
      const counter = Number(env.get('boot_counter'));
      const tries = Number(env.get('sysprime_tries'));
      const entries: InspectedEntry[] = [...menuEntries()].map(([id, block]) => {
        let counting: Counting = { state: 'blessed' };
        if (id === countingId && Number.isInteger(counter)) {
          const done = Number.isInteger(tries) ? Math.max(0, tries - Math.max(counter, 0)) : 0;
          counting = counter <= 0 ? { state: 'bad', done } : { state: 'counting', left: counter, done };
        }
        return {
          name: nameOf(id),
          ref: id,
          title: /^menuentry '([^']*)'/.exec(block)?.[1] ?? null,
          generation: Number(/# sysprime generation (\d+)/.exec(block)?.[1] ?? NaN) || null,
          kernelVersion: /\(Linux ([^)]+)\)/.exec(block)?.[1] ?? null,
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
        await runner('grub-set-default', [`--boot-directory=${bootDir}`, fallback]);
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
