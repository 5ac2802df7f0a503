/** `sysprime drift`: what the admin changed since the pristine state, as text, JSON or a page. */
import type { Command } from 'commander';
import { computeDrift, driftHistory, recordDrift } from '../../drift/compute.js';
import { renderDriftText, renderHistoryText } from '../../drift/render-text.js';
import { renderDriftHtml } from '../../drift/render-html.js';
import { SysprimeError, EXIT } from '../../errors.js';
import { checkOutputFile, printJson, useColor, writeOutputFile } from '../output.js';
import { withContext, type GlobalOptions } from '../runner.js';

type Format = 'text' | 'json' | 'html';

export function registerDrift(program: Command, globals: () => GlobalOptions): void {
  program
    .command('drift [env]')
    .description('show what changed in an environment since its pristine state (exit 1 when something did)')
    .option('-f, --format <format>', 'text, json or html', 'text')
    .option('-o, --output <file>', 'write the report to a file instead of standard output')
    .option('--no-diff', 'text: list the paths without their diffs')
    .option('--no-record', 'do not keep this run in the drift history')
    .option('--history <path>', 'when did this path change (from the recorded runs)')
    .option('--show-secrets', 'show the content of files only root may read and of [drift] secret paths')
    .option('--verify', 'first check the signatures of the baseline manifest and of the drift history against [audit] key (an altered record or a run deleted from the middle is refused; runs deleted from the end are not detected; every live file is hashed)')
    .addHelpText(
      'after',
      '\nExamples:\n  sysprime drift                          drift of the running environment\n  sysprime drift --format html -o drift.html\n  sysprime drift --verify                 check the signed baseline and history (an edited record or a run\n                                          deleted from the middle is refused; runs deleted from the end are not seen)\n  sysprime drift --history /etc/ssh/sshd_config',
    )
    .action(async (env: string | undefined, opts: { format: string; output?: string; diff: boolean; record: boolean; history?: string; showSecrets?: boolean; verify?: boolean }) =>
      withContext(globals(), async (ctx) => {
        const g = globals();
        const format = (g.json ? 'json' : opts.format) as Format;
        if (!['text', 'json', 'html'].includes(format)) {
          throw new SysprimeError('USAGE', `unknown format "${opts.format}"`, { hint: 'use --format text, json or html' });
        }
        // Before the work and its record: a refused -o leaves nothing behind.
        if (opts.output) checkOutputFile(opts.output);
        const emit = (text: string) => {
          if (opts.output) writeOutputFile(opts.output, text);
          else process.stdout.write(text);
        };
        if (opts.history !== undefined) {
          const path = Buffer.from(opts.history, 'utf8').toString('latin1');
          const rows = driftHistory(ctx, path);
          if (format === 'json') emit(JSON.stringify({ path: opts.history, history: rows }, null, 2) + '\n');
          else emit(renderHistoryText(opts.history, rows));
          return EXIT.OK;
        }
        const report = await computeDrift(ctx, env, { showSecrets: opts.showSecrets === true, verify: opts.verify === true });
        if (report.verified !== null && format === 'text' && opts.output === undefined) {
          process.stderr.write(`baseline of generation ${report.generation} and ${report.verified.runs} recorded runs verified with key ${report.verified.key}\n`);
        }
        if (opts.record) recordDrift(ctx, report);
        if (format === 'json') {
          if (opts.output) emit(JSON.stringify(report, null, 2) + '\n');
          else printJson(report);
        } else if (format === 'html') emit(renderDriftHtml(report));
        else emit(renderDriftText(report, { color: !opts.output && useColor(), diffs: opts.diff }));
        return report.items.length > 0 ? EXIT.DIFFERENCES : EXIT.OK;
      }),
    );
}
