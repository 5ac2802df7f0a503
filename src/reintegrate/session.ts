/**
 * Reintegration as sysprime runs it: find the trees (the old generation's
 * pristine state, the admin's environment, the new pristine state, the new
 * environment), make or reuse their manifests, plan, apply, and keep the
 * report in the state database and inside the new environment.
 *
 * At staging the whole drift is carried over and the admin's manifest at
 * that moment is kept; at the new environment's first boot only what
 * changed on the old environment since then is replayed.
 */
import type { Context } from '../context.js';
import type { EnvironmentInfo, OpenTree } from '../backends/types.js';
import type { Manifest } from '../bart/index.js';
import { liveManifest, pristineManifest } from '../drift/compute.js';
import { loadRules, type LoadedRules } from '../drift/rules.js';
import { loadManifest, manifestSubject, saveManifest } from '../state/manifests.js';
import { SysprimeError } from '../errors.js';
import { log } from '../log.js';
import { closeInterrupted, runRecorded } from '../state/journal.js';
import { keepReport } from '../state/reports.js';
import { planReintegration, type ReintegrationPlan } from './plan.js';
import { planSinceStaging } from './since-staging.js';
import { applyPlan } from './apply.js';
import { writeReport, type ReintegrationReport } from './report.js';
import { baselineKey, firstBootBlocker, type FirstBootNote } from './first-boot-note.js';
import { asManifestPath, atRiskLines, atRiskMessage, atRiskPaths, sharedDataOf } from '../environments/shared.js';

interface Sides {
  base: OpenTree;
  ours: OpenTree;
  theirs: OpenTree;
}

async function openSides(ctx: Context, from: string, fromGeneration: number, generation: number): Promise<Sides> {
  const opened: OpenTree[] = [];
  try {
    const base = await ctx.backend.openPristine(fromGeneration);
    opened.push(base);
    const ours = await ctx.backend.openEnvironment(from);
    opened.push(ours);
    const theirs = await ctx.backend.openPristine(generation);
    opened.push(theirs);
    return { base, ours, theirs };
  } catch (err) {
    for (const t of opened.reverse()) await t.release().catch(() => undefined);
    throw err;
  }
}

async function closeSides(s: Sides): Promise<void> {
  for (const t of [s.theirs, s.ours, s.base]) await t.release().catch(() => undefined);
}

async function pristineIdOf(ctx: Context, generation: number): Promise<string> {
  const p = (await ctx.backend.listPristines()).find((x) => x.generation === generation);
  if (!p) {
    throw new SysprimeError('NOT_FOUND', `the pristine snapshot of generation ${generation} is missing`, {
      hint: 'without it the admin\'s changes cannot be told from the update\'s; see `sysprime doctor`',
    });
  }
  return p.id;
}

/** Both results; when one fails, the other is waited for (nothing still reads a tree when the caller closes it), then the first failure thrown. */
async function both<A, B>(a: Promise<A>, b: Promise<B>): Promise<[A, B]> {
  const [x, y] = await Promise.allSettled([a, b]);
  if (x.status === 'rejected') throw x.reason;
  if (y.status === 'rejected') throw y.reason;
  return [x.value, y.value];
}

interface Manifests {
  base: Manifest;
  ours: Manifest;
  theirs: Manifest;
  rules: LoadedRules;
  /** Shared paths inside the root, spelled as in manifests. */
  shared: string[];
}

async function manifestsFor(ctx: Context, from: string, fromGeneration: number, generation: number, s: Sides, atRisk: readonly string[]): Promise<Manifests> {
  const rules = loadRules(ctx.config, atRisk);
  const base = await pristineManifest(ctx, fromGeneration, await pristineIdOf(ctx, fromGeneration), s.base.path, rules);
  const theirsId = await pristineIdOf(ctx, generation);
  // The admin's changes are listed (a snapshot and `btrfs send` or `zfs diff`, most of the admin's side's time,
  // spent waiting on them) while the update's manifest is made; the admin's is made after it, not beside it.
  const making = pristineManifest(ctx, generation, theirsId, s.theirs.path, rules, [{ generation: fromGeneration, manifest: base }]);
  const [theirs, ours] = await both(making, liveManifest(ctx, from, s.ours.path, rules, { generation: fromGeneration, manifest: base, path: s.base.path }, { after: making }));
  return { base, ours, theirs, rules, shared: atRisk.map(asManifestPath) };
}

