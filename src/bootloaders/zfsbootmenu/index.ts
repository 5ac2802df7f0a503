/**
 * ZFSBootMenu: it finds boot environments itself (every dataset mounted at
 * `/` with kernels in its `/boot`), so sysprime writes no entries; it sets
 * each environment's `org.zfsbootmenu:commandline` and the pool's `bootfs`
 * (the default). ZFSBootMenu adds `root=zfs:<dataset>` itself, so only the
 * extra arguments go in the property.
 *
 * It has no one-shot and no boot counting. A one-shot is emulated: the
 * current bootfs is saved in a pool property and bootfs points at the
 * target; early in the next boot, bootStarted() puts the saved one back.
 * The target is saved too: when bootfs no longer names it, someone chose a
 * new default since (`activate`, `zpool set bootfs`), and the one-shot is
 * void rather than undoing that choice at the next boot.
 */
import { SysprimeError } from '../../errors.js';
import { run as defaultRun } from '../../process/run.js';
import type { BootDrift, BootEnvironment, BootState, Bootloader, InspectedEntry, Runner, SyncOptions, SyncResult } from '../types.js';
import { computeEntries, noKernelDrift } from '../entries.js';
import { findKernel } from '../kernels.js';

export const CMDLINE_PROP = 'org.zfsbootmenu:commandline';
/** On the pool's root dataset: the bootfs to put back at the next boot. */
export const ONESHOT_RESTORE_PROP = 'org.sysprime:oneshot-restore';
/** On the pool's root dataset: the bootfs the one-shot set. */
export const ONESHOT_TARGET_PROP = 'org.sysprime:oneshot-target';
const GENERATION_PROP = 'org.sysprime:generation';

export interface ZfsBootMenuOptions {
  pool: string;
  run?: Runner;
}

interface PropRow {
  name: string;
  property: string;
  value: string;
  source: string;
}

/** `zfs get -H -o name,property,value,source` output. */
function parsePropRows(text: string): PropRow[] {
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const [name = '', property = '', value = '', source = ''] = l.split('\t');
      return { name, property, value, source };
    });
}

