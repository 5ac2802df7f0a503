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
}

export async function executeScenario(scenario: Scenario, opts: ExecuteOptions): Promise<Outcome> {
  const started = Date.now();
  const outcome = (failure: string | null, vm: VmFiles | null): Outcome => ({
    scenario,
    passed: failure === null,
    failure,
    seconds: Math.round((Date.now() - started) / 1000),
    dir: opts.dir,
    vm,
  });
  await mkdir(opts.dir, { recursive: true });
  const vm = await prepareVm(opts.dir, opts.backing, opts.backingFormat);
  const drive = join(opts.dir, 'script.img');
  // The guest stops its script this long before the host stops qemu, to save its journal.
  const deadline = Math.floor(started / 1000) + scenario.timeoutMinutes * 60 - GUEST_MARGIN_S;
  await makeScriptDrive(drive, opts.dir, scenario.boots.map((b) => b.script), { deadline: `${deadline}\n` });
  const run = await runVm(vm, { accel: opts.accel, memoryMiB: opts.memoryMiB, cpus: opts.cpus ?? 1, scriptDrive: drive, timeoutMs: scenario.timeoutMinutes * 60_000 });
  const log = parseSerial(await readFile(vm.serial, 'utf8').catch(() => ''));
  const diagnostics = await saveDiagnostics(drive, opts.dir, log.boots.map((b) => b.n));
  const outcomeWithDiagnostics = (failure: string | null, v: VmFiles | null): Outcome =>
    outcome(failure === null || diagnostics.length === 0 ? failure : `${failure}\n       guest journal: ${diagnostics.join(', ')}`, v);

  try {
    for (const [i, plan] of scenario.boots.entries()) {
      const boot = log.boots[i];
      if (boot === undefined) {
        const last = log.boots[log.boots.length - 1];
        return outcomeWithDiagnostics(
          `boot ${i + 1} never reached the runner` +
            (run.poweredOff ? '' : ` (stopped after ${scenario.timeoutMinutes} min)`) +
            (last ? `; boot ${last.n} ended with status ${String(last.status)}` : '') +
            (log.orphans.length ? `; other markers: ${log.orphans.join(' | ')}` : ''),
          vm,
        );
      }
      const failed = [...boot.steps].filter(([, ok]) => !ok).map(([name]) => name);
      if (failed.length > 0 || boot.status !== 0) {
        const name = failed[0];
        const err = name ? ((await readDriveFile(drive, `out/b${boot.n}-${name}.err`)) ?? '').trim() : '';
        const why = name ? `step "${name}" failed` : boot.status === null ? `did not finish its script${run.poweredOff ? '' : ` within the scenario's ${scenario.timeoutMinutes} min`}` : `script ended with status ${boot.status}`;
        return outcomeWithDiagnostics(`boot ${boot.n}: ${why}${err ? `: ${err.split('\n').slice(0, 6).join(' / ')}` : ''}`, vm);
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
