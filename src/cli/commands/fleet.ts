/** `reboot` and the `fleet` verbs: when this machine reboots into its staged environment, and with whom. */
import { Option, type Command } from 'commander';
import { EXIT, SysprimeError } from '../../errors.js';
import { wholeNumberOption } from '../../config/numbers.js';
import type { Config } from '../../config/schema.js';
import { openContext } from '../../context.js';
import { fleetState, openFleet, sendOwedHalts, targetOf, type Fleet } from '../../fleet/fleet.js';
import type { Db } from '../../state/db.js';
import { log } from '../../log.js';
import { haltName, type FleetSnapshot, type Target } from '../../fleet/plan.js';
import { isUpdateIdentity } from '../../staging/update-identity.js';
import { bootGenerations, rebootNow } from '../../reboot/reboot.js';
import { printJson } from '../output.js';
import { requireRoot, withConfig, withContext, type GlobalOptions } from '../runner.js';

// Generation 0 is the adopted one: the first staging makes 1.
const GENERATION = { min: 0, max: Number.MAX_SAFE_INTEGER };

export function registerFleet(program: Command, globals: () => GlobalOptions): void {
  program
    .command('reboot')
    .description('reboot into the environment that boots next, if [reboot] policy allows it now and, with [fleet], once a reboot slot is held')
    .option('-n, --dry-run', 'say what the policy decides, reboot nothing and take no slot')
    .addHelpText('after', '\nExamples:\n  sysprime reboot --dry-run\n  sysprime reboot\n\nExit status: 0 rebooted (or nothing to reboot into), 75 not now (outside the windows, policy "never", no fleet slot).')
    .action(async (opts: { dryRun?: boolean }) =>
      withContext(globals(), async (ctx) => {
        const r = await rebootNow(ctx, { dryRun: opts.dryRun === true });
        if (globals().json) printJson(r);
        else if (r.plan.kind === 'reboot') {
          const slot = r.slot ? `, fleet slot ${r.slot.slot} of group ${r.slot.group}` : '';
          process.stdout.write(`${r.rebooted ? 'rebooting' : 'would reboot'} into ${r.plan.into.name} (generation ${r.plan.into.generation}): ${r.plan.why}${slot}\n`);
        } else process.stdout.write(`not rebooting: ${r.plan.why}\n`);
        return r.plan.kind === 'wait' ? EXIT.TRY_LATER : EXIT.OK;
      }),
    );

  const fleet = program
    .command('fleet')
    .description('reboot slots shared with other machines through etcd ([fleet] in sysprime.toml)')
    .addHelpText('after', '\nExamples:\n  sysprime fleet status\n  sysprime fleet acquire && systemctl reboot\n  sysprime fleet resume 7');

  fleet
    .command('status')
    .description('slots and their holders, each machine\'s running and staged generation and health, halted generations')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExamples:\n  sysprime fleet status\n  sysprime fleet status --json')
    .action(async (opts: { json?: boolean }) =>
      withConfig(globals(), async (config) =>
        withFleet(config, async (f) => {
          const snap = await f.snapshot();
          if (opts.json === true || globals().json === true) printJson({ id: f.id, group: f.group, slots: config.fleet.slots, ...snap });
          else process.stdout.write(renderStatus(snap, config, f.id));
        }),
      ),
    );

  fleet
    .command('acquire')
    .description('take a reboot slot of this machine\'s group (exit 0 also when it holds one; 75 when the group is full or the generation halted)')
    .option('--generation <n>', 'the generation this machine reboots into (default: the environment that boots next)', wholeNumberOption(GENERATION))
    .addHelpText('after', '\nExamples:\n  sysprime fleet acquire\n  sysprime fleet acquire --generation 7\n\nExit status: 0 a slot is held, 75 the group is full or the generation halted.')
    .action(async (opts: { generation?: number }) =>
      withConfig(globals(), async (config) => {
        const next = opts.generation ?? (await generationOf(globals(), 'next'));
        return withFleet(config, async (f, state) => {
          const { holder, already } = await f.acquire(asTarget(next, state));
          if (globals().json) printJson({ already, ...holder });
          else process.stdout.write(`${already ? 'holds' : 'took'} slot ${holder.slot} of group ${holder.group} for generation ${holder.generation}${holder.update ? ` (update ${holder.update})` : ''}\n`);
        });
      }),
    );

  fleet
    .command('release')
    .description('give back the reboot slot this machine holds')
    .addHelpText('after', '\nExamples:\n  sysprime fleet release')
    .action(async () =>
      withConfig(globals(), async (config) =>
        withFleet(config, async (f) => {
          const released = await f.release();
          if (globals().json) printJson({ released });
          else process.stdout.write(released ? 'released the reboot slot\n' : 'this machine held no reboot slot\n');
        }),
      ),
    );

  fleet
    .command('resume <update>')
    .description('let machines reboot into an update halted by a failed health check again (its identity, or the generation number it failed as)')
    .addHelpText('after', '\nExamples:\n  sysprime fleet resume u-3f2a9c0e1b7d4a65\n  sysprime fleet resume 7')
    .action(async (what: string) =>
      withConfig(globals(), async (config) => {
        if (!isUpdateIdentity(what)) wholeNumberOrUsage(what);
        return withFleet(config, async (f) => {
          const resumed = await f.resume(what);
          if (globals().json) printJson({ resumed });
          else process.stdout.write(resumed.length ? resumed.map((h) => `${haltName(h)} resumed\n`).join('') : `${isUpdateIdentity(what) ? 'update' : 'generation'} ${what} was not halted\n`);
        });
      }),
    );

  fleet
    .command('forget <machine>')
    .description('remove a machine that left the fleet: its record (a group in [fleet] after waits for every machine it lists) and any slot it holds')
    .addHelpText('after', '\nExamples:\n  sysprime fleet forget 3f2a9c0e1b7d4a65b2c1d0e9f8a7b6c5')
    .action(async (machine: string) =>
      withConfig(globals(), async (config) =>
        withFleet(config, async (f) => {
          const forgotten = await f.forget(machine);
          if (globals().json) printJson({ machine, forgotten });
          else process.stdout.write(forgotten ? `forgot ${machine}\n` : `the fleet does not know ${machine}\n`);
        }),
      ),
    );

  fleet
    .command('report')
    .description('record this boot\'s health in the fleet (run after boot): good gives back the slot, bad halts the generation')
    .addOption(new Option('--health <result>', 'the result of the health checks').choices(['good', 'bad']).makeOptionMandatory())
    .option('--reason <text>', 'why it failed')
    .option('--generation <n>', 'the running generation (default: the running environment\'s)', wholeNumberOption(GENERATION))
    .addHelpText('after', '\nExamples:\n  sysprime fleet report --health good\n  sysprime fleet report --health bad --reason "nginx.service failed"')
    .action(async (opts: { health: 'good' | 'bad'; reason?: string; generation?: number }) =>
      withConfig(globals(), async (config) => {
        const given = opts.generation ?? (await generationOf(globals(), 'running'));
        return withFleet(config, async (f, state) => {
          const running = asTarget(given, state);
          await f.report({ running, health: opts.health, reason: opts.reason });
          const released = opts.health === 'good' ? await f.release() : false;
          const what = running.update !== null ? `update ${running.update}` : `generation ${running.generation}`;
          if (globals().json) printJson({ running: running.generation, update: running.update, health: opts.health, released });
          else process.stdout.write(`recorded generation ${running.generation} as ${opts.health}${released ? '; released the reboot slot' : ''}${opts.health === 'bad' ? `; ${what} is halted for the fleet` : ''}\n`);
        });
      }),
    );
}