export interface PlanResult {
  plan: ReintegrationPlan;
  from: string;
  to: string;
}

/** The plan from one environment's drift onto another environment's generation, written nowhere. */
export async function planBetween(ctx: Context, from: EnvironmentInfo, to: EnvironmentInfo): Promise<PlanResult> {
  const s = await openSides(ctx, from.name, from.generation, to.generation);
  try {
    const atRisk = atRiskPaths(await sharedDataOf(ctx, from.name, s.ours.path));
    const m = await manifestsFor(ctx, from.name, from.generation, to.generation, s, atRisk);
    return { plan: planReintegration({ base: m.base, ours: m.ours, theirs: m.theirs, rules: m.rules.rules, shared: m.shared }), from: from.name, to: to.name };
  } finally {
    await closeSides(s);
  }
}

export interface StagingReintegration {
  report: ReintegrationReport;
  /** Where the human report is, inside the new environment. */
  reportFile: string;
  /** The shared paths inside the root whose files were carried as users' data. */
  shared: string[];
  /** Why each of them is at risk (inside the root, or on a child dataset of the environment), for the warnings. */
  sharedWhy: string[];
}

/**
 * The one sequence every reintegration runs: open the three trees, make or
 * reuse their manifests, plan (the caller says how), apply to `target`,
 * write the report inside it and keep it in the database.
 */
async function reintegrate(
  ctx: Context,
  sides: { from: string; fromGeneration: number; generation: number },
  target: string,
  report: { kind: string; environment: string },
  plan: (m: Manifests) => ReintegrationPlan,
  /** Shared paths inside the root; found on `from` when not given. */
  shared?: readonly string[],
): Promise<StagingReintegration> {
  const s = await openSides(ctx, sides.from, sides.fromGeneration, sides.generation);
  let done: ReintegrationReport;
  let atRisk: string[];
  let why: string[];
  try {
    const states = shared !== undefined ? null : await sharedDataOf(ctx, sides.from, s.ours.path);
    atRisk = states === null ? [...(shared ?? [])] : atRiskPaths(states);
    why = states === null ? (atRisk.length > 0 ? [atRiskMessage(atRisk)] : []) : atRiskLines(states);
    // The manifests (about 100 MB each on a large root) go once the plan is made, not held while it is applied.
    const planned = plan(await manifestsFor(ctx, sides.from, sides.fromGeneration, sides.generation, s, atRisk));
    // At staging nothing boots the target before staging has finished, and a crash undoes it whole:
    // one syncfs at the end instead of an fsync per file (half of the time for thousands of files).
    // Otherwise (the first boot, a reintegration by hand) each file's bytes are synced before its
    // rename, so a power loss leaves each path old or new, and the syncfs of each filesystem
    // written comes before the run counts as done: until then an interrupted run is applied again
    // (runRecorded).
    const staging = report.kind === 'staging';
    done = await applyPlan(planned, { baseRoot: s.base.path, oursRoot: s.ours.path, theirsRoot: s.theirs.path, targetRoot: target, durable: staging ? 'at-end' : 'file-data', quietTarget: staging });
  } finally {
    await closeSides(s);
  }
  if (report.kind === 'staging') {
    // The first-boot step will not install through the admin's link at the unit's name; the report says so beside what was carried.
    const blocked = firstBootBlocker(target, sides.from);
    if (blocked !== undefined) done = { ...done, warnings: [...(done.warnings ?? []), blocked] };
  }
  const reportFile = writeReport(target, done);
  keepReport(ctx.db, { at: done.finishedAt, kind: report.kind, environment: report.environment, summary: done.counts, body: done });
  return { report: done, reportFile, shared: atRisk, sharedWhy: why };
}

/**
 * At staging: carry the whole drift of `from` into the new environment
 * mounted at `target`, keep the admin's manifest for the first boot, and
 * install the first-boot unit.
 */
