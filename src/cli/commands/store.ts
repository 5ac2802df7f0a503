/** `sysprime store verify`: is the store-built /usr of an environment what its packages say; --repair puts it back. */
import type { Command } from 'commander';
import { checkEnvironmentStore } from '../../environments/store-check.js';
import { EXIT } from '../../errors.js';
import { isClean, type StoreVerifyReport } from '../../updaters/store/verify.js';
import { printJson } from '../output.js';
import { withContext, type GlobalOptions } from '../runner.js';

function renderReport(env: string, r: StoreVerifyReport): string {
  const lines: string[] = [];
  for (const m of r.manifests) lines.push(`manifest ${m}: missing or damaged in the store`);
  for (const o of r.damagedObjects) {
    lines.push(`object ${o.key}: ${o.detail}`);
    for (const p of o.sharedBy) lines.push(`  shared by ${p}`);
  }
  for (const f of r.damagedFiles) lines.push(`${f.path}: ${f.detail}`);
  const what = `${r.objects} objects and ${r.files} files of /usr (${r.packages} packages)`;
  lines.push(isClean(r) ? `store of "${env}": ${what} are intact` : `store of "${env}": ${r.damagedObjects.length} damaged objects, ${r.damagedFiles.length} damaged files among ${what}`);
  return `${lines.join('\n')}\n`;
}

export function registerStore(program: Command, globals: () => GlobalOptions): void {
  const store = program
    .command('store')
    .description('check and repair the store-built /usr of an environment (update.method = "store")')
    .addHelpText('after', '\nExamples:\n  sysprime store verify\n  sysprime store verify gen-4 --repair');
  store
    .command('verify [env]')
    .description('hash every store object and check every /usr file against the installed manifests (exit 1 when something is damaged)')
    .option('--repair', 'fetch damaged objects again from update.repository and relink the damaged /usr files')
    .addHelpText('after', '\nExamples:\n  sysprime store verify              the running environment\n  sysprime store verify gen-4 --repair')
    .action(async (env: string | undefined, opts: { repair?: boolean }) =>
      withContext(globals(), async (ctx) => {
        const c = await checkEnvironmentStore(ctx, env, { repair: opts.repair === true });
        if (globals().json) printJson(c);
        else {
          if (c.repair !== null) {
            const b = c.repair.before;
            if (!isClean(b)) process.stdout.write(renderReport(c.environment, b));
            process.stdout.write(`repaired: ${c.repair.objectsFetched} objects fetched again, ${c.repair.pathsRelinked.length} paths relinked${c.repair.manifestsFetched > 0 ? `, ${c.repair.manifestsFetched} manifests fetched again` : ''}\n`);
            for (const p of c.repair.pathsRelinked) process.stdout.write(`  relinked ${p}\n`);
          }
          process.stdout.write(renderReport(c.environment, c.report));
        }
        return isClean(c.report) ? EXIT.OK : EXIT.DIFFERENCES;
      }),
    );
}