/**
 * Run a fleet verb: the state database (when there is one) is opened once,
 * for the halts owed and for what `fn` reads of it, and closed after.
 */
async function withFleet(config: Config, fn: (f: Fleet, state: Db | undefined) => Promise<void>): Promise<number> {
  const f = openFleet(config);
  let state: Db | undefined;
  try {
    state = fleetState(config);
    // Halts this machine could not send when its checks failed go before anything else it says or asks.
    if (state !== undefined) for (const l of await sendOwedHalts(state, f)) log.info(l);
    await fn(f, state);
    return EXIT.OK;
  } finally {
    state?.close();
    f.close();
  }
}

/** A generation given with --generation as the fleet knows it (from the state database, when it can be read); one of this machine's environments is already known so. */
function asTarget(given: number | Target, state: Db | undefined): Target {
  return typeof given === 'number' ? targetOf(state, given) : given;
}

/** A generation from this machine's environments (root, backend and state needed), as the fleet knows it. */
async function generationOf(g: GlobalOptions, which: 'running' | 'next'): Promise<Target> {
  requireRoot();
  const ctx = await openContext({ config: g.config });
  try {
    const g = (await bootGenerations(ctx))[which];
    if (g === null) {
      throw new SysprimeError('NOT_FOUND', which === 'next' ? 'no staged environment is activated: nothing to take a reboot slot for' : 'no environment is running here', {
        hint: 'give the generation with --generation',
      });
    }
    return targetOf(ctx.db, g);
  } finally {
    await ctx.close();
  }
}

function wholeNumberOrUsage(text: string): number {
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n)) throw new SysprimeError('USAGE', `"${text}" is not a generation: use a whole number from 0`);
  return n;
}

export function renderStatus(snap: FleetSnapshot, config: Config, me: string): string {
  const lines: string[] = [];
  const groups = [...new Set([config.fleet.group, ...snap.machines.map((m) => m.group), ...snap.holders.map((h) => h.group)])].sort();
  for (const g of groups) {
    const held = snap.holders.filter((h) => h.group === g);
    const slots = g === config.fleet.group ? ` of ${config.fleet.slots}` : '';
    lines.push(`group ${g}: ${held.length}${slots} slot${held.length === 1 && slots === '' ? '' : 's'} held${held.length ? ': ' + held.map((h) => `${h.id} (generation ${h.generation}, since ${h.since})`).join(', ') : ''}`);
    for (const m of snap.machines.filter((x) => x.group === g)) {
      lines.push(
        `  ${m.id}${m.id === me ? ' (this machine)' : ''}: running ${m.running ?? '?'}${m.staged !== null ? `, going to ${m.staged}` : ''}, health ${m.health}${m.reason ? ` (${m.reason})` : ''}, updated ${m.updated}`,
      );
    }
  }
  for (const h of snap.halted) lines.push(`halted: ${haltName(h)}, failed on ${h.by} (group ${h.group}) at ${h.at}: ${h.reason}; sysprime fleet resume ${h.update ?? h.generation}`);
  if (snap.halted.length === 0) lines.push('no update is halted');
  return lines.join('\n') + '\n';
}
