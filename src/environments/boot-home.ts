/**
 * What adoption changes for the bootloader (`Bootloader.planHome`): GRUB's
 * directory moved to the ESP, the fstab line that mounts it in every
 * environment, and the boot hooks it relies on enabled. They go into the
 * adopted environment before its pristine snapshot, so every clone made
 * from it has them too and no drift reports them.
 */
import type { Context } from '../context.js';
import type { BootHome } from '../bootloaders/types.js';
import { SysprimeError } from '../errors.js';
import { log } from '../log.js';
import { lstatIn, readFileIn, symlinkIn, withDirIn, writeFileIn } from '../os/confined.js';
import { parseFstab } from '../os/mounts.js';
import { bootloaderFor } from './boot-entries.js';

/** The bootloader's plan for adoption; reads only, so init can refuse before changing anything. */
export async function planBootHome(ctx: Context): Promise<BootHome | null> {
  const home = (await (await bootloaderFor(ctx)).planHome?.()) ?? null;
  for (const w of home?.warnings ?? []) log.warn(w);
  return home;
}

/**
 * Append each line whose mount point `<tree>/etc/fstab` does not mount yet.
 * A line for the same mount point that differs is left as the admin wrote
 * it, with a warning. Written through the confined writer: the tree is an
 * environment.
 */
export function ensureFstabLines(tree: string, label: string, lines: readonly string[]): string[] {
  if (lines.length === 0) return [];
  return (
    withDirIn(tree, '/etc', { create: false }, (etc) => {
      const st = lstatIn(etc, 'fstab');
      if (st !== undefined && (st.isSymbolicLink() || !st.isFile())) {
        throw new SysprimeError('REFUSED', `/etc/fstab of ${label} is not a regular file, so sysprime cannot add ${lines.map((l) => l.split(/\s+/)[1]).join(', ')} to it`, {
          hint: 'make /etc/fstab a regular file, then try again',
        });
      }
      const text = (readFileIn(etc, 'fstab') ?? Buffer.alloc(0)).toString('latin1');
      const have = parseFstab(text);
      const added: string[] = [];
      for (const line of lines) {
        const want = parseFstab(line)[0]!;
        const same = have.find((e) => e.mountPoint === want.mountPoint);
        if (same === undefined) added.push(line);
        else if (same.source !== want.source) log.warn(`${label}: /etc/fstab mounts ${same.source} at ${want.mountPoint}; sysprime needs ${want.source} there (${line})`);
      }
      if (added.length === 0) return [];
      const body = text === '' || text.endsWith('\n') ? text : `${text}\n`;
      const note = '# Mounted in every boot environment (added by sysprime init)\n';
      writeFileIn(etc, 'fstab', Buffer.from(`${body}${note}${added.join('\n')}\n`, 'latin1'), st === undefined ? 0o644 : st.mode & 0o7777, st === undefined ? undefined : { uid: st.uid, gid: st.gid });
      for (const l of added) log.info(`${label}: /etc/fstab now holds: ${l}`);
      return added;
    }) ?? []
  );
}

// /lib/systemd/system too, on a system without merged /usr (there /lib is a link, which the confined reader refuses).
const UNIT_DIRS = ['/etc/systemd/system', '/usr/lib/systemd/system', '/lib/systemd/system'];

/** Whether the tree holds the unit file `<dir>/<unit>`, read without following links; a linked directory counts as no. */
function holdsUnit(tree: string, dir: string, unit: string): boolean {
  try {
    return withDirIn(tree, dir, { create: false }, (d) => lstatIn(d, unit)?.isFile() ?? false) ?? false;
  } catch {
    return false;
  }
}

/**
 * The target a unit file's `[Install] WantedBy=` names first (what
 * `systemctl enable` links it into), or multi-user.target when it names
 * none. Read through the confined reader: the tree is an environment.
 */
function wantedByOf(tree: string, file: string): string {
  const slash = file.lastIndexOf('/');
  const text = withDirIn(tree, file.slice(0, slash), { create: false }, (d) => readFileIn(d, file.slice(slash + 1)))?.toString('utf8') ?? '';
  let install = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) install = line === '[Install]';
    else if (install && line.startsWith('WantedBy=')) {
      const first = line.slice('WantedBy='.length).trim().split(/\s+/)[0];
      if (first !== undefined && /^[\w@.:-]+\.target$/.test(first)) return first;
    }
  }
  return 'multi-user.target';
}

/**
 * Enable each unit in a tree as `systemctl enable` does for sysprime's
 * hooks: a link in `<target>.wants` (the target its `[Install] WantedBy=`
 * names) to the unit file the tree holds. A unit the tree does not hold
 * (sysprime not installed there as a package) is a warning.
 */
function enableUnitsIn(tree: string, label: string, units: readonly string[]): string[] {
  const enabled: string[] = [];
  for (const unit of units) {
    const file = UNIT_DIRS.filter((d) => holdsUnit(tree, d, unit)).map((d) => `${d}/${unit}`)[0];
    if (file === undefined) {
      log.warn(`${label} has no ${unit} (in ${UNIT_DIRS.join(', ')}), so it cannot be enabled: install sysprime's units there and \`systemctl enable ${unit}\``);
      continue;
    }
    const made = withDirIn(tree, `/etc/systemd/system/${wantedByOf(tree, file)}.wants`, { create: true, mode: 0o755 }, (d) => {
      if (lstatIn(d, unit) !== undefined) return false;
      symlinkIn(d, unit, file);
      return true;
    });
    if (made === true) {
      enabled.push(unit);
      log.info(`${label}: enabled ${unit}`);
    }
  }
  return enabled;
}

/** The units a tree holds that are not enabled in it (no link in the `.wants` of the target their `WantedBy=` names). */
function unitsNotEnabledIn(tree: string, units: readonly string[]): string[] {
  return units.filter((unit) => {
    const file = UNIT_DIRS.filter((d) => holdsUnit(tree, d, unit)).map((d) => `${d}/${unit}`)[0];
    if (file === undefined) return false;
    const linked = withDirIn(tree, `/etc/systemd/system/${wantedByOf(tree, file)}.wants`, { create: false }, (d) => lstatIn(d, unit) !== undefined);
    return linked !== true;
  });
}

/** Which of `units` environment `name` holds but does not enable (opened for the time of the reads). */
export async function unitsNotEnabled(ctx: Context, name: string, units: readonly string[]): Promise<string[]> {
  const tree = await ctx.backend.openEnvironment(name);
  try {
    return unitsNotEnabledIn(tree.path, units);
  } finally {
    await tree.release();
  }
}

/** Enable sysprime's units in an environment (opened for the time of the writes). */
export async function unitsInto(ctx: Context, name: string, units: readonly string[]): Promise<void> {
  if (units.length === 0) return;
  const tree = await ctx.backend.openEnvironment(name);
  try {
    enableUnitsIn(tree.path, `environment "${name}"`, units);
  } finally {
    await tree.release();
  }
}

/** Put the plan's fstab lines (and `moreLines`) and units into an environment (opened for the time of the writes). */
export async function homeInto(ctx: Context, name: string, home: BootHome | null, moreLines: readonly string[] = []): Promise<void> {
  const lines = [...moreLines, ...(home?.fstabLines ?? [])];
  const units = home?.units ?? [];
  if (lines.length === 0 && units.length === 0) return;
  const tree = await ctx.backend.openEnvironment(name);
  try {
    ensureFstabLines(tree.path, `environment "${name}"`, lines);
    enableUnitsIn(tree.path, `environment "${name}"`, units);
  } finally {
    await tree.release();
  }
}
