/**
 * systemd-boot: Boot Loader Specification Type #1 entries on the ESP.
 *
 * Every sync writes the whole set: kernels first (so no entry ever points at
 * a missing file), then every new or changed entry under a temporary name,
 * fsync, rename each into place, and only then remove the entries of
 * environments that are gone. Only `sysprime-*.conf` files are ever touched;
 * the admin's own entries stay as they are. A boot counter already in a file
 * name is carried over: rewriting an entry never gives it fresh tries.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SysprimeError, errnoOf } from '../../errors.js';
import { run as defaultRun } from '../../process/run.js';
import type { BootEnvironment, BootState, Bootloader, Counting, InspectedEntry, Runner, SyncOptions, SyncResult } from '../types.js';
import { computeEntries, noKernelDrift } from '../entries.js';
import { faultPoint } from '../../process/fault.js';
import { findKernel } from '../kernels.js';
import {
  DEFAULT_PATTERN,
  SORT_KEY,
  blsNameProblem,
  bootOrder,
  globMatch,
  entryFileName,
  loaderConfValue,
  parseBlsEntry,
  parseCounter,
  parseEntryFileName,
  parseLoaderConf,
  predictBoot,
  renderBlsEntry,
  withLoaderDefault,
  type Rank,
  type SortableEntry,
} from '../bls.js';
import { fsyncPath, removeStaleTemps, renameInto, replaceFile, writeTemp } from '../../os/durable.js';
import { EFIVARS_DIR, readLoaderVariable } from '../efivars.js';
import { checkSpace, copyKernels, espUsage, planKernelCopies, pruneKernels } from './esp-kernels.js';

export interface SystemdBootOptions {
  esp: string;
  run?: Runner;
  /** Where efivarfs is (tests point it at a directory of fake variables). */
  efivars?: string;
  /** Free bytes on the ESP (tests shrink it); statfs by default. */
  freeBytes?: (path: string) => number;
  /** Called after each entry is renamed into place; tests throw from it to simulate a crash. */
  afterRename?: (count: number, file: string) => void;
}

interface OnDisk {
  file: string;
  name: string;
  counting: Counting;
  text: string;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw err;
  }
}

