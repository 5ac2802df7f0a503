/**
 * `sysprime export` and `sysprime import`: an environment as one stream
 * (export-stream.ts around the filesystem's own send stream), received as
 * an environment on another pool or machine of the same backend.
 *
 * Export never overwrites: it writes `<file>.sysprime-partial-<pid>`,
 * syncs it and links it to its name, which fails if the name was taken
 * meanwhile; a killed export leaves only that partial file. Import refuses
 * a name that is taken and a stream of the other backend before reading
 * the payload, receives under a temporary name the backend's recover()
 * removes after a crash, checks the whole stream before the environment
 * gets its name (with the mark of an unfinished import), and then takes its
 * pristine state and writes the boot entries (import-finish.ts, which also
 * finishes an import killed once the environment had its name).
 *
 * An imported environment gets a generation of its own, above every local
 * one (so that nothing measures it against an unrelated pristine
 * snapshot). Its pristine state is, by default, the environment as it
 * arrived: drift shows what changed here since the import. An export made
 * `--with-pristine` carries the pristine snapshot of the environment's
 * generation as well (the environment then goes as an increment from it,
 * about the size of a plain export); `import --with-pristine` makes that
 * the new generation's pristine, so the admin's changes made on the other
 * machine stay changes here: drift shows them, and the next update carries
 * them over. Imported without the option, it is discarded once the
 * environment is made.
 */
import { closeSync, createReadStream, createWriteStream, existsSync, fsyncSync, linkSync, openSync, unlinkSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import type { Context } from '../context.js';
import type { EnvironmentInfo } from '../backends/types.js';
import { SysprimeError, errnoOf, isSysprimeError, messageOf } from '../errors.js';
import { log } from '../log.js';
import { checkName } from '../names.js';
import { faultPoint } from '../process/fault.js';
import { forgetGeneration } from '../state/generations.js';
import { runRecorded } from '../state/journal.js';
import { acquireLock, withLock } from '../state/lock.js';
import { IMPORT_STARTED, importUnfinished } from '../staging/mark.js';
import { DESCRIPTION_KEY, descriptionOf } from './annotations.js';
import { exportReader, exportWriter, partsOf, type ExportHeader, type ExportWriter } from './export-stream.js';
import { IMPORT_KIND, TRANSFER_KIND, finishImport, type ImportParams } from './import-finish.js';
import { findEnvironment, recoverFirst, refuseExisting, refuseUnfinished } from './lifecycle.js';
import { kernelsBeforeCopy } from './boot-kernels.js';

function ended(stream: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.once('error', reject);
    stream.end(() => resolve());
  });
}

export interface ExportOptions {
  /** The pristine snapshot of its generation first, the environment as an increment from it. */
  withPristine?: boolean;
}

/** Write environment NAME to `file` (never over an existing one), or to `out` when `file` is '-'. */
export async function exportEnvironment(ctx: Context, name: string, file: string, out: Writable = process.stdout, opts: ExportOptions = {}): Promise<ExportHeader> {
  // No lock: export only reads (its copy snapshot names its process, so another verb's recovery leaves it
  // while it runs), and `export - | import -` on one machine must not wait for itself.
  const env = await findEnvironment(ctx, name);
  refuseUnfinished(env);
  await kernelsBeforeExport(ctx, env);
  const withPristine = opts.withPristine === true;
  // Asked before a byte is written: what the backend cannot carry (a pruned pristine among it) is refused while nothing exists yet.
  const { parts, nested, unmounted = [] } = await ctx.backend.sendParts(env.name, { withPristine });
  const header: ExportHeader = {
    backend: ctx.backend.kind,
    environment: env.name,
    generation: env.generation,
    description: descriptionOf(env),
    exported: new Date().toISOString(),
    // The environment alone is format 1, which every sysprime reads.
    ...(parts.length > 1 ? { parts } : {}),
    ...(nested.length > 0 ? { nested } : {}),
    ...(unmounted.length > 0 ? { unmounted } : {}),
  };
  const send = async (w: ExportWriter): Promise<void> => {
    try {
      for (const [i, part] of parts.entries()) await ctx.backend.sendPart(env.name, part, i === 0 ? w.payload : await w.next(part), { fromPristine: withPristine, nested });
    } finally {
      await ctx.backend.sendFinished(env.name);
    }
    await w.finish();
  };
  if (file === '-') {
    await send(exportWriter(out, header));
    return header;
  }
  if (existsSync(file)) throw new SysprimeError('EXISTS', `${file} exists already: export never overwrites a file`, { hint: 'name another file, or remove that one first' });
  const partial = `${file}.sysprime-partial-${process.pid}`;
  let stream: Writable;
  try {
    // A file of the admin's choosing on the host, not a path inside an environment: not the confined writer's.
    // Nor the durable one's, which replaces a file: an export never does. 'wx' is O_CREAT|O_EXCL, which
    // refuses any name that is there already, a link included (never followed); the link to `file` below
    // refuses the same way, and the partial name is synced before it.
    stream = createWriteStream(partial, { flags: 'wx', mode: 0o600 });
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', reject);
    });
  } catch (err) {
    throw new SysprimeError('IO', `cannot write ${partial}: ${messageOf(err)}`, { cause: err });
  }
  try {
    await send(exportWriter(stream, header));
    await ended(stream);
    const fd = openSync(partial, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    faultPoint(TRANSFER_KIND, 'export-written');
    try {
      linkSync(partial, file);
    } catch (err) {
      if (errnoOf(err) === 'EEXIST') throw new SysprimeError('EXISTS', `${file} appeared while exporting: export never overwrites a file`, { hint: `the export is in ${partial}` });
      throw err;
    }
    unlinkSync(partial);
    return header;
  } catch (err) {
    stream.destroy();
    if (!(err instanceof SysprimeError && err.code === 'EXISTS')) {
      try {
        unlinkSync(partial);
      } catch {
        // gone already
      }
    }
    throw err;
  }
}

