/**
 * `npm run test:vm`: builds (or reuses) the base image, runs scenario 1 on it
 * (install and adopt), then the others on overlays of the machine scenario 1
 * left behind, two at a time. One line per scenario, then a summary; exit
 * status 1 when any failed. Everything started on the host is cleaned up,
 * also on failure and Ctrl-C.
 *
 *   node dist/vm-tests/run.js [--only 1,6] [--jobs 2] [--accel tcg|kvm|auto]
 *                             [--memory MiB] [--cache DIR] [--keep] [--list]
 *                             [--tree DIR]   (another sysprime build to test, e.g. one broken on purpose)
 *                             [--time-scale F] (every scenario's time limit times F, for slower hosts)
 */
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { run } from '../src/process/run.js';
import { UPDATERS } from '../src/updaters/registry.js';
import { cleanupAll, installSignalHandlers, stoppedBySignal } from './cleanup.js';
import { executeScenario, type Outcome } from './execute.js';
import type { Machine, UpdaterChoice } from './guest-files.js';
import { grubBaseImage } from './grub-image.js';
import { baseImage, sysprimeDrive, type BaseImage, type ImageOptions } from './image.js';
import { machineOf, type Scenario } from './scenario.js';
import { zfsBaseImage } from './zfs-image.js';
import { SCENARIOS } from './scenarios/index.js';
import { OVMF_CODE, OVMF_VARS, type Accel } from './vm.js';

const TREE = resolve(new URL('../..', import.meta.url).pathname);

const TOOLS: ReadonlyArray<[string, string]> = [
  ['qemu-system-x86_64', 'qemu-system-x86'],
  ['qemu-img', 'qemu-utils'],
  ['mmdebstrap', 'mmdebstrap'],
  ['sgdisk', 'gdisk'],
  ['mcopy', 'mtools'],
  ['mkfs.vfat', 'dosfstools'],
  ['mkfs.btrfs', 'btrfs-progs'],
  ['dpkg-scanpackages', 'dpkg-dev'],
];

function say(line: string): void {
  // After Ctrl-C the scenarios cut short are not failures of sysprime: say nothing more.
  if (!stoppedBySignal()) process.stdout.write(`${line}\n`);
}

async function missingTools(): Promise<string[]> {
  const missing: string[] = [];
  for (const [tool, pkg] of TOOLS) {
    const res = await run('sh', ['-c', 'command -v "$1"', 'sh', tool], { allowFailure: true });
    if (res.exitCode !== 0) missing.push(pkg);
  }
  for (const f of [OVMF_CODE, OVMF_VARS]) if (!existsSync(f)) missing.push('ovmf');
  return [...new Set(missing)];
}

/** The verbs the built sysprime offers, from its own help. */
async function sysprimeVerbs(tree: string): Promise<Set<string>> {
  const res = await run(process.execPath, [join(tree, 'bin/sysprime'), '--help']);
  const commands = res.stdout.split(/^Commands:$/m)[1] ?? '';
  return new Set([...commands.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]!));
}

/** A boot to the runner with kvm; tcg when it does not get there in time. */
async function probeAccel(dir: string, base: string): Promise<Accel> {
  const probe: Scenario = { id: 0, name: 'accelerator probe', from: 'installed', verbs: [], timeoutMinutes: 3, boots: [{ script: 'say probe\nthen_poweroff\n' }] };
  const out = await executeScenario(probe, { dir: join(dir, 'probe-kvm'), backing: base, backingFormat: 'raw', accel: 'kvm', memoryMiB: 1024 });
  return out.passed ? 'kvm' : 'tcg';
}

function line(o: Outcome): string {
  const retried = o.silentStarts > 0 ? `, powered on again after ${o.silentStarts} silent start(s)` : '';
  const head = `${o.passed ? 'ok  ' : 'FAIL'} ${o.scenario.id} ${o.scenario.name} (${o.seconds} s${retried})`;
  return o.passed ? head : `${head}\n       ${o.failure}\n       console and drive kept in ${o.dir}`;
}

