/**
 * The health checks of a boot, greenboot's model: `[health] required`
 * units must be active, every executable in `<dir>/required/` must exit 0,
 * those in `<dir>/wanted/` only warn when they fail; all of it within
 * `[health] timeout` seconds together. Returns the result as data;
 * `after-boot.ts` decides what follows (bless, or fall back).
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { errnoOf, isSysprimeError, messageOf } from '../errors.js';
import { run } from '../process/run.js';

export interface CheckOutcome {
  /** `unit nginx.service`, `required/10-http`, `wanted/50-disk`. */
  name: string;
  required: boolean;
  ok: boolean;
  /** Why it failed: its last line of output, its exit status, or the timeout. */
  detail: string;
}

export interface HealthReport {
  result: 'good' | 'bad';
  checks: CheckOutcome[];
  /** Failed required checks, one line each: the reason kept and shown. */
  failed: string[];
  /** Failed wanted checks and scripts skipped. */
  warnings: string[];
}

export async function runHealthChecks(config: Config, now: () => number = Date.now): Promise<HealthReport> {
  const deadline = now() + config.health.timeout * 1000;
  const left = () => Math.max(1, deadline - now());
  const checks: CheckOutcome[] = [];
  const warnings: string[] = [];

  for (const unit of config.health.required) {
    checks.push(await unitCheck(unit, left()));
  }
  for (const kind of ['required', 'wanted'] as const) {
    const dir = join(config.health.dir, kind);
    for (const name of scripts(dir, warnings)) {
      const ms = left();
      checks.push(await scriptCheck(join(dir, name), `${kind}/${name}`, kind === 'required', ms, config.health.timeout));
    }
  }
  const failed = checks.filter((c) => c.required && !c.ok).map((c) => `${c.name}: ${c.detail}`);
  warnings.push(...checks.filter((c) => !c.required && !c.ok).map((c) => `${c.name}: ${c.detail}`));
  return { result: failed.length === 0 ? 'good' : 'bad', checks, failed, warnings };
}

/** The executables of a check directory in name order; anything else is a warning, a missing directory nothing. */
function scripts(dir: string, warnings: string[]): string[] {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return [];
    throw err;
  }
  return names.filter((name) => {
    // Editors and package managers leave these beside the real scripts, as run-parts skips them.
    if (name.startsWith('.') || /(~|\.dpkg-(old|new|dist|tmp)|\.swp)$/.test(name)) return false;
    const st = statSync(join(dir, name));
    if (!st.isFile() || (st.mode & 0o111) === 0) {
      warnings.push(`${join(dir, name)}: not an executable file, not run`);
      return false;
    }
    return true;
  });
}

async function unitCheck(unit: string, ms: number): Promise<CheckOutcome> {
  const name = `unit ${unit}`;
  try {
    const r = await run('systemctl', ['is-active', unit], { allowFailure: true, timeout: ms });
    if (r.exitCode === 0) return { name, required: true, ok: true, detail: 'active' };
    // systemctl prints the unit's state (inactive, failed, activating); without one, why it could not ask.
    const state = r.stdout.trim();
    const why = r.stderr.trim().split('\n').pop() ?? '';
    return { name, required: true, ok: false, detail: state ? `is ${state}` : `systemctl is-active failed (exit ${r.exitCode})${why ? `: ${why}` : ''}` };
  } catch (err) {
    return { name, required: true, ok: false, detail: isSysprimeError(err, 'TIMEOUT') ? 'systemctl did not answer within [health] timeout' : messageOf(err) };
  }
}

async function scriptCheck(path: string, name: string, required: boolean, ms: number, timeout: number): Promise<CheckOutcome> {
  try {
    const r = await run(path, [], { allowFailure: true, timeout: ms });
    if (r.exitCode === 0) return { name, required, ok: true, detail: 'passed' };
    // What it said last on stderr, else on stdout: a check's own reason for failing.
    const lines = (text: string) => text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
    const last = lines(r.stderr).length ? lines(r.stderr) : lines(r.stdout);
    return { name, required, ok: false, detail: `exited ${r.exitCode}${last.length ? `: ${last[last.length - 1]!.slice(0, 200)}` : ''}` };
  } catch (err) {
    return { name, required, ok: false, detail: isSysprimeError(err, 'TIMEOUT') ? `did not finish within [health] timeout (${timeout} s); stopped` : messageOf(err) };
  }
}
