/** `sysprime key generate`: an ed25519 key pair for signing store indexes, manifests and drift baselines. */
import type { Command } from 'commander';
import { SysprimeError } from '../../errors.js';
import { generateKeyPair, readPrivateKey, readPublicKey } from '../../signing/keys.js';
import { printJson } from '../output.js';
import { withoutContext, type GlobalOptions } from '../runner.js';

function parseExpires(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const d = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(d.getTime())) {
    throw new SysprimeError('USAGE', `--expires ${text}: not a date`, { hint: 'write it as 2027-12-31 or 2027-12-31T00:00:00Z' });
  }
  return d;
}

export function registerKey(program: Command, globals: () => GlobalOptions): void {
  const key = program
    .command('key')
    .description('signing keys (ed25519) for store repositories, manifests and drift baselines')
    .addHelpText('after', '\nExamples:\n  sysprime key generate /etc/sysprime/repo.key --expires 2027-12-31\n  sysprime key show /etc/sysprime/repo.key.pub');
  key
    .command('generate <path>')
    .description('write a new private key to PATH (mode 0600) and its public half to PATH.pub; never overwrites')
    .option('--expires <date>', 'the key verifies and signs nothing after this date')
    .option('--comment <text>', 'a note kept in both files (who, what for)')
    .addHelpText('after', '\nExamples:\n  sysprime key generate /root/keys/repo-2026.key --expires 2027-01-31 --comment "store repository"')
    .action(async (path: string, opts: { expires?: string; comment?: string }) =>
      withoutContext(globals(), () => {
        const k = generateKeyPair(path, { expires: parseExpires(opts.expires), comment: opts.comment });
        if (globals().json) printJson(k);
        else process.stdout.write(`key ${k.id}: private ${k.privatePath}, public ${k.publicPath}\n${k.publicLine}\n`);
      }),
    );
  key
    .command('show <path>')
    .description('print the id and expiry of a key file (private or public half)')
    .addHelpText('after', '\nExamples:\n  sysprime key show /etc/sysprime/repo.key.pub\n  sysprime --json key show /root/keys/repo-2026.key')
    .action(async (path: string) =>
      withoutContext(globals(), () => {
        const isPublic = path.endsWith('.pub');
        const k = isPublic ? readPublicKey(path) : readPrivateKey(path);
        const out = { id: k.id, expires: k.expires?.toISOString() ?? null, half: isPublic ? 'public' : 'private' };
        if (globals().json) printJson(out);
        else process.stdout.write(`key ${out.id} (${out.half} half)${out.expires === null ? '' : `, expires ${out.expires}`}\n`);
      }),
    );
}
