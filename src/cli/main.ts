/** The sysprime command line: global options and the list of verbs. */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { EXIT } from '../errors.js';
import { withZfsQueryCache } from '../backends/zfs/query-cache.js';
import type { GlobalOptions } from './runner.js';

type Register = (program: Command, globals: () => GlobalOptions) => void;

/**
 * The modules of verbs, in the order help lists them, and the top-level
 * verbs (aliases included) each defines. A run loads only the module of the
 * verb it was given: every sysprime start (tests run it thousands of times,
 * the VM guests at boot) would otherwise load the whole program, most of it
 * for verbs it does not run. test/unit/cli/verbs.test.ts holds this table
 * to what the modules define.
 */
export const VERB_MODULES: readonly { verbs: readonly string[]; load: () => Promise<Register[]> }[] = [
  {
    verbs: ['init', 'list', 'ls', 'create', 'snapshot', 'describe', 'pin', 'unpin', 'activate', 'destroy', 'rename', 'mount', 'umount', 'unmount', 'shell'],
    load: async () => [(await import('./commands/environments.js')).registerEnvironmentCommands],
  },
  { verbs: ['status'], load: async () => [(await import('./commands/status.js')).registerStatus] },
  { verbs: ['stage', 'daemon'], load: async () => [(await import('./commands/stage.js')).registerStage] },
  { verbs: ['drift'], load: async () => [(await import('./commands/drift.js')).registerDrift] },
  {
    verbs: ['reintegrate', 'rollback'],
    load: async () => {
      const m = await import('./commands/reintegrate.js');
      return [m.registerReintegrate, m.registerRollback];
    },
  },
  { verbs: ['export', 'import'], load: async () => [(await import('./commands/transfer.js')).registerTransfer] },
  { verbs: ['prune', 'doctor', 'boot-hook', 'metrics', 'health', 'apt-hook'], load: async () => [(await import('./commands/maintenance.js')).registerMaintenance] },
  { verbs: ['store'], load: async () => [(await import('./commands/store.js')).registerStore] },
  { verbs: ['key'], load: async () => [(await import('./commands/key.js')).registerKey] },
  { verbs: ['reboot', 'fleet'], load: async () => [(await import('./commands/fleet.js')).registerFleet] },
  { verbs: ['bart'], load: async () => [(await import('./commands/bart.js')).registerBart] },
];

/** The verb of a command line (the first word that is not a global option or its value), if any. */
export function verbOf(argv: readonly string[]): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return argv[i + 1];
    if (a === '-c' || a === '--config') i++;
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  // The runtime is part of what an admin runs as root: say which one it is.
  return `${pkg.version} (Node.js ${process.version})`;
}

/**
 * The program with the verbs of `verb`'s module, or with every verb when
 * there is none or it is not one of the table's (help, a typo: commander
 * lists them all or suggests the nearest).
 */
export async function buildProgram(verb?: string): Promise<Command> {
  const program = new Command();
  program
    .name('sysprime')
    .description('boot environments and preemptive updates for Linux on ZFS and Btrfs')
    .version(version(), '-V, --version')
    .option('-c, --config <file>', 'configuration file (default /etc/sysprime/sysprime.toml, or $SYSPRIME_CONFIG)')
    .option('--json', 'machine-readable output')
    .option('-v, --verbose', 'show commands run and their errors')
    .option('-q, --quiet', 'only errors')
    .showSuggestionAfterError(true)
    .exitOverride();
  const globals = () => program.opts<GlobalOptions>();
  const one = VERB_MODULES.find((m) => verb !== undefined && m.verbs.includes(verb));
  for (const m of one !== undefined ? [one] : VERB_MODULES) for (const register of await m.load()) register(program, globals);
  return program;
}

/**
 * A reader that went away (`sysprime list | head -1`, `sysprime stage 2>&1 |
 * head -1`) is no failure of sysprime's: output to that stream stops for the
 * rest of the run, silently, and the operation goes on, so a journaled one
 * is never cut off midway by its own progress line.
 */
function ignoreClosedPipes(): void {
  for (const stream of [process.stdout, process.stderr]) {
    let closed = false;
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (closed || err.code === 'EPIPE') {
        closed = true;
        return;
      }
      throw err;
    });
  }
}

export async function main(argv: string[]): Promise<void> {
  ignoreClosedPipes();
  const program = await buildProgram(verbOf(argv));
  try {
    // One command: ZFS's answers are kept between its reads while nothing can have changed them.
    await withZfsQueryCache(() => program.parseAsync(argv));
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are not errors; everything else commander rejects is a usage error.
      process.exitCode = err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
      return;
    }
    throw err;
  }
}
