/**
 * `sysprime store verify`: is the store-built /usr of an environment what its
 * packages say; --repair puts it back. `store publish` and `store sign`: the
 * publisher's side, a repository directory and its signed index.
 */
import type { Command } from 'commander';
import { checkEnvironmentStore } from '../../environments/store-check.js';
import { EXIT } from '../../errors.js';
import { readPrivateKey } from '../../signing/keys.js';
import { publishTree, signIndex } from '../../updaters/store/publish.js';
import { isClean, type StoreVerifyReport } from '../../updaters/store/verify.js';
import { printJson } from '../output.js';
import { withContext, withoutContext, type GlobalOptions } from '../runner.js';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

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
    .description('publish to a store repository, sign its index, check and repair the store-built /usr of an environment (update.method = "store")')
    .addHelpText(
      'after',
      '\nExamples:\n  sysprime store publish --sign /etc/sysprime/repo.key /srv/repo demo-os 2 ./tree\n  sysprime store verify\n  sysprime store verify gen-4 --repair',
    );
  store
    .command('publish <repo> <name> <version> <tree>')
    .description('add the contents of a directory tree as a version of a package in a repository directory (made if missing), and sign the index')
    .option('--sign <key>', 'private key to sign the index with (repeat for several, as during a key rotation)', collect, [])
    .option('--no-current', 'add the version without making it the one trees should have')
    .option('--trust-index', 'sign over the current index even when no --sign key signed it (an unsigned repository\'s first signed publish)')
    .option('--id <id>', 'the repository\'s id, in its signed index, when it is first written (default: random); kept afterwards')
    .addHelpText('after', '\nExamples:\n  sysprime store publish --sign repo.key /srv/repo demo-os 2 /build/demo-os-2\n  sysprime store publish --sign old.key --sign new.key /srv/repo demo-os 3 /build/demo-os-3')
    .action(async (repo: string, name: string, version: string, tree: string, opts: { sign: string[]; current: boolean; id?: string; trustIndex?: boolean }) =>
      withoutContext(globals(), async () => {
        const keys = opts.sign.map((k) => readPrivateKey(k));
        const sha = await publishTree(repo, name, version, tree, { current: opts.current, sign: keys, id: opts.id, trustIndex: opts.trustIndex });
        if (globals().json) printJson({ repository: repo, name, version, manifest: sha, signedBy: keys.map((k) => k.id) });
        else {
          process.stdout.write(`published ${name} ${version} (manifest ${sha}) in ${repo}\n`);
          process.stdout.write(keys.length === 0 ? 'the index is not signed: trees refuse it unless update.allow_unsigned (local repositories only)\n' : `index signed by ${keys.map((k) => `key ${k.id}`).join(', ')}\n`);
        }
      }),
    );
  store
    .command('sign <repo>')
    .description('sign the index of a repository directory as it is (replacing its signature), e.g. with a new key beside the old one')
    .requiredOption('--key <key>', 'private key to sign with (repeat for several)', collect, [])
    .addHelpText('after', '\nExamples:\n  sysprime store sign --key /etc/sysprime/repo.key /srv/repo\n  sysprime store sign --key old.key --key new.key /srv/repo')
    .action(async (repo: string, opts: { key: string[] }) =>
      withoutContext(globals(), async () => {
        const keys = opts.key.map((k) => readPrivateKey(k));
        const serial = await signIndex(repo, keys);
        if (globals().json) printJson({ repository: repo, serial, signedBy: keys.map((k) => k.id) });
        else process.stdout.write(`signed the index of ${repo} (serial ${serial}) with ${keys.map((k) => `key ${k.id}`).join(', ')}\n`);
      }),
    );
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
