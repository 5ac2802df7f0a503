/** `sysprime export` and `sysprime import`: an environment as one stream, received on another pool or machine of the same backend. */
import type { Command } from 'commander';
import { exportEnvironment, importEnvironment } from '../../environments/transfer.js';
import { SysprimeError } from '../../errors.js';
import { printJson } from '../output.js';
import { withContext, type GlobalOptions } from '../runner.js';
import { environmentJson } from './environments.js';

export function registerTransfer(program: Command, globals: () => GlobalOptions): void {
  program
    .command('export <env> [file]')
    .description('write an environment as one stream (zfs send / btrfs send, with its name, generation and description) to FILE, or to stdout with -')
    .option('-o, --output <file>', 'the file to write (same as FILE)')
    .option('--with-pristine', 'carry the pristine state of its generation too (the environment as an increment from it), for import --with-pristine')
    .addHelpText(
      'after',
      '\nAn existing file is never overwritten. The stream ends with its length and SHA-256, which import checks.\n\nExamples:\n  sysprime export gen-4 /srv/gen-4.sysprime\n  sysprime export gen-4 - | ssh other sysprime import - gen-4\n  sysprime export --with-pristine gen-4 /srv/gen-4.sysprime',
    )
    .action(async (env: string, file: string | undefined, opts: { output?: string; withPristine?: boolean }) =>
      withContext(globals(), async (ctx) => {
        const target = file ?? opts.output;
        if (target === undefined) throw new SysprimeError('USAGE', 'name the file to write, or - for stdout', { hint: `sysprime export ${env} FILE` });
        if (file !== undefined && opts.output !== undefined) throw new SysprimeError('USAGE', 'FILE and --output both name a file: give one');
        if (target === '-' && process.stdout.isTTY) throw new SysprimeError('USAGE', 'stdout is a terminal: a send stream is not for reading', { hint: 'redirect it to a file or a pipe' });
        const header = await exportEnvironment(ctx, env, target, process.stdout, { withPristine: opts.withPristine === true });
        // With -, stdout is the stream: what was done goes to stderr.
        const line = `exported "${header.environment}" (generation ${header.generation}${header.parts?.includes('pristine') === true ? ', with its pristine state' : ''})${target === '-' ? '' : ` to ${target}`}\n`;
        if (target === '-') process.stderr.write(line);
        else if (globals().json) printJson({ exported: header.environment, file: target, generation: header.generation, withPristine: header.parts?.includes('pristine') === true });
        else process.stdout.write(line);
      }),
    );

  program
    .command('import <file> [name]')
    .description('receive an export (FILE, or - for stdin) as a new environment NAME (default: the name it was exported under)')
    .option('--name <name>', 'the new environment (same as NAME)')
    .option('--with-pristine', 'make the pristine state an export --with-pristine carries the new generation\'s, so the changes made since it stay changes here')
    .addHelpText(
      'after',
      '\nRefused: a name that is taken, a stream of the other backend, one cut short or changed; nothing is left of a refused or killed import.\nThe environment gets a generation of its own above the local ones, whose pristine state is the environment as it arrived,\nor with --with-pristine the pristine state the export carries (zfs-fuse cannot receive such an export; OpenZFS can).\n\nExamples:\n  sysprime import /srv/gen-4.sysprime\n  sysprime import /srv/gen-4.sysprime gen-4-from-server\n  sysprime import --with-pristine /srv/gen-4.sysprime',
    )
    .action(async (file: string, name: string | undefined, opts: { name?: string; withPristine?: boolean }) =>
      withContext(globals(), async (ctx) => {
        if (name !== undefined && opts.name !== undefined) throw new SysprimeError('USAGE', 'NAME and --name both name the environment: give one');
        const withPristine = opts.withPristine === true;
        const { env, header } = await importEnvironment(ctx, file, name ?? opts.name, process.stdin, { withPristine });
        if (globals().json) printJson({ ...environmentJson(env), importedFrom: header.environment, exported: header.exported, withPristine });
        else process.stdout.write(`imported "${header.environment}" as "${env.name}" (generation ${env.generation}, ${withPristine ? 'with the pristine state it was exported with' : 'its pristine state as it arrived'})\n`);
      }),
    );
}
