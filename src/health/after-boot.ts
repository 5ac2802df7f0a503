/**
 * What follows the health checks of a boot (`sysprime boot-hook health`,
 * from sysprime-health.service, ordered before boot-complete.target):
 *
 * - all required checks pass: the result is recorded and the unit succeeds,
 *   so boot-complete.target is reached and the existing blessing paths run
 *   (systemd-bless-boot for systemd-boot, `boot-hook complete` for GRUB's
 *   grubenv), and `boot-hook complete` tells the fleet the boot is good;
 * - one fails: the environment is recorded bad with the reason (status
 *   shows it), the fleet halts its generation, and the machine falls back
 *   to the newest other environment that last passed its checks, at most
 *   `[health] max_reboots` times; the unit fails, so nothing blesses it.
 */
import type { Context } from '../context.js';
import type { EnvironmentInfo } from '../backends/types.js';
import { messageOf } from '../errors.js';
import { whileBusy } from '../state/lock.js';
import { activateEnvironment, currentOf, listEnvironments } from '../environments/lifecycle.js';
import { fleetConfigured, openFleet, sendOwedHalts, targetOf } from '../fleet/fleet.js';
import { oweHalt } from '../state/fleet-outbox.js';
import { log } from '../log.js';
import { runRebootCommand } from '../reboot/reboot.js';
import { eventsOf, recordEvent } from '../state/events.js';
import { HEALTH_EVENTS, fallbacksSinceGood, onTrial, sinceBirth } from './history.js';
import { runHealthChecks, type HealthReport } from './checks.js';

export type AfterChecks =
  | { kind: 'passed' }
  | { kind: 'fallback'; to: string; attempt: number }
  | { kind: 'stay'; why: string };

/** Pure: what a failed or passed check leads to, from this environment's history and the others'. */
export function decideAfterChecks(i: {
  result: 'good' | 'bad';
  running: string;
  /** Fallbacks already made away from the running environment since it last passed its checks. */
  fallbacksSoFar: number;
  /**
   * Whether the running environment is on trial: activated since it last
   * passed its checks (a staged environment's first boots). One that passed
   * since is not a failed update: a check failing on an ordinary reboot
   * (a full disk, a service down) is for the admin, not a reason to boot
   * an older system.
   */
  inTrial: boolean;
  maxReboots: number;
  /** Other environments with when each last passed its checks (null: never). */
  others: { name: string; lastGood: string | null }[];
}): AfterChecks {
  if (i.result === 'good') return { kind: 'passed' };
  if (!i.inTrial) return { kind: 'stay', why: `"${i.running}" failed its checks, but it is not on trial (it passed them since it was activated): staying, for the admin` };
  if (i.fallbacksSoFar >= i.maxReboots) {
    return { kind: 'stay', why: `"${i.running}" failed its checks and fell back ${i.fallbacksSoFar} time${i.fallbacksSoFar === 1 ? '' : 's'} already ([health] max_reboots = ${i.maxReboots}): staying, for the admin` };
  }
  const good = i.others.filter((o) => o.lastGood !== null).sort((a, b) => b.lastGood!.localeCompare(a.lastGood!));
  if (good.length === 0) return { kind: 'stay', why: 'no other environment ever passed its health checks: nothing known good to fall back to' };
  return { kind: 'fallback', to: good[0]!.name, attempt: i.fallbacksSoFar + 1 };
}

export interface HealthOutcome {
  environment: string | null;
  report: HealthReport;
  next: AfterChecks;
  /** The fleet could not be told (etcd unreachable): said, never fatal here. */
  fleetError: string | null;
}