export async function reintegrateAtStaging(
  ctx: Context,
  p: { from: string; fromGeneration: number; generation: number; name: string; staging: string },
  target: string,
): Promise<StagingReintegration> {
  const done = await reintegrate(ctx, p, target, { kind: 'staging', environment: p.name }, (m) => {
    saveManifest(ctx.db, ctx.config.state.dir, manifestSubject.stagedOurs(p.staging), `${m.rules.digest}|${ctx.config.bart.hash}`, m.ours);
    return planReintegration({ base: m.base, ours: m.ours, theirs: m.theirs, rules: m.rules.rules, shared: m.shared });
  });
  for (const why of done.sharedWhy) log.warn(why);
  return done;
}

const FIRST_BOOT_KIND = 'first-boot';

/**
 * At the first boot of `environment`, whose tree is at `target` (its root:
 * '/' when it is running): replay onto it what changed on `from` since
 * staging. Recorded like the manual verb: a run killed in the middle leaves
 * the note and the unit in place, `doctor` reports it, and the next run
 * (the next boot, or the command by hand) applies the same plan again,
 * which finishes it, and removes the dead run's leftovers.
 */
export async function reintegrateSinceStaging(ctx: Context, note: FirstBootNote, environment: string, target: string): Promise<StagingReintegration> {
  const interrupted = closeInterrupted(ctx.db, FIRST_BOOT_KIND, (p) => p['to'] === environment);
  for (const line of interrupted) log.warn(`recovered: ${line}`);
  const done = await runRecorded(ctx.db, FIRST_BOOT_KIND, { from: note.from, to: environment }, () => replaySinceStaging(ctx, note, target));
  if (interrupted.length > 0) for (const line of await ctx.backend.recover()) log.info(`recovered: ${line}`);
  return done;
}

async function replaySinceStaging(ctx: Context, note: FirstBootNote, target: string): Promise<StagingReintegration> {
  const shared = note.shared ?? [];
  const rules = loadRules(ctx.config, shared);
  let oursAtStaging = loadManifest(ctx.db, manifestSubject.stagedOurs(baselineKey(note)), `${rules.digest}|${ctx.config.bart.hash}`);
  if (!oursAtStaging) {
    const which = note.staging !== undefined ? ` (staging ${note.staging})` : '';
    throw new SysprimeError('STATE', `the manifest kept at staging for "${note.name}" is missing or was made with other rules${which}`, {
      hint: 'run `sysprime reintegrate --from ' + note.from + '` to carry over the whole drift again',
    });
  }
  return reintegrate(
    ctx,
    note,
    target,
    { kind: 'first-boot', environment: note.name },
    (m) => {
      const atStaging = oursAtStaging!;
      // Not held while the plan is applied (the fourth manifest of a large root at the first boot).
      oursAtStaging = undefined;
      return planSinceStaging({ base: m.base, oursAtStaging: atStaging, oursNow: m.ours, theirs: m.theirs, rules: m.rules.rules, shared: m.shared });
    },
    shared,
  );
}

const MANUAL_KIND = 'reintegrate';

/**
 * Apply a plan made with planBetween onto an environment tree (`sysprime
 * reintegrate`). Recorded in the journal: a run killed in the middle leaves
 * the target half-reintegrated, which `doctor` reports; running the same
 * command again finishes it (the plan is the same, applying it is
 * idempotent, and the leftovers of the dead run are removed).
 */
export async function reintegrateInto(ctx: Context, from: EnvironmentInfo, to: EnvironmentInfo, target: string): Promise<StagingReintegration> {
  const interrupted = closeInterrupted(ctx.db, MANUAL_KIND, (p) => p['to'] === to.name);
  for (const line of interrupted) log.warn(`recovered: ${line}`);
  const sides = { from: from.name, fromGeneration: from.generation, generation: to.generation };
  const done = await runRecorded(ctx.db, MANUAL_KIND, { from: from.name, to: to.name }, () =>
    reintegrate(ctx, sides, target, { kind: 'manual', environment: to.name }, (m) =>
      planReintegration({ base: m.base, ours: m.ours, theirs: m.theirs, rules: m.rules.rules, shared: m.shared }),
    ),
  );
  // The dead run's private mount of the target (reused by this run, which
  // does not own it) goes now; mounts of live processes stay.
  if (interrupted.length > 0) for (const line of await ctx.backend.recover()) log.info(`recovered: ${line}`);
  return done;
}
