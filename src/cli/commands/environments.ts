/** The environment verbs: init, list, create, snapshot, describe, pin, unpin, activate, destroy, rename, mount, umount. */
import type { Command } from 'commander';
import type { EnvironmentInfo, SnapshotInfo } from '../../backends/types.js';
import type { Context } from '../../context.js';
import * as lifecycle from '../../environments/lifecycle.js';
import { pruneEnvironments } from '../../environments/prune.js';
import { formatBytes, printJson, table } from '../output.js';
import { withContext, type GlobalOptions } from '../runner.js';
import { atRiskLines, sharedDataOfEnvironment } from '../../environments/shared.js';
import { log } from '../../log.js';
import { autoOf, descriptionOf, isPinned } from '../../environments/annotations.js';
import { healthOf } from '../../health/history.js';
import * as snapshots from '../../environments/snapshots.js';
import { parseStateRef } from '../../names.js';

export function environmentJson(e: EnvironmentInfo) {
  return {
    name: e.name,
    id: e.id,
    generation: e.generation,
    booted: e.booted,
    default: e.isDefault,
    pristine: e.pristine,
    created: e.created.toISOString(),
    spaceUnique: e.spaceUnique,
    mounted: e.mounted,
    description: descriptionOf(e),
    pinned: isPinned(e),
    auto: autoOf(e),
  };
}

export function snapshotJson(s: SnapshotInfo, pruned: ReadonlySet<string>) {
  return { environment: s.environment, name: s.name, id: s.id, generation: s.generation, created: s.created.toISOString(), prune: pruned.has(`${s.environment}@${s.name}`) };
}

/** What `prune --dry-run` would destroy, and the space that frees (null: the filesystem cannot say). */
export interface Prunable {
  names: string[];
  bytes: number | null;
}

async function prunable(ctx: Context): Promise<Prunable> {
  try {
    const { plan } = await pruneEnvironments(ctx, { dryRun: true });
    const names = plan.destroy.map((d) => d.name);
    const bytes = plan.destroy.reduce<number | null>((sum, d) => (sum === null || d.spaceUnique === null ? null : sum + d.spaceUnique), 0);
    return { names, bytes };
  } catch {
    // The listing matters more than the estimate: a plan that cannot be made frees an unknown amount.
    return { names: [], bytes: null };
  }
}

function prunableLine(p: Prunable): string {
  if (p.names.length === 0 && p.bytes !== null) return 'prune would free nothing\n';
  const amount = p.bytes === null ? 'an unknown amount' : formatBytes(p.bytes);
  const what = p.names.length === 0 ? '' : ` (destroying ${p.names.length} environment${p.names.length === 1 ? '' : 's'}: ${p.names.join(', ')})`;
  return `prune would free ${amount}${what}\n`;
}

function flags(e: EnvironmentInfo): string {
  return (e.booted ? 'N' : '') + (e.isDefault ? 'R' : '') || '-';
}