export function createSystemdBoot(opts: SystemdBootOptions): Bootloader {
  const esp = opts.esp;
  const entriesDir = join(esp, 'loader', 'entries');
  const loaderConf = join(esp, 'loader', 'loader.conf');
  const runner = opts.run ?? defaultRun;
  const efivars = opts.efivars ?? EFIVARS_DIR;

  function listOwn(): OnDisk[] {
    let names: string[];
    try {
      names = readdirSync(entriesDir);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return [];
      throw err;
    }
    const out: OnDisk[] = [];
    for (const file of names.sort()) {
      const parsed = parseEntryFileName(file);
      if (!parsed) continue;
      const text = readText(join(entriesDir, file));
      if (text !== null) out.push({ file, ...parsed, text });
    }
    return out;
  }

  /** One file per environment; when a crash or a concurrent bless left two, the blessed one wins. */
  function byName(own: readonly OnDisk[]): Map<string, OnDisk> {
    const map = new Map<string, OnDisk>();
    for (const e of own) {
      const prev = map.get(e.name);
      if (!prev || (e.counting.state === 'blessed' && prev.counting.state !== 'blessed')) map.set(e.name, e);
    }
    return map;
  }

  /**
   * The set swap: `desired` maps file names to contents. New and changed
   * files go in first (demotions before promotions, so a crash never leaves
   * two defaults that were not there before), stale sysprime files after.
   */
  function swap(desired: Map<string, { text: string; rank: Rank }>, own: readonly OnDisk[]): { written: Set<string>; removed: string[] } {
    mkdirSync(entriesDir, { recursive: true });
    removeStaleTemps(entriesDir);
    const current = new Map(own.map((e) => [e.file, e.text]));
    const order: Record<Rank, number> = { other: 0, fallback: 1, default: 2 };
    const changed = [...desired.entries()].filter(([file, d]) => current.get(file) !== d.text).sort((a, b) => order[a[1].rank] - order[b[1].rank]);
    const temps = changed.map(([file, d]) => ({ file, tmp: writeTemp(join(entriesDir, file), d.text) }));
    fsyncPath(entriesDir);
    faultPoint('boot:systemd-boot', 'rename-0');
    let count = 0;
    try {
      for (const t of temps) {
        renameInto(t.tmp, join(entriesDir, t.file));
        count++;
        opts.afterRename?.(count, t.file);
        faultPoint('boot:systemd-boot', `rename-${count}`);
      }
    } finally {
      // On a failure part-way, the temporaries not yet renamed must not linger.
      for (const t of temps.slice(count)) rmSync(t.tmp, { force: true });
    }
    fsyncPath(entriesDir);
    const removed: string[] = [];
    for (const e of own) {
      if (desired.has(e.file)) continue;
      rmSync(join(entriesDir, e.file), { force: true });
      removed.push(e.file);
    }
    if (removed.length > 0) fsyncPath(entriesDir);
    return { written: new Set(changed.map(([f]) => f)), removed };
  }

  function ensureLoaderDefault(): void {
    const text = readText(loaderConf);
    if (text !== null && loaderConfValue(parseLoaderConf(text), 'default') === DEFAULT_PATTERN) return;
    mkdirSync(join(esp, 'loader'), { recursive: true });
    replaceFile(loaderConf, withLoaderDefault(text ?? '', DEFAULT_PATTERN));
  }

  function rankOf(name: string, defaultName: string, fallbackName: string | undefined): Rank {
    if (name === defaultName) return 'default';
    if (name === fallbackName) return 'fallback';
    return 'other';
  }

  /** Rewrite an entry we wrote with another rank: parse it, set the field, render it whole again. */
  function reRank(text: string, rank: Rank): string {
    const out: string[] = [];
    let done = false;
    for (const line of text.replace(/\n$/, '').split('\n')) {
      const m = /^\s*(\S+)/.exec(line);
      if (m?.[1] === 'sort-key') {
        if (!done) out.push(`sort-key ${SORT_KEY[rank]}`);
        done = true;
      } else out.push(line);
    }
    if (!done) out.splice(1, 0, `sort-key ${SORT_KEY[rank]}`);
    return `${out.join('\n')}\n`;
  }

  function rankInText(text: string): Rank {
    const key = parseBlsEntry(text).get('sort-key')?.[0];
    return key === SORT_KEY.default ? 'default' : key === SORT_KEY.fallback ? 'fallback' : 'other';
  }

  function bootedBySystemdBoot(): boolean {
    const info = readLoaderVariable(efivars, 'LoaderInfo');
    return info !== null && /systemd-boot/i.test(info);
  }

  function allEntriesForPrediction(): (SortableEntry & { name: string | null })[] {
    let names: string[];
    try {
      names = readdirSync(entriesDir);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return [];
      throw err;
    }
    const out: (SortableEntry & { name: string | null })[] = [];
    for (const file of names) {
      if (!file.endsWith('.conf')) continue;
      const text = readText(join(entriesDir, file));
      if (text === null) continue;
      const fields = parseBlsEntry(text);
      out.push({
        id: file,
        sortKey: fields.get('sort-key')?.[0] ?? null,
        version: fields.get('version')?.[0] ?? null,
        counting: parseCounter(file.slice(0, -'.conf'.length)).counting,
        name: parseEntryFileName(file)?.name ?? null,
      });
    }
    return out;
  }

  const loader: Bootloader = {
    name: 'systemd-boot',
    capabilities: { oneShot: true, counting: true, ownsEntries: true },

    describe: () => `systemd-boot on ${esp}`,

    espUsage: async () => espUsage(esp),

    async probe() {
      let isDir = false;
      try {
        isDir = statSync(esp).isDirectory();
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') throw err;
      }
      if (!isDir) throw new SysprimeError('NOT_FOUND', `the ESP ${esp} does not exist`, { hint: 'mount the EFI system partition, or set [boot] esp' });
    },

    async sync(envs: readonly BootEnvironment[], sopts: SyncOptions): Promise<SyncResult> {
      const warnings: string[] = [];
      const usable: BootEnvironment[] = [];
      const folded = new Map<string, string>();
      for (const env of envs) {
        const problem = blsNameProblem(env.name);
        if (problem) {
          warnings.push(`environment "${env.name}" gets no systemd-boot entry: ${problem}; rename it`);
          continue;
        }
        // The ESP is FAT: names that differ only in case would be the same file.
        const clash = folded.get(env.name.toLowerCase());
        if (clash !== undefined) {
          warnings.push(`environment "${env.name}" gets no systemd-boot entry: on the ESP (FAT) its name is the same as "${clash}"`);
          continue;
        }
        folded.set(env.name.toLowerCase(), env.name);
        usable.push(env);
      }
      const computed = computeEntries(usable, findKernel);
      warnings.push(...computed.warnings);
      const drift = noKernelDrift(computed.withoutKernel);
      const entries = computed.entries;
      if (!entries.some((e) => e.name === sopts.defaultName)) {
        warnings.push(`the default environment "${sopts.defaultName}" has no entry; systemd-boot will boot the first sysprime entry in its order`);
      }

      const kernelPlan = await planKernelCopies(esp, entries);

      const own = listOwn();
      const existing = byName(own);
      const desired = new Map<string, { text: string; rank: Rank }>();
      const result: SyncResult = { loader: 'systemd-boot', added: [], updated: [], kept: [], removed: [], warnings, drift };
      const copiedFor = new Set(kernelPlan.copies.map((c) => c.name));
      for (const e of entries) {
        const before = existing.get(e.name);
        const counting: Counting =
          before?.counting ?? (sopts.staged?.name === e.name && sopts.staged.tries > 0 ? { state: 'counting', left: sopts.staged.tries, done: 0 } : { state: 'blessed' });
        const rank = rankOf(e.name, sopts.defaultName, sopts.fallbackName);
        const file = entryFileName(e.name, counting);
        const text = renderBlsEntry(e, kernelPlan.paths.get(e.name)!, rank);
        desired.set(file, { text, rank });
        if (!before) {
          result.added.push(e.name);
          drift.push({ kind: 'entry-missing', name: e.name, what: `"${e.name}" has no entry in ${entriesDir}` });
        } else if (before.file !== file || before.text !== text || copiedFor.has(e.name)) {
          result.updated.push(e.name);
          const absent = kernelPlan.copies.filter((c) => c.name === e.name && !existsSync(c.dest));
          if (absent.length > 0) drift.push({ kind: 'kernel-missing', name: e.name, what: `the entry ${before.file} boots ${absent.map((c) => c.dest).join(' and ')}, which is missing` });
          else drift.push({ kind: 'entry-stale', name: e.name, what: `the entry ${before.file} or its kernel on the ESP differs from what sysprime writes` });
        } else result.kept.push(e.name);
      }
      const live = new Set(entries.map((e) => e.name));
      for (const e of own) {
        if (live.has(e.name)) continue;
        drift.push(
          computed.withoutKernel.includes(e.name)
            ? { kind: 'kernel-missing', name: e.name, what: `the entry ${e.file} boots a kernel "${e.name}" no longer has, and it has no other` }
            : { kind: 'entry-orphaned', name: e.name, what: `the entry ${e.file} names "${e.name}", which does not exist` },
        );
      }
      const confText = readText(loaderConf);
      if (confText === null || loaderConfValue(parseLoaderConf(confText), 'default') !== DEFAULT_PATTERN) {
        drift.push({ kind: 'default', name: null, what: `${loaderConf} does not say "default ${DEFAULT_PATTERN}"` });
      }
      if (sopts.dryRun) return result;

      // Nothing is written before everything is known to fit.
      checkSpace(esp, kernelPlan, opts.freeBytes);
      await copyKernels(esp, kernelPlan);
      const swapped = swap(desired, own);
      result.removed = [...new Set(swapped.removed.map((f) => parseEntryFileName(f)!.name).filter((n) => !live.has(n)))];
      pruneKernels(esp, kernelPlan);
      ensureLoaderDefault();
      return result;
    },

    async setDefault(name: string) {
      const own = listOwn();
      const map = byName(own);
      const target = map.get(name);
      if (!target) {
        throw new SysprimeError('NOT_FOUND', `environment "${name}" has no systemd-boot entry in ${entriesDir}`, {
          hint: 'its boot entries are written by `sysprime activate`/`stage`; see `sysprime doctor`',
        });
      }
      const oldDefault = [...map.values()].find((e) => rankInText(e.text) === 'default' && e.name !== name);
      const oldFallback = [...map.values()].find((e) => rankInText(e.text) === 'fallback' && e.name !== name);
      // The old default stays one step away: it becomes the fallback, unless one is already set.
      const fallback = oldFallback?.name ?? oldDefault?.name;
      const desired = new Map<string, { text: string; rank: Rank }>();
      for (const e of map.values()) {
        const rank = rankOf(e.name, name, fallback);
        desired.set(e.file, { text: rankInText(e.text) === rank ? e.text : reRank(e.text, rank), rank });
      }
      swap(desired, own);
      ensureLoaderDefault();
    },

    async setOneShot(name: string) {
      const entry = byName(listOwn()).get(name);
      if (!entry) {
        throw new SysprimeError('NOT_FOUND', `environment "${name}" has no systemd-boot entry in ${entriesDir}`, { hint: 'see `sysprime doctor`' });
      }
      if (!bootedBySystemdBoot()) {
        throw new SysprimeError('REFUSED', 'this machine was not started by systemd-boot (no LoaderInfo EFI variable), so it cannot be told which entry to boot once', {
          hint: `a one-shot boot is the EFI variable LoaderEntryOneShot, which only a running systemd-boot reads; use \`sysprime activate ${name}\` instead`,
        });
      }
      await runner('bootctl', ['set-oneshot', entry.file]);
    },

    async inspect(): Promise<BootState> {
      const warnings: string[] = [];
      const own = listOwn();
      const entries: InspectedEntry[] = own.map((e) => {
        const fields = parseBlsEntry(e.text);
        const linux = fields.get('linux')?.[0] ?? null;
        const version = fields.get('version')?.[0];
        return {
          name: e.name,
          ref: e.file,
          title: fields.get('title')?.[0] ?? null,
          generation: version !== undefined && /^\d+$/.test(version) ? Number(version) : null,
          kernelVersion: linux === null ? null : (/vmlinuz-(.+)$/.exec(linux)?.[1] ?? null),
          counting: e.counting,
        };
      });
      const confText = readText(loaderConf);
      let pattern = confText === null ? null : loaderConfValue(parseLoaderConf(confText), 'default');
      if (pattern !== DEFAULT_PATTERN) warnings.push(`loader.conf has ${pattern === null ? 'no default line' : `"default ${pattern}"`}; sysprime writes "default ${DEFAULT_PATTERN}"`);
      const efiDefault = readLoaderVariable(efivars, 'LoaderEntryDefault');
      if (efiDefault !== null) {
        warnings.push(`the EFI variable LoaderEntryDefault (${efiDefault}) overrides loader.conf; clear it with \`bootctl set-default ""\``);
        pattern = efiDefault;
      }
      const oneShot = readLoaderVariable(efivars, 'LoaderEntryOneShot');
      const all = allEntriesForPrediction();
      const next = predictBoot(all, { defaultPattern: pattern });
      const once = oneShot === null ? undefined : bootOrder(all).find((e) => globMatch(oneShot, e.id));
      return {
        loader: 'systemd-boot',
        entries,
        defaultName: next?.name ?? null,
        oneShotName: once?.name ?? null,
        warnings,
      };
    },
  };
  return loader;
}
