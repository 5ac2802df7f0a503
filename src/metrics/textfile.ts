/**
 * The fleet's view of this machine for Prometheus: a text-format file
 * (`[metrics] textfile`) that node_exporter's textfile collector reads
 * (it reads `*.prom` in its directory). Written whole through the durable
 * writer, so a scrape sees the old file or the new one; rewritten after each
 * job of the daemon and after each boot's health checks, and by
 * `sysprime metrics`. `renderMetrics` is pure.
 */
import type { Context } from '../context.js';
import { getStatus } from '../environments/status.js';
import { replaceFile } from '../os/durable.js';
import { lastDriftRun } from '../state/drift-runs.js';
import { eventsOf } from '../state/events.js';
import { HEALTH_EVENTS } from '../health/history.js';

export interface MetricsData {
  running: { name: string; generation: number } | null;
  /** What boots next when it is not the running environment. */
  staged: { name: string; generation: number } | null;
  /** Paths of the running environment's latest recorded drift run. */
  driftPaths: number | null;
  lastStage: { at: Date; ok: boolean } | null;
  /** Last health result of the running environment. */
  health: 'good' | 'bad' | null;
  /** Fallbacks after failed health checks, all environments. */
  fallbacks: number;
  /** Boot entries whose tries are used up. */
  failedBoots: number;
}

export function renderMetrics(d: MetricsData): string {
  const out: string[] = [];
  const metric = (name: string, help: string, samples: [Record<string, string>, number][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const [labels, value] of samples) {
      const l = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
      out.push(`${name}${l.length ? `{${l.join(',')}}` : ''} ${value}`);
    }
  };
  metric('sysprime_running_generation', 'Generation of the running environment (0: none).', [[d.running ? { environment: d.running.name } : {}, d.running?.generation ?? 0]]);
  metric('sysprime_staged_generation', 'Generation of the environment that boots next when it is not the running one (0: none).', [[d.staged ? { environment: d.staged.name } : {}, d.staged?.generation ?? 0]]);
  if (d.driftPaths !== null) metric('sysprime_drift_paths', 'Paths that drifted in the running environment at the latest recorded drift run.', [[{}, d.driftPaths]]);
  if (d.lastStage !== null) {
    metric('sysprime_last_stage_timestamp_seconds', 'When the last staging started.', [[{}, Math.floor(d.lastStage.at.getTime() / 1000)]]);
    metric('sysprime_last_stage_success', '1 when the last staging succeeded, 0 when it failed or was undone.', [[{}, d.lastStage.ok ? 1 : 0]]);
  }
  if (d.health !== null) metric('sysprime_health_good', '1 when the running environment passed its last health checks, 0 when it failed them.', [[{}, d.health === 'good' ? 1 : 0]]);
  metric('sysprime_health_fallbacks', 'Fallbacks to another environment after failed health checks, recorded in the history.', [[{}, d.fallbacks]]);
  metric('sysprime_failed_boots', 'Boot entries whose tries are used up.', [[{}, d.failedBoots]]);
  return out.join('\n') + '\n';
}

/** Label values escaped as the text format wants: backslash, double quote, newline. */
function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export async function collectMetrics(ctx: Context): Promise<MetricsData> {
  const s = await getStatus(ctx);
  const running = s.current ? { name: s.current.name, generation: s.current.generation } : null;
  const staged = s.next && s.next.name !== s.current?.name ? { name: s.next.name, generation: s.next.generation } : null;
  const drift = s.current ? lastDriftRun(ctx.db, s.current.name) : undefined;
  const health = s.health.find((h) => h.environment === s.current?.name)?.result ?? null;
  const fallbacks = s.envs.reduce((n, e) => n + eventsOf(ctx.db, e.name).filter((ev) => ev.event === HEALTH_EVENTS.fallback).length, 0);
  return {
    running,
    staged,
    driftPaths: drift ? drift.counts.added + drift.counts.removed + drift.counts.modified : null,
    lastStage: s.lastStage && s.lastStage.status !== 'running' ? { at: new Date(s.lastStage.started), ok: s.lastStage.status === 'done' } : null,
    health,
    fallbacks,
    failedBoots: s.failedBoots.length,
  };
}

/** Write the file when `[metrics] textfile` is set; returns its path, or null. */
export async function writeMetrics(ctx: Context): Promise<string | null> {
  const path = ctx.config.metrics.textfile;
  if (path === undefined) return null;
  replaceFile(path, renderMetrics(await collectMetrics(ctx)), { mode: 0o644 });
  return path;
}