export function createZfsBootMenu(opts: ZfsBootMenuOptions): Bootloader {
  const pool = opts.pool;
  const runner = opts.run ?? defaultRun;
  const rootContainer = `${pool}/ROOT`;
  const datasetOf = (name: string): string => `${rootContainer}/${name}`;

  async function bootfs(): Promise<string | null> {
    const out = await runner('zpool', ['list', '-H', '-o', 'bootfs', pool]);
    const v = out.stdout.trim();
    return v === '' || v === '-' ? null : v;
  }

  async function getProps(datasets: readonly string[], props: readonly string[]): Promise<PropRow[]> {
    if (datasets.length === 0) return [];
    const out = await runner('zfs', ['get', '-H', '-o', 'name,property,value,source', props.join(','), ...datasets]);
    return parsePropRows(out.stdout);
  }

  /** The saved one-shot, if one was set: the bootfs to restore and the one it set. */
  async function savedOneShot(): Promise<{ restore: string; target: string | null } | null> {
    const rows = await getProps([pool], [ONESHOT_RESTORE_PROP, ONESHOT_TARGET_PROP]);
    const local = (prop: string): string | null => {
      const row = rows.find((r) => r.property === prop);
      return row && row.source === 'local' && row.value !== '-' ? row.value : null;
    };
    const restore = local(ONESHOT_RESTORE_PROP);
    return restore === null ? null : { restore, target: local(ONESHOT_TARGET_PROP) };
  }

  /** The bootfs to restore when a one-shot still waits for its boot, else null. */
  async function pendingRestore(current?: string | null): Promise<string | null> {
    const saved = await savedOneShot();
    if (saved === null) return null;
    const bootfsNow = current === undefined ? await bootfs() : current;
    return saved.target === null || saved.target === bootfsNow ? saved.restore : null;
  }

  const clearOneShot = async (): Promise<void> => {
    await runner('zfs', ['inherit', ONESHOT_RESTORE_PROP, pool]);
    await runner('zfs', ['inherit', ONESHOT_TARGET_PROP, pool]);
  };

  async function datasetExists(ds: string): Promise<boolean> {
    return (await runner('zfs', ['list', '-H', '-o', 'name', ds], { allowFailure: true })).exitCode === 0;
  }

  async function requireEnvironment(name: string): Promise<string> {
    const ds = datasetOf(name);
    const res = await runner('zfs', ['list', '-H', '-o', 'name', ds], { allowFailure: true });
    if (res.exitCode !== 0) {
      throw new SysprimeError('NOT_FOUND', `there is no dataset ${ds} for ZFSBootMenu to boot`, { hint: 'see `sysprime list`' });
    }
    return ds;
  }

  const loader: Bootloader = {
    name: 'zfsbootmenu',
    capabilities: { oneShot: true, counting: false, ownsEntries: false },

    describe: () => `ZFSBootMenu on pool ${pool}`,

    async probe() {
      const res = await runner('zpool', ['list', '-H', '-o', 'name', pool], { allowFailure: true });
      if (res.exitCode !== 0) {
        throw new SysprimeError('NOT_FOUND', `pool ${pool} is not imported, so ZFSBootMenu's properties cannot be set`, { hint: 'import the pool, or set [zfs] pool' });
      }
    },

    async sync(envs: readonly BootEnvironment[], sopts: SyncOptions): Promise<SyncResult> {
      const warnings: string[] = [];
      const onPool = envs.filter((e) => {
        const ok = e.root.fs === 'zfs' && e.root.dataset === datasetOf(e.name);
        if (!ok) warnings.push(`environment "${e.name}" is not a dataset under ${rootContainer}; ZFSBootMenu cannot boot it`);
        return ok;
      });
      const computed = computeEntries(onPool, findKernel);
      warnings.push(...computed.warnings.map((w) => `${w} (ZFSBootMenu will not list it)`));
      if (sopts.staged && sopts.staged.tries > 0 && !sopts.dryRun) {
        warnings.push(
          `ZFSBootMenu has no boot counting: if "${sopts.staged.name}" fails to boot, pick another environment in its menu (Escape during the countdown); \`sysprime activate --once\` tries one without changing the default`,
        );
      }
      const drift: BootDrift[] = noKernelDrift(computed.withoutKernel);
      const result: SyncResult = { loader: 'zfsbootmenu', added: [], updated: [], kept: [], removed: [], warnings, drift };
      // Every change is worked out first, so a dry run reports exactly what a sync does.
      const actions: string[][] = [];
      const rows = await getProps(
        computed.entries.map((e) => datasetOf(e.name)),
        [CMDLINE_PROP],
      );
      for (const e of computed.entries) {
        const ds = datasetOf(e.name);
        const row = rows.find((r) => r.name === ds);
        const local = row !== undefined && row.source === 'local';
        const want = e.cmdline;
        if (want === '') {
          if (local) {
            actions.push(['zfs', 'inherit', CMDLINE_PROP, ds]);
            result.updated.push(e.name);
            drift.push({ kind: 'entry-stale', name: e.name, what: `${ds} has ${CMDLINE_PROP}="${row.value}", and the command line to carry is empty` });
          } else result.kept.push(e.name);
          continue;
        }
        if (local && row.value === want) {
          result.kept.push(e.name);
          continue;
        }
        actions.push(['zfs', 'set', `${CMDLINE_PROP}=${want}`, ds]);
        if (local) {
          result.updated.push(e.name);
          drift.push({ kind: 'entry-stale', name: e.name, what: `${ds} has ${CMDLINE_PROP}="${row.value}", not "${want}"` });
        } else {
          result.added.push(e.name);
          drift.push({ kind: 'entry-missing', name: e.name, what: `${ds} has no ${CMDLINE_PROP} (want "${want}")` });
        }
      }
      const current = await bootfs();
      const saved = await savedOneShot();
      const pending = await pendingRestore(current);
      if (saved !== null && pending === null) {
        // bootfs was changed after the one-shot was set: that choice stands.
        actions.push(['zfs', 'inherit', ONESHOT_RESTORE_PROP, pool], ['zfs', 'inherit', ONESHOT_TARGET_PROP, pool]);
        drift.push({ kind: 'default', name: null, what: `a one-shot boot of ${saved.target ?? '?'} was replaced by bootfs ${current ?? '-'}; its saved restore value ${saved.restore} is stale` });
      } else if (pending !== null && !(await datasetExists(pending))) {
        actions.push(['zfs', 'inherit', ONESHOT_RESTORE_PROP, pool], ['zfs', 'inherit', ONESHOT_TARGET_PROP, pool]);
        drift.push({ kind: 'default', name: null, what: `the one-shot boot would give bootfs back to ${pending}, which does not exist` });
      }
      if (computed.entries.some((e) => e.name === sopts.defaultName)) {
        const want = datasetOf(sopts.defaultName);
        // While a one-shot waits, bootfs is the one-shot target: that is the backend's default too, and stays.
        if (pending === null && current !== want) {
          actions.push(['zpool', 'set', `bootfs=${want}`, pool]);
          drift.push({ kind: 'default', name: sopts.defaultName, what: `pool ${pool} has bootfs ${current ?? '-'}, not ${want}` });
        }
      } else {
        warnings.push(`the default environment "${sopts.defaultName}" has no kernel; bootfs is left as it is`);
      }
      if (sopts.dryRun) return result;
      for (const [cmd, ...args] of actions) await runner(cmd!, args);
      return result;
    },

    async setDefault(name: string) {
      const ds = await requireEnvironment(name);
      await runner('zpool', ['set', `bootfs=${ds}`, pool]);
      // A choice made now replaces a one-shot still waiting to be undone.
      if ((await savedOneShot()) !== null) await clearOneShot();
    },

    async setOneShot(name: string) {
      const ds = await requireEnvironment(name);
      const current = await bootfs();
      if (current === null) {
        throw new SysprimeError('REFUSED', `pool ${pool} has no bootfs, so there is no default to come back to after a one-shot boot`, {
          hint: 'make an environment the default first with `sysprime activate NAME`',
        });
      }
      // Saved before bootfs changes, the target first: a crash in between leaves
      // bootfs as it was, and a saved target that bootfs does not name is void.
      const earlier = await pendingRestore(current);
      await runner('zfs', ['set', `${ONESHOT_TARGET_PROP}=${ds}`, pool]);
      if (earlier === null) await runner('zfs', ['set', `${ONESHOT_RESTORE_PROP}=${current}`, pool]);
      await runner('zpool', ['set', `bootfs=${ds}`, pool]);
    },

    async inspect(): Promise<BootState> {
      const list = await runner('zfs', ['list', '-H', '-o', 'name', '-r', rootContainer], { allowFailure: true });
      const datasets = list.stdout
        .split('\n')
        .filter((d) => d.startsWith(`${rootContainer}/`) && !d.slice(rootContainer.length + 1).includes('/') && !d.slice(rootContainer.length + 1).startsWith('.'));
      const rows = await getProps(datasets, [GENERATION_PROP, CMDLINE_PROP]);
      const entries: InspectedEntry[] = datasets.map((ds) => {
        const gen = rows.find((r) => r.name === ds && r.property === GENERATION_PROP)?.value;
        return {
          name: ds.slice(rootContainer.length + 1),
          ref: ds,
          title: null,
          generation: gen !== undefined && /^\d+$/.test(gen) ? Number(gen) : null,
          kernelVersion: null,
          counting: { state: 'unsupported' },
        };
      });
      const current = await bootfs();
      const restore = await pendingRestore(current);
      const warnings: string[] = [];
      if (current !== null && !current.startsWith(`${rootContainer}/`)) warnings.push(`bootfs is ${current}, outside ${rootContainer}`);
      const nameIn = (ds: string | null): string | null => (ds !== null && ds.startsWith(`${rootContainer}/`) ? ds.slice(rootContainer.length + 1) : null);
      return {
        loader: 'zfsbootmenu',
        entries,
        defaultName: nameIn(restore ?? current),
        oneShotName: restore !== null ? nameIn(current) : null,
        warnings,
      };
    },

    async bootStarted() {
      const saved = await savedOneShot();
      if (saved === null) return [];
      const restore = await pendingRestore();
      if (restore !== null) await runner('zpool', ['set', `bootfs=${restore}`, pool]);
      await clearOneShot();
      return restore === null ? [`a one-shot boot was replaced by a new default before it happened; bootfs stays`] : [`one-shot boot done; bootfs is ${restore} again`];
    },
  };
  return loader;
}
