/**
 * The Btrfs backend. The top-level subvolume (id 5) is mounted at `top`;
 * environments are subvolumes ROOT/<name>, pristine states read-only
 * snapshots ROOT/.pristine/<name>, metadata JSON files under ROOT/.sysprime/
 * (meta.ts). Everything is read from btrfs-progs and /proc/self/mountinfo on
 * each call; nothing is cached between calls, so another tool changing the
 * filesystem cannot make this one act on a stale picture.
 *
 * Crash safety: subvolumes are made under a `.partial-` name, their metadata
 * written, then renamed into place; destroy renames to a `.partial-` name
 * first. recover() deletes whatever `.partial-` subvolumes remain.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, rmdir, statfs } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { SysprimeError, messageOf } from '../../errors.js';
import { log } from '../../log.js';
import { faultPoint } from '../../process/fault.js';
import { run, runStreaming } from '../../process/run.js';
import { checkName, checkSnapshotName, nameProblem } from '../../names.js';
import { isAtOrBelow } from '../../os/mounts.js';
import { mountedThereAlready, refuseDestroy, refuseRename, refuseUnmountingRoot } from '../refusals.js';
import type { Backend, EnvironmentInfo, OpenTree } from '../types.js';
import {
  RETIRED_SEPARATOR,
  ROOT_DIR,
  exportNestedPath,
  exportSnapshotPath,
  receiveDirPath,
  STATE_SUBVOLUME,
  environmentPath,
  partialEnvironmentPath,
  partialPristinePath,
  pristinePath,
  retiredPristineBase,
  roleOf,
} from './layout.js';
import { holdsFiles, placeNested, planNested } from './nested.js';
import { ensureMetaDirs, envMetaFile, pristineMetaFile, readEnvironmentMeta, removeMetaFile, writeEnvironmentMeta, writePristineMeta } from './meta.js';
import type { SubvolumeListEntry } from './parse.js';
import { detachRootSubvolume } from './root-fstab.js';
import { createSubvolume, deleteSubvolumeAt, getDefaultSubvolume, qgroupExclusive, setDefaultSubvolume, showSubvolume, snapshotSubvolume } from './progs.js';
import { adoptSource } from './adoption.js';
import { changesBetweenPristines, changesSincePristine } from './changes.js';
import { deletePristine, pristineOf, pristines, renamePristine } from './pristines.js';
import { recover } from './recover.js';
import { renameEnvironmentTree } from './rename.js';
import { deleteSnapshot, snapshotOf, snapshots, takeSnapshot } from './snapshots.js';
import { findStateHome } from './state-home.js';
import { TOP_LEVEL_ID, openTop, slashed, type BtrfsBackendOptions, type FsView } from './top.js';

export { DEFAULT_PRIVATE_DIR, type BtrfsBackendOptions } from './top.js';

export interface BtrfsBackend extends Backend {
  /** Unmount `top` if this backend mounted it itself; nothing otherwise. */
  close(): Promise<void>;
}

