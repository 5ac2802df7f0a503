/**
 * The configuration model: every key, its type and its default. The table
 * here is the single source of truth; man/sysprime.toml.5 documents it and a
 * test checks that every key is documented.
 */
import type { Window } from './windows.js';

export type BackendKind = 'btrfs' | 'zfs';
export type LoaderKind = 'auto' | 'none' | 'systemd-boot' | 'grub' | 'zfsbootmenu';
export type UpdateMethod = 'none' | 'apt' | 'store' | 'command';
export type HashName = 'xxh64' | 'sha256' | 'md5';
export type RebootPolicy = 'never' | 'window' | 'immediate';

export interface Config {
  /** Absent means: detect from the filesystem of `/`. */
  backend: BackendKind | undefined;
  /** sharedSubvolumes: nested subvolumes shared by every environment, added to the built-in ones. */
  btrfs: { top: string; device: string | undefined; sharedSubvolumes: string[] };
  zfs: { pool: string | undefined };
  state: { dir: string };
  boot: { loader: LoaderKind; esp: string | undefined; tries: number; activateStaged: boolean; cmdline: string };
  /** Where GRUB keeps its files: sysprime writes its menu and grubenv in `dir` and a script in `scripts`. */
  grub: { dir: string; defaults: string; scripts: string };
  /**
   * trustedKeys: public key files (`sysprime key generate`) a store index must be signed by;
   * allowUnsigned: take an unsigned index from a local repository (testing only).
   */
  update: {
    method: UpdateMethod;
    command: string | undefined;
    chroot: boolean;
    repository: string | undefined;
    timeout: number;
    trustedKeys: string[];
    allowUnsigned: boolean;
    /** The store repository's id the machine follows, when it moves to another (a pin); undefined: the one its trees came from. */
    repositoryId: string | undefined;
  };
  /** keepDays: environments younger than this many days are kept too (0: off). */
  /** keepAuto: environments the apt hook made, counted apart from `keep`. */
  retention: { keep: number; keepDays: number; keepAuto: number; keepSnapshots: number; minFreePercent: number };
  /** The environment made before each package operation (src/environments/apt-hook.ts); timeout in seconds. */
  aptHook: { enabled: boolean; timeout: number };
  schedule: { stage: string; drift: string; prune: string; randomDelay: number };
  bart: { hash: HashName; rules: string | undefined };
  /** Paths (fnmatch patterns) whose content drift never shows without --show-secrets. */
  drift: { secret: string[] };
  /** Paths kept the same in every environment, beyond the built-in ones (docs/shared-data.md). */
  shared: { paths: string[] };
  /** key: the machine key of the drift baselines, its private half (signs and checks) or only its public half (checks). */
  audit: { key: string | undefined; trustedKeys: string[] };
  /** When a staged, activated environment is booted into (src/reboot/, docs/fleet.md). */
  reboot: { policy: RebootPolicy; windows: Window[]; command: string };
  /**
   * Reboot slots shared with other machines through etcd (src/fleet/); no
   * endpoints: no fleet. leaseTtl: seconds a slot outlives a machine that
   * took it and never came back healthy.
   */
  fleet: {
    endpoints: string[];
    group: string;
    slots: number;
    id: string | undefined;
    after: string[];
    leaseTtl: number;
    timeout: number;
    prefix: string;
    caFile: string | undefined;
    certFile: string | undefined;
    keyFile: string | undefined;
    username: string | undefined;
    passwordFile: string | undefined;
  };
  /**
   * Health checks after boot (src/health/): `required` units must be active,
   * scripts in `dir`/required must pass (`dir`/wanted only warn), within
   * `timeout` seconds; a failure falls back at most `maxReboots` times.
   */
  health: { required: string[]; dir: string; timeout: number; maxReboots: number };
  /** The Prometheus text-format file of this machine's state (src/metrics/), node_exporter's textfile collector. */
  metrics: { textfile: string | undefined };
  /** Where the configuration came from (a path, or "defaults"). */
  source: string;
}

