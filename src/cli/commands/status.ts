/** `sysprime status`: what runs now, what boots next, what happened last. */
import type { Command } from 'commander';
import { getStatus } from '../../environments/status.js';
import { printJson } from '../output.js';
import { withContext, type GlobalOptions } from '../runner.js';
import { environmentJson } from './environments.js';
import { isPinned } from '../../environments/annotations.js';
import { atRiskLines } from '../../environments/shared.js';

export function registerStatus(program: Command, globals: () => GlobalOptions): void {
  program
    .command('status')
    .description('show the running and next environment, and the last staging')
    .addHelpText('after', '\nExamples:\n  sysprime status\n  sysprime --json status')
    .action(async () =>
      withContext(globals(), async (ctx) => {
        const { envs, current, next, failedBoots, lastStage: stage, busy, scheduled, reintegration: reports, shared, recovered, health } = await getStatus(ctx);
        const daemonStage = scheduled.find((r) => r.job === 'stage');
        const reintegration = reports.map((r) => ({ environment: r.environment, at: r.at, kind: r.kind, summary: r.summary }));
        const status = {
          backend: ctx.backend.describe(),
          config: ctx.config.source,
          current: current ? environmentJson(current) : null,
          nextBoot: next?.name ?? null,
          failedBoots: failedBoots.map((e) => ({ environment: e.name, entry: e.ref })),
          environments: envs.length,
          pinned: envs.filter(isPinned).map((e) => e.name),
          daemon: scheduled.length > 0 ? { pid: scheduled[0]!.pid, jobs: scheduled.map((r) => ({ job: r.job, nextRun: r.nextRun, lastRun: r.lastRun, lastResult: r.lastResult })) } : null,
          nextStage: daemonStage?.nextRun ?? null,
          reintegration,
          runtime: { node: process.version },
          running: busy ? { pid: busy.pid, what: busy.what, since: busy.at } : null,
          recovered,
          shared,
          health,
          lastStage: stage
            ? {
                started: stage.started,
                finished: stage.finished,
                status: stage.status,
                environment: (JSON.parse(stage.params) as { name?: string }).name ?? null,
                error: stage.error ? (JSON.parse(stage.error) as unknown) : null,
              }
            : null,
        };
        if (globals().json) {
          printJson(status);
          return;
        }
        const lines = [
          `backend:     ${status.backend}`,
          `config:      ${status.config}`,
          `current:     ${current ? `${current.name} (generation ${current.generation}${current.booted ? ', running' : ', default of this pool'}${isPinned(current) ? ', pinned' : ''})` : 'none'}`,
          `next boot:   ${next ? `${next.name}${isPinned(next) ? ' (pinned)' : ''}` : (status.nextBoot ?? 'not set')}`,
          `environments: ${envs.length}${status.pinned.length > 0 ? `, pinned: ${status.pinned.join(', ')}` : ''}`,
          `last stage:  ${stage ? `${stage.status}${status.lastStage?.environment ? ` "${status.lastStage.environment}"` : ''} (${stage.started})${stage.error ? `: ${(JSON.parse(stage.error) as { message?: string }).message ?? ''}` : ''}` : 'never'}`,
          `next stage:  ${daemonStage?.nextRun ?? (scheduled.length ? 'off' : 'daemon not running')}`,
        ];
        for (const r of reintegration) {
          if (r.kind === 'first-boot-failed') lines.push(`first boot:  "${r.environment}" failed to carry over changes at ${r.at}: ${String(r.summary['error'])}`);
          else if (Number(r.summary['conflict'] ?? 0) > 0 || Number(r.summary['failed'] ?? 0) > 0) {
            lines.push(`conflicts:   "${r.environment}" has ${r.summary['conflict']} conflict(s) and ${r.summary['failed']} failure(s) from its ${r.kind} reintegration (${r.at}); see its /var/lib/sysprime/reintegration/`);
          }
        }
        for (const f of failedBoots) {
          lines.push(`boot:        "${f.name}" failed to boot (its tries are used up); the machine fell back to "${next?.name ?? 'the previous default'}"`);
        }
        for (const h of health) {
          if (h.result === 'bad') lines.push(`health:      "${h.environment}" failed its health checks at ${h.at}: ${h.reasons.join('; ')}`);
          else if (h.environment === current?.name) lines.push(`health:      good (checked ${h.at})`);
        }
        for (const line of atRiskLines(shared)) lines.push(`at risk:     ${line}`);
        if (busy) lines.push(`busy:        pid ${busy.pid} is ${busy.what} since ${busy.at}`);
        for (const r of recovered) lines.push(`recovered:   ${r}`);
        process.stdout.write(lines.join('\n') + '\n');
      }),
    );
}