export function registerEnvironmentCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('init')
    .description('adopt an existing root as the first environment and take its pristine snapshot (generation 0)')
    .option('--adopt <source>', "dataset or subvolume to adopt ('/' = the running root)", '/')
    .option('--name <name>', 'name of the first environment (default: a ZFS root under ROOT keeps its name, else "default")')
    .addHelpText(
      'after',
      '\nExamples:\n  sysprime init                       adopt the running root (on ZFS, or the pool\'s bootfs)\n  sysprime init --adopt @ --name debian   adopt the Btrfs subvolume @\n  sysprime init --adopt rpool/ROOT/debian  adopt a ZFS root in place, keeping its name',
    )
    .action(async (opts: { adopt: string; name?: string }) =>
      withContext(globals(), async (ctx) => {
        const env = await lifecycle.initialise(ctx, { adopt: opts.adopt, name: opts.name });
        for (const line of atRiskLines(await sharedDataOfEnvironment(ctx, env.name))) log.warn(line);
        if (globals().json) printJson(environmentJson(env));
        else process.stdout.write(`initialised ${ctx.backend.describe()}: environment "${env.name}", generation 0, pristine ${env.pristine}\n`);
      }),
    );

  program
    .command('list')
    .alias('ls')
    .description('list environments (with --snapshots, the snapshots taken of them)')
    .option('--snapshots', 'list the snapshots of environments (`sysprime snapshot`) instead')
    .addHelpText(
      'after',
      '\nFlags: N = running now, R = default at next boot. HEALTH: the result of its last health checks ([health], after a boot), - when none ran. AUTO: made on its own (apt: by the apt hook, before a package operation), kept by [retention] keep_auto. PINNED: prune keeps it, destroy refuses it without --force.\nThe last line says how much `sysprime prune` would free.\n\nExamples:\n  sysprime list\n  sysprime --json list              name, generation, booted, default, pristine, created, spaceUnique, mounted, description, pinned, auto, health, prune\n  sysprime list --snapshots         ENV@NAME, generation, created, whether prune would destroy it\n  sysprime --json list --snapshots  environment, name, id, generation, created, prune',
    )
    .action(async (opts: { snapshots?: boolean }) =>
      withContext(globals(), async (ctx) => {
        if (opts.snapshots) {
          const all = await snapshots.listSnapshots(ctx);
          const pruned = new Set(
            all.length === 0
              ? []
              : await pruneEnvironments(ctx, { dryRun: true }).then(
                  (r) => r.snapshots.destroy.map((d) => `${d.environment}@${d.name}`),
                  () => [],
                ),
          );
          if (globals().json) {
            printJson(all.map((x) => snapshotJson(x, pruned)));
            return;
          }
          if (all.length === 0) {
            process.stdout.write('no snapshots; `sysprime snapshot ENV [NAME]` takes one\n');
            return;
          }
          process.stdout.write(
            table(
              ['SNAPSHOT', 'GEN', 'CREATED', 'PRUNE'],
              all.map((x) => [`${x.environment}@${x.name}`, String(x.generation), x.created.toISOString().slice(0, 16).replace('T', ' '), pruned.has(`${x.environment}@${x.name}`) ? 'yes' : '-']),
            ),
          );
          return;
        }
        const envs = await lifecycle.listEnvironments(ctx);
        const prune = envs.length === 0 ? { names: [], bytes: 0 } : await prunable(ctx);
        if (globals().json) {
          // An array, as scripts expect; each environment says whether prune would destroy it.
          printJson(envs.map((e) => ({ ...environmentJson(e), health: healthOf(ctx, e.name), prune: prune.names.includes(e.name) })));
          return;
        }
        // Roots another tool made (zectl, an installer): shown so nobody thinks them lost, and never touched.
        const foreign = await lifecycle.listForeignRoots(ctx);
        const foreignLine =
          foreign.length === 0 ? '' : `not sysprime's, left alone: ${foreign.map((f) => `${f.name}${f.madeBy !== null ? ` (${f.madeBy})` : ''}${f.isDefault ? ' [default]' : ''}`).join(', ')}\n`;
        if (envs.length === 0) {
          process.stdout.write(`no environments on ${ctx.backend.describe()}; run \`sysprime init\`\n${foreignLine}`);
          return;
        }
        process.stdout.write(
          table(
            ['NAME', 'ACTIVE', 'GEN', 'HEALTH', 'MOUNTED', 'SPACE', 'CREATED', 'AUTO', 'PINNED', 'DESCRIPTION'],
            envs.map((e) => [
              e.name,
              flags(e),
              String(e.generation),
              healthOf(ctx, e.name) ?? '-',
              e.mounted ?? '-',
              formatBytes(e.spaceUnique),
              e.created.toISOString().slice(0, 16).replace('T', ' '),
              autoOf(e) ?? '-',
              isPinned(e) ? 'yes' : '-',
              descriptionOf(e) ?? '',
            ]),
          ),
        );
        process.stdout.write(foreignLine);
        process.stdout.write(prunableLine(prune));
      }),
    );

  program
    .command('create <name>')
    .description('create an environment from another one as it is now (default: the current one), or from an older state of one')
    .option('--from <env>', 'source environment, ENV@SNAPSHOT (one of its snapshots) or ENV@pristine (the pristine state of its generation)')
    .option('--description <text>', 'one line saying what it is for, shown by list and in its boot menu title')
    .addHelpText(
      'after',
      '\nExamples:\n  sysprime create before-upgrade          a copy of the current environment\n  sysprime create test --from gen-3\n  sysprime create before-kernel --description "before the 6.12 kernel"\n  sysprime create php-7 --from gen-3@before-php-8   from a snapshot (sysprime snapshot)\n  sysprime create clean --from gen-3@pristine       gen-3\'s generation as staging made it',
    )
    .action(async (name: string, opts: { from?: string; description?: string }) =>
      withContext(globals(), async (ctx) => {
        const env = await lifecycle.createEnvironment(ctx, name, opts.from, opts.description === undefined ? {} : { description: opts.description });
        if (globals().json) printJson(environmentJson(env));
        else process.stdout.write(`created "${env.name}" (generation ${env.generation})\n`);
      }),
    );

  program
    .command('snapshot <env> [name]')
    .description('take a read-only snapshot of an environment as it is now (default name: the time, UTC)')
    .addHelpText(
      'after',
      '\nA ZFS snapshot of the environment (and its child datasets), or a read-only Btrfs snapshot under ROOT/.snapshots.\n`list --snapshots` shows them; `create NEW --from ENV@NAME` makes an environment from one; `destroy ENV@NAME` removes one;\nprune keeps [retention] keep_snapshots of each environment (all of a pinned one); they go with their environment.\n\nExamples:\n  sysprime snapshot gen-4 before-php-8\n  sysprime snapshot gen-4                  named like 20261122T030102Z',
    )
    .action(async (env: string, name: string | undefined) =>
      withContext(globals(), async (ctx) => {
        const snap = await snapshots.takeSnapshot(ctx, env, name);
        if (globals().json) printJson(snapshotJson(snap, new Set()));
        else process.stdout.write(`took snapshot ${snap.environment}@${snap.name} (generation ${snap.generation})\n`);
      }),
    );

  program
    .command('describe <name> <text>')
    .description('set the description of an environment (one line; an empty text clears it)')
    .addHelpText('after', '\nExamples:\n  sysprime describe gen-4 "known good, before the 6.12 kernel"\n  sysprime describe gen-4 ""              clear it')
    .action(async (name: string, text: string) =>
      withContext(globals(), async (ctx) => {
        const env = await lifecycle.describeEnvironment(ctx, name, text);
        if (globals().json) printJson(environmentJson(env));
        else process.stdout.write(descriptionOf(env) === null ? `"${env.name}" has no description now\n` : `"${env.name}" is described as: ${descriptionOf(env)}\n`);
      }),
    );

  program
    .command('pin <name>')
    .description('pin an environment: prune keeps it, destroy refuses it without --force')
    .addHelpText('after', '\nExamples:\n  sysprime pin gen-4')
    .action(async (name: string) =>
      withContext(globals(), async (ctx) => {
        const { env, changed } = await lifecycle.pinEnvironment(ctx, name);
        if (globals().json) printJson(environmentJson(env));
        else process.stdout.write(changed ? `pinned "${env.name}": prune keeps it, destroy refuses it without --force\n` : `"${env.name}" was already pinned\n`);
      }),
    );

  program
    .command('unpin <name>')
    .description('unpin an environment: retention may destroy it again')
    .addHelpText('after', '\nExamples:\n  sysprime unpin gen-4')
    .action(async (name: string) =>
      withContext(globals(), async (ctx) => {
        const { env, changed } = await lifecycle.unpinEnvironment(ctx, name);
        if (globals().json) printJson(environmentJson(env));
        else process.stdout.write(changed ? `unpinned "${env.name}"\n` : `"${env.name}" was not pinned\n`);
      }),
    );

  program
    .command('activate <name>')
    .description('make an environment the one to boot next (every boot, or only the next with --once)')
    .option('--once', 'boot it only once, then return to the default')
    .addHelpText('after', '\nExamples:\n  sysprime activate gen-4          boot gen-4 from now on\n  sysprime activate --once gen-3   boot yesterday\'s environment once')
    .action(async (name: string, opts: { once?: boolean }) =>
      withContext(globals(), async (ctx) => {
        if (opts.once) {
          const env = await lifecycle.activateOnce(ctx, name);
          if (globals().json) printJson({ ...environmentJson(env), once: true });
          else process.stdout.write(`"${env.name}" boots at the next boot only; the default stays\n`);
          return;
        }
        const env = await lifecycle.activateEnvironment(ctx, name);
        if (globals().json) printJson(environmentJson(env));
        else process.stdout.write(`"${env.name}" is now the default boot environment\n`);
      }),
    );

  program
    .command('destroy <name>')
    .description('destroy an environment, with its snapshots (never the running or the default one; a pinned one only with --force), or one snapshot ENV@NAME')
    .option('--force', 'destroy it even though it is pinned')
    .addHelpText(
      'after',
      '\nAn environment\'s snapshots (`sysprime snapshot`) are destroyed with it; environments made from them stay.\n\nExamples:\n  sysprime destroy before-upgrade\n  sysprime destroy --force old-pinned\n  sysprime destroy gen-4@before-php-8     one snapshot',
    )
    .action(async (name: string, opts: { force?: boolean }) =>
      withContext(globals(), async (ctx) => {
        const ref = parseStateRef(name);
        if (ref !== null) {
          await snapshots.destroySnapshot(ctx, ref.environment, ref.name);
          if (globals().json) printJson({ destroyed: name });
          else process.stdout.write(`destroyed snapshot ${name}\n`);
          return;
        }
        const { snapshots: gone } = await lifecycle.destroyEnvironment(ctx, name, { force: opts.force === true });
        if (globals().json) printJson({ destroyed: name, snapshots: gone });
        else process.stdout.write(`destroyed "${name}"${gone.length === 0 ? '' : ` and its snapshot${gone.length === 1 ? '' : 's'} ${gone.join(', ')}`}\n`);
      }),
    );

  program
    .command('rename <old> <new>')
    .description('rename an environment')
    .addHelpText('after', '\nExamples:\n  sysprime rename gen-4 bookworm-2026-11')
    .action(async (from: string, to: string) =>
      withContext(globals(), async (ctx) => {
        const env = await lifecycle.renameEnvironment(ctx, from, to);
        if (globals().json) printJson(environmentJson(env));
        else process.stdout.write(`renamed "${from}" to "${to}"\n`);
      }),
    );

  program
    .command('mount <name> [dir]')
    .description(`mount an environment (default at ${lifecycle.MOUNT_BASE}/NAME)`)
    .option('--force', 'mount over a directory that is not empty or belongs to the running system')
    .addHelpText('after', `\nExamples:\n  sysprime mount gen-4               prints ${lifecycle.MOUNT_BASE}/gen-4\n  sysprime mount gen-4 /mnt/next`)
    .action(async (name: string, dir: string | undefined, opts: { force?: boolean }) =>
      withContext(globals(), async (ctx) => {
        const at = await lifecycle.mountEnvironment(ctx, name, dir, { force: opts.force === true });
        if (globals().json) printJson({ name, mounted: at });
        else process.stdout.write(`${at}\n`);
      }),
    );

  program
    .command('umount <name>')
    .alias('unmount')
    .description('unmount an environment mounted with `sysprime mount`')
    .addHelpText('after', '\nExamples:\n  sysprime umount gen-4')
    .action(async (name: string) =>
      withContext(globals(), async (ctx) => {
        await lifecycle.unmountEnvironment(ctx, name);
        if (globals().json) printJson({ name, mounted: null });
      }),
    );

  program
    .command('shell <name> [command...]')
    .description('run a shell (or a command) chrooted in an environment that is not running, for repairs and inspection')
    .option('--network', "copy the running system's /etc/resolv.conf in for the duration (apt inside needs it)")
    .addHelpText(
      'after',
      '\nThe exit status is the command\'s. /dev, /proc, /sys and /run are mounted inside and removed afterwards; no service starts.\n' +
        'Installing a bootloader does not work inside (grub-install, bootctl install, a reinstall of grub-efi-amd64 or shim): the ESP is not mounted there and the\n' +
        "firmware's EFI variables cannot be reached. Install bootloaders from the running system; sysprime writes the environments' boot entries itself afterwards.\n" +
        '\nExamples:\n  sysprime shell gen-4                       a login shell in gen-4\n  sysprime shell gen-4 -- apt-cache policy   one command\n  sysprime shell --network gen-4 -- apt-get install --reinstall openssh-server   repair a package (its service does not start)',
    )
    .action(async (name: string, command: string[], opts: { network?: boolean }) =>
      // Loaded here: the chroot and its mounts are no other verb's.
      withContext(globals(), async (ctx) => (await import('../../environments/shell.js')).shellIn(ctx, name, command, { network: opts.network === true, ...(process.env['TERM'] !== undefined ? { term: process.env['TERM'] } : {}) })),
    );
}
