/**
 * The state database's own subvolume, ROOT/.sysprime/state, mounted at the
 * state directory by a line in every environment's fstab (see
 * `Backend.stateHome`).
 */
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { run } from '../../process/run.js';
import { mountAt } from '../../os/mounts.js';
import type { StateHome } from '../types.js';
import { STATE_SUBVOLUME } from './layout.js';
import type { BtrfsTop } from './top.js';

export async function findStateHome(t: BtrfsTop, stateDir: string): Promise<StateHome | null> {
  const fs = await t.view();
  const uuid = await t.fsUuid(fs);
  const target = resolve(stateDir);
  const at = (await run('findmnt', ['-n', '-o', 'UUID', '--target', target], { allowFailure: true })).stdout.trim();
  if (at !== uuid) return null;
  const there = mountAt(fs.all, target);
  // The admin's own subvolume mounted there is already a home: never mounted over.
  if (there !== undefined && there.mountPoint === target && there.root !== `/${STATE_SUBVOLUME}`) return null;
  const ready = there?.mountPoint === target && there.root === `/${STATE_SUBVOLUME}`;
  return {
    id: STATE_SUBVOLUME,
    ready,
    fstabLine: `UUID=${uuid} ${target} btrfs subvol=/${STATE_SUBVOLUME} 0 0`,
    async ensure() {
      const done: string[] = [];
      const list = await t.subvolumes();
      if (!list.some((e) => e.path === STATE_SUBVOLUME)) {
        await run('btrfs', ['-q', 'subvolume', 'create', t.abs(STATE_SUBVOLUME)]);
        done.push(`created subvolume ${STATE_SUBVOLUME} for the state database`);
      }
      const now = await t.view();
      const mounted = mountAt(now.all, target);
      if (mounted === undefined || mounted.root !== `/${STATE_SUBVOLUME}`) {
        await mkdir(target, { recursive: true });
        const device = now.topMount.source.startsWith('/') ? now.topMount.source : (t.device ?? now.topMount.source);
        await run('mount', ['-t', 'btrfs', '-o', `subvol=/${STATE_SUBVOLUME}`, device, target]);
        done.push(`mounted ${STATE_SUBVOLUME} at ${target}`);
      }
      return { done, beside: null };
    },
  };
}