export const DEFAULTS: Config = {
  backend: undefined,
  btrfs: { top: '/run/sysprime/top', device: undefined, sharedSubvolumes: [] },
  zfs: { pool: undefined },
  state: { dir: '/var/lib/sysprime/state' },
  boot: { loader: 'auto', esp: undefined, tries: 3, activateStaged: false, cmdline: '' },
  grub: { dir: '/boot/grub', defaults: '/etc/default/grub', scripts: '/etc/grub.d' },
  update: { method: 'none', command: undefined, chroot: true, repository: undefined, timeout: 3600, trustedKeys: [], allowUnsigned: false, repositoryId: undefined },
  retention: { keep: 5, keepDays: 0, keepAuto: 10, keepSnapshots: 10, minFreePercent: 20 },
  aptHook: { enabled: true, timeout: 20 },
  schedule: { stage: '0 4 * * *', drift: '30 * * * *', prune: '0 5 * * *', randomDelay: 1800 },
  bart: { hash: 'xxh64', rules: undefined },
  drift: { secret: [] },
  shared: { paths: [] },
  audit: { key: undefined, trustedKeys: [] },
  reboot: { policy: 'never', windows: [], command: 'systemctl reboot' },
  fleet: {
    endpoints: [],
    group: 'default',
    slots: 1,
    id: undefined,
    after: [],
    leaseTtl: 1800,
    timeout: 10,
    prefix: '/sysprime/fleet',
    caFile: undefined,
    certFile: undefined,
    keyFile: undefined,
    username: undefined,
    passwordFile: undefined,
  },
  health: { required: [], dir: '/etc/sysprime/health.d', timeout: 300, maxReboots: 1 },
  metrics: { textfile: undefined },
  source: 'defaults',
};

type Kind =
  | { t: 'string'; oneLine?: boolean }
  | { t: 'path' }
  /** rulesSafe: each path becomes a subtree line of the drift rules, so nothing a rules line would read otherwise. */
  | { t: 'paths'; rulesSafe?: boolean }
  | { t: 'enum'; values: readonly string[] }
  | { t: 'int'; min: number; max: number }
  | { t: 'bool' }
  | { t: 'cron' }
  /** A list of maintenance windows (config/windows.ts). */
  | { t: 'windows' }
  /** A list of etcd endpoints, http:// or https:// with host and port. */
  | { t: 'urls' }
  /** A fleet group name: letters, digits, '-', '_', '.'; 'list' for a list of them. */
  | { t: 'group'; list?: boolean }
  /** A list of systemd unit names. */
  | { t: 'units' };

