/**
 * `sysprime reboot` and the daemon's reboot job: plan (policy.ts) with the
 * environment that boots next, take a fleet slot when `[fleet]` is set, then
 * run `[reboot] command`. Whatever refuses (outside the windows, no slot,
 * etcd unreachable) refuses before the command runs: nothing is rebooted and
 * the staged environment stays as it is.
 */
import type { Context } from '../context.js';
import type { Config } from '../config/schema.js';
import { SysprimeError, messageOf } from '../errors.js';
import { getStatus } from '../environments/status.js';
import { fleetConfigured, openFleet, sendOwedHalts, targetOf } from '../fleet/fleet.js';
import type { SlotHolder } from '../fleet/plan.js';
import { log } from '../log.js';
import { run } from '../process/run.js';
import { planReboot, type RebootPlan } from './policy.js';

export interface RebootOutcome {
  plan: RebootPlan;
  /** The fleet slot held for it, when there is a fleet. */
  slot: SlotHolder | undefined;
  /** The command ran (false for a dry run or a plan that does not reboot). */
  rebooted: boolean;
}

/** Run `[reboot] command`, telling it where the machine goes. */
export async function runRebootCommand(config: Config, into: { name: string; generation: number }): Promise<void> {
  const command = config.reboot.command;
  const res = await run('/bin/sh', ['-c', command], { allowFailure: true, timeout: 300_000, env: { SYSPRIME_REBOOT_INTO: into.name, SYSPRIME_REBOOT_GENERATION: String(into.generation) } });
  if (res.exitCode !== 0) {
    throw new SysprimeError('COMMAND_FAILED', `the reboot command failed (exit ${res.exitCode}): ${command}`, {
      hint: 'check [reboot] command in sysprime.toml',
      detail: String(res.stderr).trim(),
    });
  }
}

/** The plan for this machine now, from what boots next. */
export async function rebootPlan(ctx: Context, now = new Date()): Promise<RebootPlan> {
  const status = await getStatus(ctx);
  const next = status.next !== undefined && status.next.name !== status.current?.name ? { name: status.next.name, generation: status.next.generation } : undefined;
  return planReboot({ policy: ctx.config.reboot.policy, windows: ctx.config.reboot.windows, now, next, running: status.current?.name });
}

export async function rebootNow(ctx: Context, opts: { dryRun?: boolean; now?: Date } = {}): Promise<RebootOutcome> {
  const plan = await rebootPlan(ctx, opts.now);
  if (plan.kind !== 'reboot' || opts.dryRun === true) return { plan, slot: undefined, rebooted: false };
  let slot: SlotHolder | undefined;
  let tookSlot = false;
  const fleet = fleetConfigured(ctx.config) ? openFleet(ctx.config) : undefined;
  try {
    if (fleet) {
      // A halt this machine still owes goes first: the slot it asks for may be refused by it.
      for (const l of await sendOwedHalts(ctx.db, fleet)) log.info(l);
      const got = await fleet.acquire(targetOf(ctx.db, plan.into.generation));
      slot = got.holder;
      tookSlot = !got.already;
    }
    log.info(`rebooting into "${plan.into.name}" (generation ${plan.into.generation}): ${plan.why}${slot ? `; fleet slot ${slot.slot} of group ${slot.group}` : ''}`);
    try {
      await runRebootCommand(ctx.config, plan.into);
    } catch (err) {
      // The machine stays up: a slot held for nothing would hold back the group until its lease ends.
      if (fleet && tookSlot) await fleet.release().catch((e: unknown) => log.warn(`could not give back the fleet slot: ${messageOf(e)}`));
      throw err;
    }
    return { plan, slot, rebooted: true };
  } finally {
    fleet?.close();
  }
}

/** The generations of the running environment and of the one that boots next, for the fleet verbs run without --generation. */
export async function bootGenerations(ctx: Context): Promise<{ running: number | null; next: number | null }> {
  const status = await getStatus(ctx);
  return {
    running: status.current?.generation ?? null,
    next: status.next !== undefined && status.next.name !== status.current?.name ? status.next.generation : null,
  };
}
