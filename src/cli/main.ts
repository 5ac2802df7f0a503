/** The sysprime command line: global options and the list of verbs. */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { EXIT } from '../errors.js';
import type { GlobalOptions } from './runner.js';
import { registerEnvironmentCommands } from './commands/environments.js';
import { registerStatus } from './commands/status.js';
import { registerBart } from './commands/bart.js';
import { registerStage } from './commands/stage.js';
import { registerDrift } from './commands/drift.js';
import { registerReintegrate, registerRollback } from './commands/reintegrate.js';
import { registerTransfer } from './commands/transfer.js';
import { registerMaintenance } from './commands/maintenance.js';
import { registerStore } from './commands/store.js';
import { registerKey } from './commands/key.js';
import { registerFleet } from './commands/fleet.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  // The runtime is part of what an admin runs as root: say which one it is.
  return `${pkg.version} (Node.js ${process.version})`;
}

export function buildProgram(): Command {
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
  registerEnvironmentCommands(program, globals);
  registerStatus(program, globals);
  registerStage(program, globals);
  registerDrift(program, globals);
  registerReintegrate(program, globals);
  registerRollback(program, globals);
  registerTransfer(program, globals);
  registerMaintenance(program, globals);
  registerStore(program, globals);
  registerKey(program, globals);
  registerFleet(program, globals);
  registerBart(program, globals);
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
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are not errors; everything else commander rejects is a usage error.
      process.exitCode = err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
      return;
    }
    throw err;
  }
}