/**
 * The running environment's kernels from a /boot partition into its tree
 * first, as for any copy, under the lock for that moment only; when another
 * verb holds it (an import this export is piped into), the export goes on
 * with the kernels of the last sync, and says so.
 */
async function kernelsBeforeExport(ctx: Context, env: EnvironmentInfo): Promise<void> {
  if (!env.booted) return;
  let lock: ReturnType<typeof acquireLock>;
  try {
    lock = acquireLock(ctx.db, 'copying kernels before an export');
  } catch (err) {
    if (isSysprimeError(err, 'BUSY')) {
      log.warn(`${err.message}: "${env.name}" is exported with the kernels of its last sync with /boot`);
      return;
    }
    throw err;
  }
  try {
    await kernelsBeforeCopy(ctx, env);
  } finally {
    lock.release();
  }
}

export interface Imported {
  env: EnvironmentInfo;
  header: ExportHeader;
}

export interface ImportOptions {
  /** Keep the pristine state the export carries as the new generation's; refused when it carries none. */
  withPristine?: boolean;
}

/** Receive the export in `file` ('-': `input`) as environment NAME (default: the name it was exported under). */
export async function importEnvironment(ctx: Context, file: string, name?: string, input: Readable = process.stdin, opts: ImportOptions = {}): Promise<Imported> {
  if (name !== undefined) checkName(name);
  return withLock(ctx.db, 'importing an environment', async () => {
    let source: Readable;
    if (file === '-') source = input;
    else {
      if (!existsSync(file)) throw new SysprimeError('NOT_FOUND', `${file} does not exist`);
      source = createReadStream(file);
    }
    const reader = exportReader(source);
    try {
      const header = await reader.header;
      if (header.backend !== ctx.backend.kind) {
        throw new SysprimeError('REFUSED', `${file === '-' ? 'the stream' : file} holds a ${header.backend} environment, and this is ${ctx.backend.describe()}`, {
          hint: 'an export is imported by a machine or pool of the same filesystem',
        });
      }
      const carried = partsOf(header);
      const carries = carried.includes('pristine');
      if (opts.withPristine === true && !carries) {
        throw new SysprimeError('REFUSED', `${file === '-' ? 'the stream' : file} does not carry the pristine state of "${header.environment}"`, {
          hint: `export it again with --with-pristine, or import it without; its state on arrival then becomes its pristine`,
        });
      }
      const target = checkName(name ?? header.environment);
      // An import killed earlier is finished (or closed) first: its environment may hold this very name.
      await recoverFirst(ctx);
      // One that recovery could not finish keeps its record only while it is the last import: this one waits.
      const unfinished = (await ctx.backend.listEnvironments()).find(importUnfinished);
      if (unfinished !== undefined) {
        throw new SysprimeError('REFUSED', `the import of "${unfinished.name}" is not finished yet: import one at a time`, {
          hint: '`sysprime doctor --fix` finishes it, or says what stops it',
        });
      }
      await refuseExisting(ctx, target);
      const generations = [...(await ctx.backend.listEnvironments()).map((e) => e.generation), ...(await ctx.backend.listPristines()).map((p) => p.generation)];
      const generation = Math.max(-1, ...generations) + 1;
      // A staged generation of that number that is gone left its update's row: the import is not that update.
      forgetGeneration(ctx.db, generation);
      const params: ImportParams = { name: target, generation, from: header.environment, exported: header.exported };
      await runRecorded(ctx.db, IMPORT_KIND, params, async () => {
        // Marked before it has its name, its description with it: once it has its name, whatever stops the
        // import leaves an environment the next recovery finishes, never one without its pristine state.
        const meta = { ...IMPORT_STARTED, ...(header.description !== null ? { [DESCRIPTION_KEY]: header.description } : {}) };
        const streams = { ...Object.fromEntries(carried.map((p) => [p, reader.parts[p]])), environment: reader.parts.environment };
        await ctx.backend.receiveEnvironment(target, generation, streams, () => reader.verified, meta, { keepPristine: opts.withPristine === true, nested: header.nested ?? [], unmounted: header.unmounted ?? [] });
        faultPoint(TRANSFER_KIND, 'import-received');
        await finishImport(ctx, await findEnvironment(ctx, target), { from: header.environment, exported: header.exported });
      });
      return { env: await findEnvironment(ctx, target), header };
    } catch (err) {
      source.destroy();
      for (const part of Object.values(reader.parts)) part.destroy();
      // What the stream itself says (cut short, changed) explains a failed receive better than the tool does.
      const streamError = await reader.verified.then(
        () => null,
        (e: unknown) => e,
      );
      throw streamError instanceof SysprimeError && !(err instanceof SysprimeError && err.code !== 'COMMAND_FAILED') ? streamError : err;
    }
  });
}
