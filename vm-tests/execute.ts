/**
 * Runs one scenario: a fresh overlay disk and firmware variables, the script
 * drive with one script per boot, one qemu run until the guest powers off,
 * then the host's assertions, boot by boot.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BootContext, Scenario } from './scenario.js';
import { copyDriveFile, makeScriptDrive, readDriveFile } from './script-drive.js';
import { parseSerial, type Boot } from './serial.js';
import { prepareVm, runVm, type Accel, type VmFiles } from './vm.js';

export interface Outcome {
  scenario: Scenario;
  passed: boolean;
  /** What failed, in one paragraph. */
  failure: string | null;
  seconds: number;
  /** Power-ons that printed nothing and were restarted by the watchdog (vm.ts). */
  silentStarts: number;
  dir: string;
  vm: VmFiles | null;
}

export interface ExecuteOptions {
  dir: string;
  backing: string;
  backingFormat: 'raw' | 'qcow2';
  accel: Accel;
  memoryMiB: number;
  /** Virtual CPUs (1 unless the host has cores to spare). */
  cpus?: number;
  /** The drive carrying the sysprime build, for machines that mount it (the ZFS one). */
  toolsDrive?: string;
}

export async function executeScenario(scenario: Scenario, opts: ExecuteOptions): Promise<Outcome> {
  const started = Date.now();
  let silentStarts = 0;
  const outcome = (failure: string | null, vm: VmFiles | null): Outcome => ({
    scenario,
    passed: failure === null,
    failure,
    seconds: Math.round((Date.now() - started) / 1000),
    silentStarts,
    dir: opts.dir,
    vm,
  });
  await mkdir(opts.dir, { recursive: true });
  const vm = await prepareVm(opts.dir, opts.backing, opts.backingFormat);
  const drive = join(opts.dir, 'script.img');
  // The guest stops its script this long before the host stops qemu, to save its journal.
  const deadline = Math.floor(started / 1000) + scenario.timeoutMinutes * 60 - GUEST_MARGIN_S;
  await makeScriptDrive(drive, opts.dir, scenario.boots.map((b) => b.script), { deadline: `${deadline}\n` });
  const run = await runVm(vm, { accel: opts.accel, memoryMiB: opts.memoryMiB, cpus: opts.cpus ?? 1, scriptDrive: drive, ...(opts.toolsDrive ? { toolsDrive: opts.toolsDrive } : {}), timeoutMs: scenario.timeoutMinutes * 60_000 });
  silentStarts = run.silentStarts;
  const serialText = await readFile(vm.serial, 'utf8').catch(() => '');
  const log = parseSerial(serialText);
  const limit = `${scenario.timeoutMinutes} min`;
  const diagnostics = await saveDiagnostics(drive, opts.dir, log.boots.map((b) => b.n));
  const outcomeWithDiagnostics = (failure: string | null, v: VmFiles | null): Outcome =>
    outcome(failure === null || diagnostics.length === 0 ? failure : `${failure}\n       guest journal: ${diagnostics.join(', ')}`, v);

  try {
    for (const [i, plan] of scenario.boots.entries()) {
      const boot = log.boots[i];
      if (boot === undefined) {
        const last = log.boots[log.boots.length - 1];
        const console = lastConsoleLine(serialText);
        return outcomeWithDiagnostics(
          `boot ${i + 1} never reached the runner` +
            (run.poweredOff ? '' : ` (stopped at the scenario's time limit, ${limit})`) +
            (last ? `; boot ${last.n} ended with status ${String(last.status)}` : '') +
            (log.orphans.length ? `; other markers: ${log.orphans.join(' | ')}` : '') +
            (console ? `; the console's last line: ${console}` : ''),
          vm,
        );
      }
      const failed = [...boot.steps].filter(([, ok]) => !ok).map(([name]) => name);
      if (failed.length > 0 || boot.status !== 0) {
        const name = failed[0];
        const err = name ? ((await readDriveFile(drive, `out/b${boot.n}-${name}.err`)) ?? '').trim() : '';
        if (name) return outcomeWithDiagnostics(`boot ${boot.n}: step "${name}" failed${err ? `: ${err.split('\n').slice(0, 6).join(' / ')}` : ''}`, vm);
        // The guest stops its script at its deadline (timeout: 124, or 137 after -k); the host stops qemu later.
        const timedOut = boot.status === null ? !run.poweredOff : boot.status === 124 || boot.status === 137;
        const why = timedOut
          ? `was stopped at the scenario's time limit (${limit})`
          : boot.status === null
            ? 'did not finish its script'
            : `script ended with status ${boot.status}`;
        let cut = '';
        if (boot.running !== null) {
          const tail = ((await readDriveFile(drive, `out/b${boot.n}-${boot.running}.err`)) ?? '').trim().split('\n').slice(-2).join(' / ');
          cut = `; step "${boot.running}" was running${tail ? `, its last lines: ${tail}` : ''}`;
        }
        return outcomeWithDiagnostics(`boot ${boot.n}: ${why}${cut}`, vm);
      }
      await plan.check?.(boot, contextFor(drive, boot));
    }
    scenario.checkLog?.(log);
    if (log.boots.length > scenario.boots.length) return outcomeWithDiagnostics(`${log.boots.length} boots reached the runner, ${scenario.boots.length} were planned`, vm);
  } catch (err) {
    return outcomeWithDiagnostics((err as Error).message, vm);
  }
  return outcomeWithDiagnostics(null, vm);
}

const GUEST_MARGIN_S = 120;

/** The last line on the console with something readable (a panic's, say), without escape sequences. */
function lastConsoleLine(text: string): string {
  const lines = text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').split(/\r?\n/).map((l) => l.trim()).filter((l) => /[A-Za-z]{3}/.test(l));
  return (lines[lines.length - 1] ?? '').slice(0, 200);
}

/** The journal and the first-boot unit's status the guest saved when a boot failed, copied next to the console log. */
async function saveDiagnostics(drive: string, dir: string, boots: readonly number[]): Promise<string[]> {
  const saved: string[] = [];
  for (const n of boots) {
    for (const name of [`journal-${n}.txt`, `reintegrate-${n}.txt`]) {
      if (await copyDriveFile(drive, `out/${name}`, join(dir, name))) saved.push(join(dir, name));
    }
  }
  return saved;
}

function contextFor(drive: string, boot: Boot): BootContext {
  const output = (step: string): Promise<string | null> => readDriveFile(drive, `out/b${boot.n}-${step}.out`);
  return {
    output,
    async json<T>(step: string): Promise<T> {
      const text = await output(step);
      if (text === null) throw new Error(`boot ${boot.n}: step "${step}" saved no output`);
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new Error(`boot ${boot.n}: output of "${step}" is not JSON: ${text.slice(0, 200)}`);
      }
    },
  };
}