export async function healthAfterBoot(ctx: Context, opts: { reboot: boolean } = { reboot: true }): Promise<HealthOutcome> {
  const report = await runHealthChecks(ctx.config);
  for (const w of report.warnings) log.warn(`health: ${w}`);
  const envs = await listEnvironments(ctx);
  const current = currentOf(envs);
  if (!current) return { environment: null, report, next: { kind: 'stay', why: 'no environment runs here' }, fleetError: null };

  recordEvent(ctx.db, current.name, report.result === 'good' ? HEALTH_EVENTS.good : HEALTH_EVENTS.bad, { failed: report.failed, warnings: report.warnings });
  const history = eventsOf(ctx.db, current.name);
  const next = decideAfterChecks({
    result: report.result,
    running: current.name,
    fallbacksSoFar: fallbacksSinceGood(history),
    inTrial: onTrial(history),
    maxReboots: ctx.config.health.maxReboots,
    others: envs.filter((e) => e.name !== current.name).map((e) => ({ name: e.name, lastGood: lastGoodOf(ctx, e) })),
  });

  let fleetError: string | null = null;
  if (report.result === 'bad' && fleetConfigured(ctx.config)) {
    // Halt the update for the whole fleet before anything else: no other machine should follow this one.
    const fleet = openFleet(ctx.config);
    const running = targetOf(ctx.db, current.generation);
    const reason = report.failed.join('; ');
    const at = new Date().toISOString();
    try {
      for (const l of await sendOwedHalts(ctx.db, fleet)) log.info(l);
      await fleet.report({ running, health: 'bad', reason });
    } catch (err) {
      fleetError = messageOf(err);
      // Kept, and sent at the next fleet call this machine makes: other machines must not follow this one.
      oweHalt(ctx.db, { generation: running.generation, update: running.update, lineage: [...running.lineage], reason, at });
      log.error(`health: could not halt ${running.update !== null ? `update ${running.update}` : `generation ${current.generation}`} in the fleet: ${fleetError}; it is kept and sent at the next chance`);
    } finally {
      fleet.close();
    }
  }

  if (next.kind === 'fallback' && opts.reboot) {
    const to = envs.find((e) => e.name === next.to)!;
    // Early in a boot another sysprime may hold the lock (the first-boot reintegration): wait for it. The
    // fallback is counted once it is made, so one that could not be made does not use up max_reboots.
    await whileBusy(() => activateEnvironment(ctx, to.name), { waitMs: BUSY_WAIT_MS });
    recordEvent(ctx.db, current.name, HEALTH_EVENTS.fallback, { to: to.name, attempt: next.attempt, failed: report.failed });
    log.error(`health: "${current.name}" failed its checks (${report.failed.join('; ')}); falling back to "${to.name}" (${next.attempt} of ${ctx.config.health.maxReboots})`);
    await runRebootCommand(ctx.config, { name: to.name, generation: to.generation });
  }
  return { environment: current.name, report, next, fleetError };
}

/** How long a fallback waits for another sysprime that holds the lock: a first-boot reintegration of a large tree. */
const BUSY_WAIT_MS = 10 * 60 * 1000;

function lastGoodOf(ctx: Context, env: EnvironmentInfo): string | null {
  const good = sinceBirth(eventsOf(ctx.db, env.name)).filter((e) => e.event === HEALTH_EVENTS.good);
  return good.length ? good[good.length - 1]!.at : null;
}

/**
 * The boot is blessed (`boot-hook complete`): tell the fleet this machine
 * runs its generation healthily and give back its reboot slot. An etcd that
 * does not answer is a line, not a failed unit: the slot frees itself when
 * its lease ends.
 */
export async function reportGoodBoot(ctx: Context): Promise<string[]> {
  if (!fleetConfigured(ctx.config)) return [];
  const current = currentOf(await listEnvironments(ctx));
  if (!current) return [];
  const fleet = openFleet(ctx.config);
  try {
    const sent = await sendOwedHalts(ctx.db, fleet);
    await fleet.report({ running: targetOf(ctx.db, current.generation), health: 'good' });
    return [...sent, (await fleet.release()) ? `fleet: generation ${current.generation} is healthy here; reboot slot given back` : `fleet: generation ${current.generation} is healthy here`];
  } catch (err) {
    return [`fleet: could not report this boot: ${messageOf(err)}`];
  } finally {
    fleet.close();
  }
}
