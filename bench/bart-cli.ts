/**
 * `sysprime bart` alone: the bart verbs on a bare commander program, so the
 * benchmark and the bart tests run them without loading the rest of the CLI.
 */
import { Command, CommanderError } from 'commander';
import { registerBart } from '../src/cli/commands/bart.js';

const program = new Command().name('sysprime').exitOverride();
registerBart(program);
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (!(err instanceof CommanderError)) throw err;
  process.exitCode = err.exitCode === 0 ? 0 : 2;
}