async function pool<T, R>(items: readonly T[], jobs: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length && !stoppedBySignal()) {
      const i = next++;
      results[i] = await work(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, items.length)) }, worker));
  return results;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      jobs: { type: 'string', default: '2' },
      accel: { type: 'string', default: process.env['SYSPRIME_VM_ACCEL'] ?? 'tcg' },
      memory: { type: 'string', default: '1024' },
      cache: { type: 'string', default: process.env['SYSPRIME_VM_CACHE'] ?? '/var/cache/sysprime-vm' },
      keep: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      tree: { type: 'string', default: TREE },
      'time-scale': { type: 'string', default: process.env['SYSPRIME_VM_TIME_SCALE'] ?? '1' },
    },
  });
  if (values.list) {
    for (const s of SCENARIOS) say(`${s.id} ${s.name} (from the ${s.from} ${machineOf(s)} machine${s.verbs.length > 0 ? `; needs ${s.verbs.join(', ')}` : ''})`);
    return 0;
  }
  if (!['tcg', 'kvm', 'auto'].includes(values.accel)) throw new Error(`--accel ${values.accel}: use tcg, kvm or auto`);
  const scale = Number(values['time-scale']);
  if (!(scale > 0)) throw new Error(`--time-scale ${values['time-scale']}: give a positive number, e.g. 1.5`);
  if (process.getuid?.() !== 0) {
    process.stderr.write('vm-tests: run as root (the image is built with loop devices and mounts)\n');
    return 2;
  }
  const missing = await missingTools();
  if (missing.length > 0) {
    process.stderr.write(`vm-tests: missing ${missing.join(', ')}: apt-get install ${missing.join(' ')}\n`);
    return 2;
  }
  installSignalHandlers();
  const only = values.only ? new Set(values.only.split(',').map((s) => Number.parseInt(s, 10))) : null;
  const all: Scenario[] = SCENARIOS.map((s) => ({ ...s, timeoutMinutes: Math.ceil(s.timeoutMinutes * scale) }));
  const wanted = all.filter((s) => only === null || only.has(s.id));
  const tree = resolve(values.tree);
  const verbs = await sysprimeVerbs(tree);
  const updater: UpdaterChoice = UPDATERS.some((u) => u.method === 'apt') ? 'apt' : 'command';

  const runDir = join('/var/tmp/sysprime-vm', `run-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  await mkdir(runDir, { recursive: true });
  const started = Date.now();
  const jobs = Math.max(1, Number.parseInt(values.jobs, 10) || 1);

  const outcomes: Outcome[] = [];
  const skipped: string[] = [];
  const runnable = wanted.filter((s) => {
    const lacking = s.verbs.filter((v) => !verbs.has(v));
    if (lacking.length > 0) {
      skipped.push(`skip ${s.id} ${s.name}: sysprime has no ${lacking.join(', ')} yet`);
      return false;
    }
    return true;
  });
  for (const l of skipped) say(l);

  // Each machine: its base image, then its 'installed' scenario, which leaves the adopted
  // machine that machine's other scenarios start from (it runs even when not asked for).
  // OpenZFS keeps its cache (ARC) and modules in the guest's memory: it gets a little more.
  const memoryFor = (m: Machine): number => (m === 'zfs' ? Math.max(1536, Number.parseInt(values.memory, 10)) : Number.parseInt(values.memory, 10));
  const imageOpts: ImageOptions = { cacheDir: values.cache, tree, updater, log: (l) => say(`# ${l}`) };
  const builders: Record<Machine, (o: ImageOptions) => Promise<BaseImage>> = { btrfs: baseImage, zfs: zfsBaseImage, grub: grubBaseImage };
  let accel: Accel | null = values.accel === 'auto' ? null : (values.accel as Accel);
  const adoptedDisk = new Map<Machine, string | null>();
  // The ZFS and GRUB machines are installed once for every build; the build comes on a drive of its own.
  const tools = new Map<Machine, { toolsDrive: string }>();
  for (const machine of ['btrfs', 'zfs', 'grub'] as const) {
    const mine = runnable.filter((s) => machineOf(s) === machine);
    if (mine.length === 0 || stoppedBySignal()) continue;
    const image = await builders[machine](imageOpts);
    if (machine !== 'btrfs') tools.set(machine, { toolsDrive: await sysprimeDrive(imageOpts) });
    say(`# ${machine} machine: ${image.path}${image.reused ? ' (cached)' : ''}; updater in the guest: ${updater}; runs in ${runDir}`);
    if (accel === null) {
      accel = await probeAccel(runDir, image.path);
      say(`# accelerator: ${accel}`);
    }
    const adopt = all.find((s) => s.from === 'installed' && machineOf(s) === machine);
    if (adopt === undefined) throw new Error(`no scenario installs the ${machine} machine`);
    if (!mine.includes(adopt) && !mine.some((s) => s.from === 'adopted')) continue;
    // Alone on the host: it may have every core the pool would use.
    const o = await executeScenario(adopt, { accel, memoryMiB: memoryFor(machine), ...tools.get(machine), cpus: jobs, dir: join(runDir, `${adopt.id}`), backing: image.path, backingFormat: 'raw' });
    if (mine.includes(adopt)) {
      outcomes.push(o);
      say(line(o));
    } else if (!o.passed) say(line(o));
    adoptedDisk.set(machine, o.passed && o.vm !== null ? o.vm.disk : null);
  }
  const common = { accel: accel ?? 'tcg' };

  // Longest first (more boots, then a longer time limit), so the pool does not end with one long VM alone.
  const rest = runnable.filter((s) => s.from === 'adopted').sort((a, b) => b.boots.length - a.boots.length || b.timeoutMinutes - a.timeoutMinutes);
  await pool(rest, jobs, async (s) => {
    const base = adoptedDisk.get(machineOf(s)) ?? null;
    const o: Outcome =
      base === null
        ? { scenario: s, passed: false, failure: `the adopted ${machineOf(s)} machine could not be made`, seconds: 0, silentStarts: 0, dir: runDir, vm: null }
        : await executeScenario(s, { ...common, memoryMiB: memoryFor(machineOf(s)), ...tools.get(machineOf(s)), dir: join(runDir, `${s.id}`), backing: base, backingFormat: 'qcow2' });
    outcomes.push(o);
    say(line(o));
    if (o.passed && !values.keep && base !== null) await rm(o.dir, { recursive: true, force: true });
  });

  const passed = outcomes.filter((o) => o.passed).length;
  const failed = outcomes.length - passed;
  if (failed === 0 && !values.keep) await rm(runDir, { recursive: true, force: true });
  say(`${passed} passed, ${failed} failed, ${skipped.length} skipped (${Math.round((Date.now() - started) / 1000)} s)`);
  return failed > 0 ? 1 : 0;
}

main()
  .then(async (status) => {
    await cleanupAll();
    // After a signal its handler exits, with 128 + the signal's number.
    if (!stoppedBySignal()) process.exit(status);
  })
  .catch(async (err: unknown) => {
    if (!stoppedBySignal()) process.stderr.write(`vm-tests: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await cleanupAll();
    if (!stoppedBySignal()) process.exit(2);
  });