export function createBtrfsBackend(opts: BtrfsBackendOptions): BtrfsBackend {
  const t = openTop(opts);

  /**
   * Make environment NAME: `make` fills a subvolume at the partial path, then
   * the metadata is written and the subvolume renamed into place.
   */
  /**
   * The pristine snapshot of `generation` under environment NAME's base
   * name, a read-only snapshot of the subvolume at `from` (the environment,
   * or an imported pristine state): the only way one is made.
   */
  async function placePristine(name: string, generation: number, from: string): Promise<void> {
    await t.ensureDirs();
    let list = await t.subvolumes();
    const all = await pristines(t, list);
    const same = all.find((p) => p.generation === generation);
    if (same !== undefined) {
      throw new SysprimeError('EXISTS', `generation ${generation} already has a pristine snapshot, ${same.id}`, {
        hint: 'a generation has one pristine state; destroy it first (prune) to take it again',
      });
    }
    const current = all.find((p) => p.base === name);
    if (current !== undefined) {
      // One pristine per environment name; the older one is kept, renamed, while other environments may still need it.
      await renamePristine(t, name, retiredPristineBase(name, current.generation), name);
      log.info(`kept ${current.id} of generation ${current.generation} as ${pristinePath(retiredPristineBase(name, current.generation))}`);
    } else if (list.some((s) => s.path === pristinePath(name))) {
      throw new SysprimeError('BACKEND', `${pristinePath(name)} exists but has no sysprime metadata`, {
        hint: `delete it (btrfs subvolume delete ${t.abs(pristinePath(name))}) or write ${pristineMetaFile(t.top, name)} by hand`,
      });
    }
    const partial = partialPristinePath(name);
    list = await t.subvolumes();
    await t.clearPartial(partial, list);
    await snapshotSubvolume(from, t.abs(partial), true);
    try {
      await writePristineMeta(t.top, name, { generation, source: name });
      await rename(t.abs(partial), t.abs(pristinePath(name)));
    } catch (err) {
      await removeMetaFile(pristineMetaFile(t.top, name)).catch(() => undefined);
      await deleteSubvolumeAt(t.abs(partial)).catch(() => undefined);
      throw err;
    }
  }

  /** The pristine snapshot of environment NAME's generation; NOT_FOUND once it was pruned. */
  async function pristineOfEnvironment(name: string, list: readonly SubvolumeListEntry[]): Promise<{ path: string }> {
    const meta = await readEnvironmentMeta(t.top, name);
    if (meta === null) throw new SysprimeError('BACKEND', `${environmentPath(name)} has no sysprime metadata`, { hint: '`sysprime doctor` names what is missing' });
    const p = (await pristines(t, list)).find((x) => x.generation === meta.generation);
    if (p === undefined) {
      throw new SysprimeError('NOT_FOUND', `the pristine state of "${name}" (generation ${meta.generation}) is gone: it was pruned`, {
        hint: 'export it without --with-pristine; the machine that imports it takes its state on arrival as its pristine',
      });
    }
    return { path: p.path };
  }

  function oneReceived(paths: readonly string[], what: string): string {
    const [one, ...more] = paths;
    if (one === undefined || more.length > 0) throw new SysprimeError('BACKEND', `btrfs receive made ${paths.length} subvolumes for ${what}, not one: ${paths.join(', ') || 'none'}`);
    return one;
  }

  async function makeEnvironment(name: string, generation: number, make: (dest: string) => Promise<void>, meta: Record<string, string> = {}): Promise<void> {
    checkName(name);
    await t.view();
    await t.ensureDirs();
    const list = await t.subvolumes();
    t.refuseExisting(list, name);
    const partial = partialEnvironmentPath(name);
    await t.clearPartial(partial, list);
    try {
      await make(t.abs(partial));
      // A clone must not mount its source's subvolume at / (installers' fstabs name it): see fstab.ts.
      await detachRootSubvolume(t.abs(partial), environmentPath(name));
      // Its metadata before its name: never an environment without it (recover() removes both halves of a dead attempt).
      await writeEnvironmentMeta(t.top, name, { generation, meta });
      faultPoint('backend:btrfs', 'clone-before-rename');
      await rename(t.abs(partial), t.abs(environmentPath(name)));
    } catch (err) {
      // The environment does not exist (refused above), so its metadata file and the partial subvolume are ours to remove.
      await removeMetaFile(envMetaFile(t.top, name)).catch(() => undefined);
      await t.subvolumes()
        .then((now) => t.clearPartial(partial, now, 'made by the failed attempt'))
        .catch((e: unknown) => log.warn(`could not delete ${partial}: ${messageOf(e)}; \`sysprime\` removes it on its next recovery`));
      throw err;
    }
  }

  /** Snapshot the nested content subvolumes of `sourceRel` into the new tree `dest` (see nested.ts). */
  async function copyNested(fs: FsView, list: readonly SubvolumeListEntry[], sourceRel: string, dest: string, name: string): Promise<void> {
    await placeNested(t.abs(sourceRel), sourceRel, dest, environmentPath(name), planNested(sourceRel, list, t.sharedSubvolumes), () => t.fsUuid(fs));
  }

  const backend: BtrfsBackend = {
    kind: 'btrfs',
    describe: () => t.describe(),

    probe: () => t.probe(),

    identity: () => t.identity(),

    async ensureLayout() {
      await t.view();
      await t.ensureDirs();
    },

    async listEnvironments() {
      const fs = await t.view();
      const list = await t.subvolumes();
      const [defaultId, exclusive, allPristines] = await Promise.all([getDefaultSubvolume(t.top), qgroupExclusive(t.top), pristines(t, list)]);
      const out: EnvironmentInfo[] = [];
      for (const s of list) {
        const role = roleOf(s.path);
        if (role.role !== 'environment') continue;
        if (nameProblem(role.name) !== null) {
          log.debug(`${s.path}: not a usable environment name, left out`);
          continue;
        }
        const meta = await readEnvironmentMeta(t.top, role.name);
        // -1: no metadata (a subvolume made by hand under ROOT/); `setGeneration` records one.
        const generation = meta?.generation ?? -1;
        const shown = await showSubvolume(t.abs(s.path));
        const mounts = t.mountsOf(fs, role.name);
        const booted = mounts.some((m) => m.mountPoint === '/');
        out.push({
          name: role.name,
          id: s.path,
          generation,
          created: shown.created ?? new Date(0),
          // Btrfs hands out subvolume ids in increasing order and never reuses them.
          createdOrder: s.id,
          spaceUnique: exclusive?.get(s.id) ?? null,
          mounted: booted ? '/' : (mounts[0]?.mountPoint ?? null),
          pristine: allPristines.find((p) => p.generation === generation)?.id ?? null,
          booted,
          isDefault: s.id === defaultId,
          meta: meta?.meta ?? {},
        });
      }
      return out;
    },

    async listPristines() {
      await t.view();
      return (await pristines(t, await t.subvolumes())).map(({ id, generation, created, holder }) => ({ id, generation, created, holder }));
    },

    async checkAdoption(source, name) {
      const fs = await t.view();
      await adoptSource(t, fs, await t.subvolumes(), source);
      // The adopted subvolume is snapshotted or moved to ROOT/<name>: its installer's name (@rootfs, @) is not kept.
      return { name: checkName(name ?? 'default') };
    },

    async adopt(source, name, generation) {
      checkName(name);
      const fs = await t.view();
      const list = await t.subvolumes();
      const { rel, topLevel, mustSnapshot } = await adoptSource(t, fs, list, source);
      const others = list.filter((s) => s.topLevel === TOP_LEVEL_ID && s.path !== rel && s.path !== STATE_SUBVOLUME && roleOf(s.path).role === 'foreign').map((s) => s.path);
      if (others.length > 0) log.info(`not sysprime's, left as they are and never destroyed: ${others.join(', ')}`);
      if (mustSnapshot) {
        await makeEnvironment(name, generation, async (dest) => {
          await snapshotSubvolume(t.abs(rel), dest, false);
          // A snapshot of the top level holds a copy of ROOT/ (metadata, empty stubs of the environments): not part of the system.
          if (topLevel) await rm(join(dest, ROOT_DIR), { recursive: true, force: true });
          else await copyNested(fs, list, rel, dest, name);
          // Below the top level every other subvolume is "nested" (@home, other tools' ones): none is copied, and the admin is told.
          const skipped = topLevel ? list.filter((s) => s.topLevel === TOP_LEVEL_ID && s.path !== STATE_SUBVOLUME && roleOf(s.path).role === 'foreign').map((s) => `/${s.path}`) : [];
          if (skipped.length > 0) {
            log.warn(`${environmentPath(name)}: the subvolumes ${skipped.join(', ')} of the top level are not copied (empty directories there); mount the ones the system needs from fstab`);
          }
        });
        log.info(`adopted ${topLevel ? 'the top-level subvolume' : rel} as ${environmentPath(name)} (a snapshot; ${topLevel ? 'it' : rel} stays until removed by hand)`);
        return;
      }
      await t.ensureDirs();
      t.refuseExisting(list, name);
      // Nothing mounts it: moving it is cheaper than a snapshot and keeps its nested subvolumes, id and default flag.
      await writeEnvironmentMeta(t.top, name, { generation, meta: {} });
      try {
        await rename(t.abs(rel), t.abs(environmentPath(name)));
      } catch (err) {
        await removeMetaFile(envMetaFile(t.top, name));
        throw new SysprimeError('IO', `cannot move ${rel} to ${environmentPath(name)}: ${messageOf(err)}`, { cause: err });
      }
      try {
        // Its fstab still names the subvolume by its old path, which no longer exists.
        await detachRootSubvolume(t.abs(environmentPath(name)), environmentPath(name));
      } catch (err) {
        // Put it back as it was: adoption is all or nothing.
        await rename(t.abs(environmentPath(name)), t.abs(rel));
        await removeMetaFile(envMetaFile(t.top, name));
        throw err;
      }
      log.info(`adopted ${rel} as ${environmentPath(name)} (moved)`);
    },

    async createEmpty(name, generation) {
      await makeEnvironment(name, generation, (dest) => createSubvolume(dest));
    },

    async takePristine(name, generation) {
      checkName(name);
      await t.view();
      t.findEnvironmentEntry(await t.subvolumes(), name);
      await placePristine(name, generation, t.abs(environmentPath(name)));
      // The environment now is exactly the state of that generation.
      const meta = await readEnvironmentMeta(t.top, name);
      await writeEnvironmentMeta(t.top, name, { generation, meta: meta?.meta ?? {} });
      const shown = await showSubvolume(t.abs(pristinePath(name)));
      return { id: pristinePath(name), generation, created: shown.created ?? new Date(0), holder: name };
    },

    async cloneFromPristine(generation, name, nestedFrom) {
      const fs = await t.view();
      const list = await t.subvolumes();
      const p = pristineOf(t, await pristines(t, list), generation);
      // A read-only pristine holds no nested subvolumes: they come from the environment being carried on, as it is now.
      const source = nestedFrom ?? p.holder;
      if (nestedFrom !== undefined) checkName(nestedFrom);
      const sourceRel = source !== null && list.some((s) => s.path === environmentPath(source)) ? environmentPath(source) : null;
      await makeEnvironment(name, generation, async (dest) => {
        await snapshotSubvolume(p.path, dest, false);
        if (sourceRel !== null) await copyNested(fs, list, sourceRel, dest, name);
      });
    },

    async cloneFromEnvironment(source, name, opts = {}) {
      checkName(source);
      await t.view();
      t.findEnvironmentEntry(await t.subvolumes(), source);
      const meta = await readEnvironmentMeta(t.top, source);
      if (meta === null) {
        throw new SysprimeError('BACKEND', `environment "${source}" has no sysprime metadata, so its generation is unknown`, {
          hint: `record it first (sysprime adopts it with a generation), or write ${envMetaFile(t.top, source)}`,
        });
      }
      const fs = await t.view();
      const list = await t.subvolumes();
      await makeEnvironment(
        name,
        meta.generation,
        async (dest) => {
          opts.signal?.throwIfAborted();
          await snapshotSubvolume(t.abs(environmentPath(source)), dest, false);
          await copyNested(fs, list, environmentPath(source), dest, name);
        },
        opts.meta,
      );
    },

    async listSnapshots() {
      await t.view();
      return (await snapshots(t, await t.subvolumes())).map(({ path: _path, ...info }) => info);
    },

    async takeSnapshot(environment, name) {
      checkName(environment);
      checkSnapshotName(name);
      await t.view();
      await t.ensureDirs();
      const list = await t.subvolumes();
      t.findEnvironmentEntry(list, environment);
      const { path: _path, ...info } = await takeSnapshot(t, list, environment, name);
      return info;
    },

    async cloneFromSnapshot(environment, snapshot, name) {
      checkName(environment);
      checkSnapshotName(snapshot);
      const fs = await t.view();
      const list = await t.subvolumes();
      const snap = snapshotOf(t, await snapshots(t, list), environment, snapshot);
      const sourceRel = list.some((s) => s.path === environmentPath(environment)) ? environmentPath(environment) : null;
      await makeEnvironment(name, snap.generation, async (dest) => {
        await snapshotSubvolume(snap.path, dest, false);
        if (sourceRel !== null) await copyNested(fs, list, sourceRel, dest, name);
      });
    },

    async sendParts(name, opts) {
      checkName(name);
      await t.view();
      const list = await t.subvolumes();
      t.findEnvironmentEntry(list, name);
      if (opts.withPristine) await pristineOfEnvironment(name, list);
      const plan = planNested(environmentPath(name), list, t.sharedSubvolumes);
      // Not its own: shared by every environment (or snapper's), so not in its export; said, as create says it.
      const left = [...plan.shared, ...plan.snapper];
      if (left.length > 0) log.warn(`"${name}": the nested subvolumes ${left.map((i) => `/${i}`).join(', ')} are shared or snapper's, not the environment's own: not in the export (empty directories where it is imported)`);
      return { parts: [...(opts.withPristine ? (['pristine'] as const) : []), 'environment', ...(plan.content.length > 0 ? (['nested'] as const) : [])], nested: plan.content };
    },

    async sendPart(name, part, out, opts) {
      checkName(name);
      await t.view();
      let list = await t.subvolumes();
      t.findEnvironmentEntry(list, name);
      if (part === 'boot' || part === 'boot-pristine') throw new SysprimeError('BACKEND', 'a Btrfs environment has no boot dataset to send');
      if (part === 'nested') {
        // One whole stream after the other, in sendParts' order: `btrfs receive` takes them from one input.
        // The subvolumes the header names, in its order: one made since is not in this export.
        const nested = opts.nested ?? [];
        for (const [i, inner] of nested.entries()) {
          const source = exportNestedPath(name, process.pid, i);
          await t.clearPartial(source, await t.subvolumes());
          await snapshotSubvolume(t.abs(`${environmentPath(name)}/${inner}`), t.abs(source), true);
          try {
            await runStreaming('btrfs', ['send', '-q', t.abs(source)], { stdout: out });
          } finally {
            await t.deleteSubvolumeTree(source, await t.subvolumes()).catch((e: unknown) => log.warn(`could not delete ${source}: ${messageOf(e)}`));
          }
        }
        return;
      }
      // Read-only already: sent as it is.
      if (part === 'pristine') {
        await runStreaming('btrfs', ['send', '-q', (await pristineOfEnvironment(name, list)).path], { stdout: out });
        return;
      }
      // An increment needs its parent read-only and on the receiving side first (the pristine part).
      const parent = opts.fromPristine ? ['-p', (await pristineOfEnvironment(name, list)).path] : [];
      // btrfs send needs a read-only source; under a `.partial-` name, which recover() deletes after a crash.
      const source = exportSnapshotPath(name, process.pid);
      await t.clearPartial(source, list);
      await snapshotSubvolume(t.abs(environmentPath(name)), t.abs(source), true);
      try {
        await runStreaming('btrfs', ['send', '-q', ...parent, t.abs(source)], { stdout: out });
      } finally {
        list = await t.subvolumes();
        await t.deleteSubvolumeTree(source, list).catch((e: unknown) => log.warn(`could not delete ${source}: ${messageOf(e)}`));
      }
    },

    // Each part's copy snapshots are its own, removed by it.
    async sendFinished() {},

    async receiveEnvironment(name, generation, parts, verify, meta = {}, opts = { keepPristine: false, nested: [] }) {
      checkName(name);
      if (parts.boot !== undefined || parts['boot-pristine'] !== undefined) throw new SysprimeError('REFUSED', 'the stream holds a boot dataset of a ZFS boot pool, which a Btrfs environment has no place for');
      if ((opts.unmounted ?? []).length > 0) throw new SysprimeError('REFUSED', 'the stream names ZFS child datasets that are never mounted, which a Btrfs environment has no place for');
      const fs = await t.view();
      await t.ensureDirs();
      const before = await t.subvolumes();
      t.refuseExisting(before, name);
      // Received into a directory of this process's own (receiveDirPath): what a crash leaves there is partial, deleted by recover().
      // Each receive chrooted there (-C): a stream made elsewhere names paths and links that must resolve inside it.
      const into = receiveDirPath(process.pid, randomBytes(3).toString('hex'));
      await mkdir(t.abs(into));
      const inside = async (): Promise<string[]> => (await t.subvolumes()).filter((s) => s.path.startsWith(`${into}/`)).map((s) => s.path);
      let received: string[] = [];
      try {
        let base: string | null = null;
        if (parts.pristine !== undefined) {
          // The pristine first: receive finds it, by the UUID it was sent from, as the increment's parent.
          await runStreaming('btrfs', ['receive', '-C', t.abs(into)], { stdin: parts.pristine, wholeStdin: true });
          base = oneReceived(await inside(), 'its pristine state');
        }
        await runStreaming('btrfs', ['receive', '-C', t.abs(into)], { stdin: parts.environment, wholeStdin: true });
        const one = oneReceived(
          (await inside()).filter((r) => r !== base),
          'the environment',
        );
        // In the order they were sent: the list is by subvolume id, which grows with each one made.
        let nestedReceived: string[] = [];
        const nested = opts.nested ?? [];
        if (parts.nested !== undefined) {
          await runStreaming('btrfs', ['receive', '-C', t.abs(into)], { stdin: parts.nested, wholeStdin: true });
          nestedReceived = (await inside()).filter((r) => r !== base && r !== one);
        }
        received = await inside();
        faultPoint('backend:btrfs', 'received');
        await verify();
        if (nestedReceived.length !== nested.length) throw new SysprimeError('BACKEND', `btrfs receive made ${nestedReceived.length} nested subvolumes, and the stream names ${nested.length}`);
        // In place before the environment has its name: a kill between the two leaves a pristine of a generation no
        // environment has, which the import's recovery removes (recoverImports).
        const placed = base !== null && opts.keepPristine;
        if (base !== null && placed) {
          await placePristine(name, generation, t.abs(base));
          faultPoint('backend:btrfs', 'pristine-placed');
        }
        try {
          await makeEnvironment(
            name,
            generation,
            async (dest) => {
              await snapshotSubvolume(t.abs(one), dest, false);
              const at = new Map(nested.map((inner, i) => [inner, t.abs(nestedReceived[i]!)]));
              await placeNested(t.abs(one), one, dest, environmentPath(name), { content: [...nested], shared: [], snapper: [] }, () => t.fsUuid(fs), (inner) => at.get(inner)!);
            },
            { ...meta },
          );
        } catch (err) {
          // Refused or failed before the environment had its name: its pristine goes with it, as a kill's is by recovery.
          if (placed) {
            const list = await t.subvolumes();
            for (const p of (await pristines(t, list)).filter((x) => x.generation === generation)) await deletePristine(t, p, list).catch((e: unknown) => log.warn(`could not delete ${p.id}: ${messageOf(e)}`));
          }
          throw err;
        }
      } finally {
        if (received.length === 0) received = await inside().catch(() => []);
        // The environment before its parent: nothing requires it, but a reader of the list sees the order sent.
        for (const r of received.reverse()) await t.deleteSubvolumeTree(r, await t.subvolumes()).catch((e: unknown) => log.warn(`could not delete ${r}: ${messageOf(e)}`));
        await rmdir(t.abs(into)).catch(() => undefined);
      }
    },

    async destroySnapshot(environment, name) {
      checkName(environment);
      checkSnapshotName(name);
      await t.view();
      const list = await t.subvolumes();
      // Btrfs snapshots are independent of each other: an environment made from this one does not need it.
      await deleteSnapshot(t, snapshotOf(t, await snapshots(t, list), environment, name), list);
    },

    async setGeneration(name, generation) {
      checkName(name);
      await t.view();
      t.findEnvironmentEntry(await t.subvolumes(), name);
      await ensureMetaDirs(t.top);
      const meta = await readEnvironmentMeta(t.top, name);
      await writeEnvironmentMeta(t.top, name, { generation, meta: meta?.meta ?? {} });
    },

    async destroyEnvironment(name) {
      checkName(name);
      const fs = await t.view();
      let list = await t.subvolumes();
      const entry = t.findEnvironmentEntry(list, name);
      const envRel = environmentPath(name);
      const defaultId = await getDefaultSubvolume(t.top);
      const defaultEntry = list.find((s) => s.id === defaultId);
      refuseDestroy(name, {
        // Its nested subvolumes' mounts too: they go with it.
        mountPoints: fs.mounts.filter((m) => isAtOrBelow(m.root, slashed(envRel))).map((m) => m.mountPoint),
        isDefault: defaultId === entry.id || (defaultEntry !== undefined && defaultEntry.path.startsWith(`${envRel}/`)),
      });
      // Nested subvolumes go with the environment, except what is not its own to delete: snapper's snapshots, shared data.
      const nested = planNested(envRel, list, t.sharedSubvolumes);
      const notOwn: string[] = [];
      // An empty shared one (systemd makes /var/lib/machines in every root) goes; snapper's snapshots, even empty ones, stay.
      for (const inner of nested.shared) if (await holdsFiles(t.abs(`${envRel}/${inner}`))) notOwn.push(inner);
      for (const inner of nested.snapper) {
        if (list.some((s) => s.path.startsWith(`${envRel}/${inner}/`)) || (await holdsFiles(t.abs(`${envRel}/${inner}`)))) notOwn.push(inner);
      }
      if (notOwn.length > 0) {
        const snapper = notOwn.some((i) => i.startsWith('.snapshots'));
        throw new SysprimeError('REFUSED', `environment "${name}" holds data that is not its own in nested subvolumes: ${notOwn.map((i) => `/${i}`).join(', ')}`, {
          hint:
            `move ${notOwn.map((i) => t.abs(`${envRel}/${i}`)).join(', ')} to the top level (mv) and mount ${notOwn.length > 1 ? 'them' : 'it'} from there in fstab` +
            `${snapper ? ", or delete snapper's snapshots with snapper" : ''}, then destroy the environment`,
        });
      }
      // Its snapshots first: a crash in between leaves the environment with fewer of them, never snapshots of a name that is gone.
      for (const snap of (await snapshots(t, list)).filter((x) => x.environment === name)) {
        log.info(`deleting snapshot ${snap.id} with its environment`);
        await deleteSnapshot(t, snap, await t.subvolumes());
      }
      list = await t.subvolumes();
      const meta = await readEnvironmentMeta(t.top, name);
      const partial = partialEnvironmentPath(name);
      await t.clearPartial(partial, list);
      // Out of its real name first: a crash halfway leaves a `.partial-` subvolume for recover(), never a half-deleted environment.
      await rename(t.abs(envRel), t.abs(partial));
      faultPoint('backend:btrfs', 'destroy-renamed');
      list = await t.subvolumes();
      await t.deleteSubvolumeTree(partial, list);
      faultPoint('backend:btrfs', 'destroy-deleted');
      await removeMetaFile(envMetaFile(t.top, name));

      list = await t.subvolumes();
      const inUse = new Set<number>();
      for (const s of list) {
        const role = roleOf(s.path);
        if (role.role !== 'environment') continue;
        const m = await readEnvironmentMeta(t.top, role.name);
        if (m !== null) inUse.add(m.generation);
      }
      for (const p of await pristines(t, list)) {
        const mine = p.base.split(RETIRED_SEPARATOR)[0] === name || (meta !== null && p.generation === meta.generation);
        if (mine && !inUse.has(p.generation)) {
          log.info(`deleting ${p.id}: no environment of generation ${p.generation} is left`);
          await deletePristine(t, p, list);
        }
      }
    },

    async destroyPristine(generation) {
      await t.view();
      const list = await t.subvolumes();
      const all = (await pristines(t, list)).filter((p) => p.generation === generation);
      pristineOf(t, all, generation); // NOT_FOUND when there is none
      const users: string[] = [];
      for (const s of list) {
        const role = roleOf(s.path);
        if (role.role === 'environment' && (await readEnvironmentMeta(t.top, role.name))?.generation === generation) users.push(role.name);
      }
      if (users.length > 0) {
        throw new SysprimeError('REFUSED', `the pristine snapshot of generation ${generation} is still the base of ${users.join(', ')}`, {
          hint: 'drift of those environments is measured against it; destroy them first',
        });
      }
      for (const p of all) await deletePristine(t, p, list);
    },

    async renameEnvironment(from, to) {
      checkName(from);
      checkName(to);
      const fs = await t.view();
      const list = await t.subvolumes();
      t.findEnvironmentEntry(list, from);
      t.refuseExisting(list, to);
      refuseRename(from, t.mountsOf(fs, from).map((m) => m.mountPoint));
      await renameEnvironmentTree(t, list, from, to);
    },

    async mount(name, dir) {
      checkName(name);
      const fs = await t.view();
      t.findEnvironmentEntry(await t.subvolumes(), name);
      const target = resolve(dir);
      if (mountedThereAlready(name, t.mountsOf(fs, name).map((m) => m.mountPoint), target)) return;
      await mkdir(target, { recursive: true });
      const device = fs.topMount.source.startsWith('/') ? fs.topMount.source : (t.device ?? fs.topMount.source);
      await run('mount', ['-t', 'btrfs', '-o', `subvol=/${environmentPath(name)}`, device, target]);
    },

    async unmount(name) {
      checkName(name);
      const fs = await t.view();
      t.findEnvironmentEntry(await t.subvolumes(), name);
      refuseUnmountingRoot(name, t.mountsOf(fs, name).map((m) => m.mountPoint));
      for (const m of t.mountsOf(fs, name)) {
        await t.unmountTree(await t.view(), m.mountPoint);
      }
    },

    stateHome: (stateDir) => findStateHome(t, stateDir),

    async openEnvironment(name): Promise<OpenTree> {
      checkName(name);
      await t.view();
      t.findEnvironmentEntry(await t.subvolumes(), name);
      // The top level is mounted: the environment is a directory below it, no mount needed.
      return { path: t.abs(environmentPath(name)), release: async () => undefined };
    },

    async openPristine(generation): Promise<OpenTree> {
      await t.view();
      const p = pristineOf(t, await pristines(t, await t.subvolumes()), generation);
      return { path: p.path, release: async () => undefined };
    },

    changesSincePristine: (name, generation, limit) => changesSincePristine(t, name, generation, limit),

    changesBetweenPristines: (from, to, limit) => changesBetweenPristines(t, from, to, limit),

    async setDefault(name) {
      checkName(name);
      await t.view();
      const entry = t.findEnvironmentEntry(await t.subvolumes(), name);
      await setDefaultSubvolume(entry.id, t.top);
    },

    async setMeta(name, patch) {
      checkName(name);
      await t.view();
      t.findEnvironmentEntry(await t.subvolumes(), name);
      const current = await readEnvironmentMeta(t.top, name);
      if (current === null) {
        throw new SysprimeError('BACKEND', `environment "${name}" has no sysprime metadata yet`, {
          hint: 'record its generation first (setGeneration), then its other metadata',
        });
      }
      const meta = { ...current.meta };
      for (const [k, v] of Object.entries(patch)) {
        if (v === null) delete meta[k];
        else meta[k] = v;
      }
      await writeEnvironmentMeta(t.top, name, { generation: current.generation, meta });
    },

    recover: () => recover(t),

    async bootRoot(name) {
      checkName(name);
      const fs = await t.view();
      return { fs: 'btrfs', uuid: await t.fsUuid(fs), subvolume: environmentPath(name) };
    },

    async space() {
      await t.view();
      const st = await statfs(t.top);
      return { size: st.blocks * st.bsize, free: st.bavail * st.bsize };
    },
    close: () => t.close(),
  };
  return backend;
}