/** TOML key (section.key) -> type and the field it sets. */
export const KEYS: Record<string, { kind: Kind; set: (c: Config, v: unknown) => void; doc: string }> = {
  backend: { kind: { t: 'enum', values: ['btrfs', 'zfs'] }, set: (c, v) => (c.backend = v as BackendKind), doc: 'filesystem backend' },
  'btrfs.top': { kind: { t: 'path' }, set: (c, v) => (c.btrfs.top = v as string), doc: 'where the top-level subvolume is mounted' },
  'btrfs.device': { kind: { t: 'path' }, set: (c, v) => (c.btrfs.device = v as string), doc: 'block device of the Btrfs filesystem' },
  'btrfs.shared_subvolumes': {
    kind: { t: 'paths' },
    set: (c, v) => (c.btrfs.sharedSubvolumes = v as string[]),
    doc: 'nested subvolumes shared by every environment, never copied into a clone',
  },
  'zfs.pool': { kind: { t: 'string' }, set: (c, v) => (c.zfs.pool = v as string), doc: 'pool holding ROOT/' },
  'state.dir': { kind: { t: 'path' }, set: (c, v) => (c.state.dir = v as string), doc: 'directory of the state database' },
  'boot.loader': {
    kind: { t: 'enum', values: ['auto', 'none', 'systemd-boot', 'grub', 'zfsbootmenu'] },
    set: (c, v) => (c.boot.loader = v as LoaderKind),
    doc: 'bootloader',
  },
  'boot.esp': { kind: { t: 'path' }, set: (c, v) => (c.boot.esp = v as string), doc: 'EFI system partition mount point' },
  'boot.tries': { kind: { t: 'int', min: 0, max: 99 }, set: (c, v) => (c.boot.tries = v as number), doc: 'boot counting tries for a staged entry' },
  'boot.activate_staged': { kind: { t: 'bool' }, set: (c, v) => (c.boot.activateStaged = v as boolean), doc: 'make a staged environment the default' },
  // One line: a newline would end the entry's options line and start a directive of its own.
  'boot.cmdline': { kind: { t: 'string', oneLine: true }, set: (c, v) => (c.boot.cmdline = v as string), doc: 'extra kernel command line' },
  'grub.dir': { kind: { t: 'path' }, set: (c, v) => (c.grub.dir = v as string), doc: 'GRUB directory (grub.cfg, grubenv)' },
  'grub.defaults': { kind: { t: 'path' }, set: (c, v) => (c.grub.defaults = v as string), doc: 'not used any more: sysprime\'s menu sets GRUB\'s default itself, whatever GRUB_DEFAULT says; accepted so older files still load' },
  'grub.scripts': { kind: { t: 'path' }, set: (c, v) => (c.grub.scripts = v as string), doc: 'directory of the scripts update-grub runs' },
  'update.method': {
    kind: { t: 'enum', values: ['none', 'apt', 'store', 'command'] },
    set: (c, v) => (c.update.method = v as UpdateMethod),
    doc: 'updater',
  },
  'update.command': { kind: { t: 'string' }, set: (c, v) => (c.update.command = v as string), doc: 'command for method=command' },
  'update.chroot': { kind: { t: 'bool' }, set: (c, v) => (c.update.chroot = v as boolean), doc: 'run the command chrooted' },
  'update.repository': { kind: { t: 'string' }, set: (c, v) => (c.update.repository = v as string), doc: 'store repository' },
  'update.trusted_keys': {
    kind: { t: 'paths' },
    set: (c, v) => (c.update.trustedKeys = v as string[]),
    doc: 'public key files; the store index must carry a good signature by one of them that has not expired',
  },
  'update.allow_unsigned': {
    kind: { t: 'bool' },
    set: (c, v) => (c.update.allowUnsigned = v as boolean),
    doc: 'accept an unsigned index from a local (directory or file:) store repository, for testing; never for http(s)',
  },
  'update.repository_id': {
    kind: { t: 'string' },
    set: (c, v) => (c.update.repositoryId = v as string),
    doc: 'the store repository id (in its signed index) to follow; needed to move to another repository',
  },
  'update.timeout': { kind: { t: 'int', min: 1, max: 86400 }, set: (c, v) => (c.update.timeout = v as number), doc: 'seconds' },
  'retention.keep': { kind: { t: 'int', min: 1, max: 1000 }, set: (c, v) => (c.retention.keep = v as number), doc: 'environments kept' },
  'retention.keep_days': {
    kind: { t: 'int', min: 0, max: 36500 },
    set: (c, v) => (c.retention.keepDays = v as number),
    doc: 'environments younger than this many days are kept too; 0 turns it off',
  },
  'retention.keep_auto': {
    kind: { t: 'int', min: 0, max: 1000 },
    set: (c, v) => (c.retention.keepAuto = v as number),
    doc: 'environments made by the apt hook kept, counted apart from keep',
  },
  'retention.keep_snapshots': {
    kind: { t: 'int', min: 0, max: 1000 },
    set: (c, v) => (c.retention.keepSnapshots = v as number),
    doc: 'snapshots kept per environment (`sysprime snapshot`), besides those younger than keep_days; a pinned environment keeps all of its own',
  },
  'retention.min_free_percent': {
    kind: { t: 'int', min: 0, max: 90 },
    set: (c, v) => (c.retention.minFreePercent = v as number),
    doc: 'free-space floor',
  },
  'apt_hook.enabled': {
    kind: { t: 'bool' },
    set: (c, v) => (c.aptHook.enabled = v as boolean),
    doc: 'make an environment before each apt run that changes packages',
  },
  'apt_hook.timeout': {
    kind: { t: 'int', min: 1, max: 600 },
    set: (c, v) => (c.aptHook.timeout = v as number),
    doc: 'seconds the apt hook may hold apt up before it lets apt go on without an environment',
  },
  'schedule.stage': { kind: { t: 'cron' }, set: (c, v) => (c.schedule.stage = v as string), doc: 'cron expression' },
  'schedule.drift': { kind: { t: 'cron' }, set: (c, v) => (c.schedule.drift = v as string), doc: 'cron expression' },
  'schedule.prune': { kind: { t: 'cron' }, set: (c, v) => (c.schedule.prune = v as string), doc: 'cron expression' },
  'schedule.random_delay': {
    kind: { t: 'int', min: 0, max: 86400 },
    set: (c, v) => (c.schedule.randomDelay = v as number),
    doc: 'seconds of random delay before a scheduled stage',
  },
  'bart.hash': { kind: { t: 'enum', values: ['xxh64', 'sha256', 'md5'] }, set: (c, v) => (c.bart.hash = v as HashName), doc: 'content hash' },
  'bart.rules': { kind: { t: 'path' }, set: (c, v) => (c.bart.rules = v as string), doc: 'rules file' },
  'drift.secret': { kind: { t: 'paths' }, set: (c, v) => (c.drift.secret = v as string[]), doc: 'paths whose content drift hides' },
  'audit.key': {
    kind: { t: 'path' },
    set: (c, v) => (c.audit.key = v as string),
    doc: 'machine key of the drift baselines: a private key signs pristine manifests and drift runs; a .pub file only checks them',
  },
  'audit.trusted_keys': {
    kind: { t: 'paths' },
    set: (c, v) => (c.audit.trustedKeys = v as string[]),
    doc: 'public halves of earlier audit keys: baselines and drift runs they signed still verify after [audit] key is replaced',
  },
  'shared.paths': { kind: { t: 'paths', rulesSafe: true }, set: (c, v) => (c.shared.paths = v as string[]), doc: 'further paths shared by every environment' },
  // When a staged environment is rebooted into, and with whom (docs/fleet.md).
  'reboot.policy': {
    kind: { t: 'enum', values: ['never', 'window', 'immediate'] },
    set: (c, v) => (c.reboot.policy = v as RebootPolicy),
    doc: 'when a staged, activated environment is rebooted into',
  },
  'reboot.windows': { kind: { t: 'windows' }, set: (c, v) => (c.reboot.windows = v as Window[]), doc: 'maintenance windows, local time' },
  'reboot.command': { kind: { t: 'string' }, set: (c, v) => (c.reboot.command = v as string), doc: 'the shell command that reboots' },
  'fleet.endpoints': { kind: { t: 'urls' }, set: (c, v) => (c.fleet.endpoints = v as string[]), doc: 'etcd endpoints' },
  'fleet.group': { kind: { t: 'group' }, set: (c, v) => (c.fleet.group = v as string), doc: 'the group of this machine' },
  'fleet.slots': { kind: { t: 'int', min: 1, max: 10000 }, set: (c, v) => (c.fleet.slots = v as number), doc: 'reboots at once in the group' },
  'fleet.id': { kind: { t: 'group' }, set: (c, v) => (c.fleet.id = v as string), doc: 'this machine in the fleet' },
  'fleet.after': { kind: { t: 'group', list: true }, set: (c, v) => (c.fleet.after = v as string[]), doc: 'groups that reboot into a generation first' },
  'fleet.lease_ttl': { kind: { t: 'int', min: 2, max: 604800 }, set: (c, v) => (c.fleet.leaseTtl = v as number), doc: 'seconds' },
  'fleet.timeout': { kind: { t: 'int', min: 1, max: 600 }, set: (c, v) => (c.fleet.timeout = v as number), doc: 'seconds' },
  'fleet.prefix': { kind: { t: 'string', oneLine: true }, set: (c, v) => (c.fleet.prefix = v as string), doc: 'etcd key prefix' },
  'fleet.ca_file': { kind: { t: 'path' }, set: (c, v) => (c.fleet.caFile = v as string), doc: 'CA certificate' },
  'fleet.cert_file': { kind: { t: 'path' }, set: (c, v) => (c.fleet.certFile = v as string), doc: 'client certificate' },
  'fleet.key_file': { kind: { t: 'path' }, set: (c, v) => (c.fleet.keyFile = v as string), doc: 'client key' },
  'fleet.username': { kind: { t: 'string', oneLine: true }, set: (c, v) => (c.fleet.username = v as string), doc: 'etcd user' },
  'health.required': { kind: { t: 'units' }, set: (c, v) => (c.health.required = v as string[]), doc: 'units that must be active after boot' },
  'health.dir': { kind: { t: 'path' }, set: (c, v) => (c.health.dir = v as string), doc: 'directory of the required/ and wanted/ check scripts' },
  'health.timeout': { kind: { t: 'int', min: 1, max: 86400 }, set: (c, v) => (c.health.timeout = v as number), doc: 'seconds for all checks together' },
  'health.max_reboots': { kind: { t: 'int', min: 0, max: 100 }, set: (c, v) => (c.health.maxReboots = v as number), doc: 'fallback reboots after failed checks' },
  'metrics.textfile': { kind: { t: 'path' }, set: (c, v) => (c.metrics.textfile = v as string), doc: 'Prometheus text-format file, such as /var/lib/prometheus/node-exporter/sysprime.prom' },
  'fleet.password_file': { kind: { t: 'path' }, set: (c, v) => (c.fleet.passwordFile = v as string), doc: 'file holding the etcd password' },
};

export function cloneDefaults(): Config {
  return structuredClone(DEFAULTS);
}
