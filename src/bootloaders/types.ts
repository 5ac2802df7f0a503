/**
 * The bootloader seam. The core computes one list of boot entries from the
 * environments (entries.ts); each bootloader only translates that list into
 * its own files or properties, and writes the whole set at once so that a
 * crash leaves either the old set or the new one, never a mixture of halves.
 *
 * Bootloaders never decide which environments exist or which is the default:
 * the caller says so, and they report what they added, removed and kept.
 */
import type { run } from '../process/run.js';

export type LoaderName = 'systemd-boot' | 'grub' | 'zfsbootmenu' | 'none';

export type { RootLocation } from '../backends/types.js';
import type { RootLocation } from '../backends/types.js';

/** What the caller knows about one environment that should be bootable. */
export interface BootEnvironment {
  name: string;
  generation: number;
  created: Date;
  /** The admin's description (one printable line, checked before it was kept), shown in the entry's title. */
  description?: string | null;
  /** Kernel arguments that select the root (see rootArgsFor in bls.ts). */
  rootArgs: string;
  /** Further kernel arguments (`[boot] cmdline`). */
  cmdline: string;
  root: RootLocation;
  /** A directory where the environment's tree can be read (its `/boot` holds the kernels). */
  tree: string;
}

/** One kernel found in an environment's `/boot`. */
export interface KernelPair {
  version: string;
  /** Absolute paths (inside the readable tree). */
  kernel: string;
  initrd: string | null;
  /** The same, relative to the environment's root: `/boot/vmlinuz-<version>`. */
  kernelInTree: string;
  initrdInTree: string | null;
  /**
   * The readable tree the paths are in, when they were found in one: the
   * files are then read through the confined reader (src/os/confined.ts),
   * never through a link the environment holds.
   */
  tree?: string;
}

/** The bootloader-neutral entry the core computes for one environment. */
export interface BootEntry {
  /** `sysprime-<name>`: the stable part of every bootloader's identifier. */
  id: string;
  name: string;
  generation: number;
  created: Date;
  title: string;
  /** Kernel command line: root arguments, then the extra ones. */
  options: string;
  /** Only the extra arguments (bootloaders that select the root themselves need these). */
  cmdline: string;
  root: RootLocation;
  kernel: KernelPair;
}

/** Boot counting state of an entry (Automatic Boot Assessment). */
export type Counting =
  /** Never counted, or already blessed as good. */
  | { state: 'blessed' }
  | { state: 'counting'; left: number; done: number }
  /** Tries used up: the bootloader sorts it last and boots something else. */
  | { state: 'bad'; done: number }
  /** The bootloader cannot count. */
  | { state: 'unsupported' };

export interface InspectedEntry {
  name: string;
  /** The bootloader's own identifier (file name, menu id, dataset). */
  ref: string;
  title: string | null;
  generation: number | null;
  kernelVersion: string | null;
  counting: Counting;
}

export interface BootState {
  loader: LoaderName;
  entries: InspectedEntry[];
  /** The environment the bootloader will boot by default, as far as sysprime can tell. */
  defaultName: string | null;
  /** The environment chosen for the next boot only, if one is set. */
  oneShotName: string | null;
  /** Things an admin should know (a default that no entry matches, a setting that defeats one-shot). */
  warnings: string[];
}

export interface SyncOptions {
  /** The environment to boot by default. */
  defaultName: string;
  /**
   * Where to go when the default is a counting entry whose tries run out:
   * normally the environment running now, which is known to boot.
   */
  fallbackName?: string;
  /** A freshly staged environment that gets boot counting (when the bootloader has it). */
  staged?: { name: string; tries: number };
  /** Work out what would change and report it in `drift`, but write nothing (`sysprime doctor`). */
  dryRun?: boolean;
}

/**
 * One way the bootloader's files or properties differ from what the
 * environments call for: what `sysprime doctor` reports and what a sync
 * repairs.
 */
export type DriftKind =
  /** An environment with a kernel has no entry (or, on ZFSBootMenu, no command line property). */
  | 'entry-missing'
  /** An entry for an environment that no longer exists. */
  | 'entry-orphaned'
  /** An entry that differs from what sysprime would write (title, arguments, rank, kernel version). */
  | 'entry-stale'
  /** An entry whose kernel or initramfs is not where it points. */
  | 'kernel-missing'
  /** An environment with no kernel in its /boot: it cannot get an entry. */
  | 'no-kernel'
  /** The bootloader's default (or one-shot) is not the environment sysprime says. */
  | 'default';

export interface BootDrift {
  kind: DriftKind;
  /** The environment concerned, when there is one. */
  name: string | null;
  what: string;
}

export interface SyncResult {
  loader: LoaderName;
  /** Environment names. */
  added: string[];
  /** Present before, rewritten because something in it changed. */
  updated: string[];
  kept: string[];
  removed: string[];
  /** Environments that got no entry (no kernel, a name the bootloader cannot hold) and other notes. */
  warnings: string[];
  /** What differed before this sync (with `dryRun`: what still differs). */
  drift: BootDrift[];
}

export interface Capabilities {
  oneShot: boolean;
  counting: boolean;
  /** Entries live in files sysprime writes (false: the bootloader finds environments itself). */
  ownsEntries: boolean;
}

export interface Bootloader {
  readonly name: LoaderName;
  readonly capabilities: Capabilities;
  /** Human name for messages: "systemd-boot on /boot/efi". */
  describe(): string;
  /** Check tools and paths; never writes. */
  probe(): Promise<void>;
  /** Write the whole set of entries for these environments (the only ones that will be bootable). */
  sync(envs: readonly BootEnvironment[], opts: SyncOptions): Promise<SyncResult>;
  /** Make an environment that already has an entry the default. */
  setDefault(name: string): Promise<void>;
  /** Boot an environment once, at the next boot only. */
  setOneShot(name: string): Promise<void>;
  inspect(): Promise<BootState>;
  /**
   * Called early at each boot (before services start), when present: undo a
   * one-shot that the bootloader cannot undo by itself.
   */
  bootStarted?(): Promise<string[]>;
  /** Called once the boot is known good, when present: bless the booted entry. */
  bootComplete?(): Promise<string[]>;
  /** Where the bootloader copies kernels to the ESP: its free space and what each environment holds there. */
  espUsage?(): Promise<EspUsage>;
  /**
   * What adopting the machine (`init`) must change so that every environment
   * boots through this bootloader; reads only. Absent or null: nothing.
   */
  planHome?(): Promise<BootHome | null>;
}

/** A change to the bootloader's own files that adoption makes, decided before anything changes. */
export interface BootHome {
  /** What will change, in words. */
  what: string;
  /** Lines every environment's /etc/fstab must hold (written into the adopted one before its pristine snapshot). */
  fstabLines: string[];
  /** systemd units every environment must have enabled (sysprime's boot hooks this bootloader relies on). */
  units: string[];
  /** Risks that stay, for the admin. */
  warnings: string[];
  /** Carry it out; safe to run again after a crash. Returns what it did. */
  apply(): Promise<string[]>;
}

export interface EspUsage {
  /** Bytes free on the ESP for kernels (less what the entries and the filesystem keep). */
  free: number;
  /** Bytes one more environment's kernel and initramfs take: the largest set there now. */
  need: number;
  /** Bytes of each environment's own kernel files on the ESP. */
  perEnvironment: Map<string, number>;
}

/** The process runner, injectable so tests can see which commands would run. */
export type Runner = typeof run;
